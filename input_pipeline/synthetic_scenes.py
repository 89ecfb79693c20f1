"""Synthetic people, part 2: pictures of them on cluttered backgrounds.

`render` draws one picture: a textured background with clutter (half of it
in limb colours, some of it limb-like bars), people behind, the main person
in front, each a `synthetic_bodies` pose drawn as filled limbs (left limbs
warm, right limbs cool), torso, neck and head with a face, back to front. It
returns the picture and, per person, where the joints are and whether the
pixel under each joint shows that joint's own limb (MPII's visibility).
"""

import dataclasses
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image
from PIL import ImageDraw
import scipy.spatial

from acnn_jax import mpii
from input_pipeline import synthetic_bodies as bodies


# Limb thickness as a fraction of H; never thinner than _MIN_THICKNESS px so
# that small people still show several pixels of colour per limb.
_THICKNESS = {
    "upper_arm": 0.05, "forearm": 0.042, "thigh": 0.066, "shin": 0.054,
    "hip_bar": 0.035, "shoulder_bar": 0.035, "neck": 0.05,
}
_MIN_THICKNESS = 3.0

# One colour per limb: left limbs warm (red channel dominant), right limbs cool
# (blue/green dominant), so left and right can always be told apart even from
# behind. "bar"s are the hip-pelvis and shoulder-thorax links.
_PALETTE = {
    "left": {"upper_arm": (230, 40, 30), "forearm": (255, 150, 20),
             "thigh": (215, 30, 120), "shin": (250, 210, 30),
             "hip_bar": (255, 110, 90), "shoulder_bar": (200, 70, 40)},
    "right": {"upper_arm": (30, 70, 235), "forearm": (20, 200, 235),
              "thigh": (20, 150, 80), "shin": (40, 220, 170),
              "hip_bar": (90, 90, 255), "shoulder_bar": (40, 140, 200)},
}
# Limb kind by the side-less names of its two joints.
_LIMB_KINDS = {
    frozenset(("shoulder", "elbow")): "upper_arm",
    frozenset(("elbow", "wrist")): "forearm",
    frozenset(("hip", "knee")): "thigh", frozenset(("knee", "ankle")): "shin",
    frozenset(("hip", "pelvis")): "hip_bar",
    frozenset(("shoulder", "thorax")): "shoulder_bar",
}


def _limb_styles() -> Dict[Tuple[int, int], Tuple[Tuple[int, int, int], str]]:
  """{(joint, joint): (colour, kind)} for the left and right limbs of
  mpii.SKELETON (the centre line is drawn as torso, neck and head)."""
  def part(joint):
    return mpii.JOINT_NAMES[joint].split("_", 1)[-1]
  styles = {}
  for a, b, side in mpii.SKELETON:
    if side != "center":
      kind = _LIMB_KINDS[frozenset((part(a), part(b)))]
      styles[(a, b)] = (_PALETTE[side][kind], kind)
  return styles


_LIMB_STYLE = _limb_styles()
_LIMB_COLOURS = tuple(colour for colour, _ in _LIMB_STYLE.values())
_SKIN_TONES = ((255, 220, 185), (235, 190, 150), (200, 150, 110),
               (160, 110, 75), (110, 75, 50))
# Depth bias (x H) of the torso: limbs level with it are drawn in front.
_TORSO_DEPTH_BIAS = 0.03

_TORSO_JOINTS = (mpii.R_HIP, mpii.L_HIP, mpii.PELVIS, mpii.THORAX,
                 mpii.R_SHOULDER, mpii.L_SHOULDER)
HEAD_JOINTS = (mpii.UPPER_NECK, mpii.HEAD_TOP)
_NECK_JOINTS = (mpii.THORAX, mpii.UPPER_NECK)


@dataclasses.dataclass
class _Item:
  """One filled shape of a person, drawn back to front."""
  depth: float
  polygon: List[Tuple[float, float]]
  colour: Tuple[int, int, int]
  joints: Tuple[int, ...]   # Joints this shape counts as showing.
  caps: float = 0.0         # Radius of round caps at the polygon's ends.
  cap_points: Tuple = ()
  extras: Tuple = ()        # (polygon, colour) details on top (eyes).


def _jitter(rng, colour, amount=20) -> Tuple[int, int, int]:
  return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255))
               for c in colour)


def _capsule(p, q, width) -> List[Tuple[float, float]]:
  """The quadrilateral body of a thick segment p-q (caps drawn separately)."""
  d = bodies.unit(np.asarray(q, float) - p)
  n = np.array([-d[1], d[0]]) * width / 2
  return [tuple(p + n), tuple(q + n), tuple(q - n), tuple(p - n)]


def _ellipse(centre, axis, semi_major, semi_minor, n=24):
  """Polygon of an ellipse with its major axis along unit vector `axis`."""
  t = np.linspace(0, 2 * np.pi, n, endpoint=False)
  normal = np.array([-axis[1], axis[0]])
  pts = (centre + np.outer(np.cos(t) * semi_major, axis) +
         np.outer(np.sin(t) * semi_minor, normal))
  return [tuple(p) for p in pts]


def _convex_hull(points: np.ndarray) -> List[Tuple[float, float]]:
  """The convex hull of 2D points as a polygon (scipy's Qhull)."""
  return [tuple(points[i]) for i in scipy.spatial.ConvexHull(points).vertices]


def _person_items(rng, body: bodies.Body, place: bodies.Placement
                  ) -> List[_Item]:
  """The shapes of one person: limbs, torso, neck, head, in pixels."""
  xy, z = place.apply(body.joints)
  h = place.height
  items = []
  for (a, b), (colour, kind) in _LIMB_STYLE.items():
    width = max(_THICKNESS[kind] * h, _MIN_THICKNESS)
    # Hip and shoulder bars sit on the torso's surface.
    bias = -0.01 * h if kind.endswith("bar") else 0.0
    items.append(_Item((z[a] + z[b]) / 2 + bias, _capsule(xy[a], xy[b], width),
                       _jitter(rng, colour), (a, b), width / 2,
                       (xy[a], xy[b])))

  # Torso: hull of shoulders and hips pushed to the chest's front and back,
  # so it keeps some width in side views.
  depth = bodies.LENGTH["chest_depth"] * body.forward
  corners = body.joints[[mpii.L_SHOULDER, mpii.R_SHOULDER, mpii.R_HIP,
                         mpii.L_HIP]]
  box, _ = place.apply(np.concatenate([corners + depth, corners - depth]))
  torso_colour = tuple(int(c) for c in rng.integers(30, 226, 3))
  torso_depth = float(np.mean(z[list(_TORSO_JOINTS)])) + _TORSO_DEPTH_BIAS * h
  items.append(_Item(torso_depth, _convex_hull(box), torso_colour,
                     _TORSO_JOINTS))

  skin = _jitter(rng, _SKIN_TONES[rng.integers(len(_SKIN_TONES))], 10)
  width = max(_THICKNESS["neck"] * h, _MIN_THICKNESS)
  items.append(_Item(float(np.mean(z[list(_NECK_JOINTS)])),
                     _capsule(xy[mpii.THORAX], xy[mpii.UPPER_NECK], width),
                     skin, _NECK_JOINTS, width / 2,
                     (xy[mpii.THORAX], xy[mpii.UPPER_NECK])))
  items.append(_head_item(rng, body, place, skin))
  return items


def _head_item(rng, body: bodies.Body, place: bodies.Placement, skin) -> _Item:
  """A filled head ellipse (head top just inside it) with eyes and nose."""
  xy, z = place.apply(body.joints[list(HEAD_JOINTS)])
  axis = xy[1] - xy[0]
  length = max(np.linalg.norm(axis), 1.0)
  centre3d = body.joints[list(HEAD_JOINTS)].mean(0)
  radius = bodies.LENGTH["head"] / 2
  # Eyes and nose on the face side only: they show which way the head turns.
  left = np.cross(body.head_up, body.forward)
  extras = []
  dark = (25, 20, 20)
  for offset, size in ((0.85 * body.forward + 0.15 * body.head_up +
                        0.4 * left, 0.13),
                       (0.85 * body.forward + 0.15 * body.head_up -
                        0.4 * left, 0.13),
                       (1.0 * body.forward - 0.15 * body.head_up, 0.1)):
    p3 = centre3d + radius * offset
    if p3[2] < centre3d[2]:  # On the camera's side of the head.
      p, _ = place.apply(p3[None])
      r = max(size * radius * place.height, 1.0)
      extras.append((_ellipse(p[0], np.array([1.0, 0.0]), r, r, 8), dark))
  return _Item(float(z.mean()),
               _ellipse(xy.mean(0), axis / length, 0.58 * length,
                        0.42 * length), skin, HEAD_JOINTS,
               extras=tuple(extras))


def _draw_item(draw: ImageDraw.ImageDraw, labels: ImageDraw.ImageDraw,
               item: _Item, label: int) -> None:
  """Draws one shape in colour and, with its label, in the label map."""
  for canvas, fill in ((draw, item.colour), (labels, label)):
    canvas.polygon(item.polygon, fill=fill)
    for p in item.cap_points:
      r = item.caps
      canvas.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=fill)
  for polygon, colour in item.extras:
    draw.polygon(polygon, fill=colour)


def _background(rng: np.random.Generator, width: int, height: int
                ) -> np.ndarray:
  """A textured (height, width, 3) float32 background with pixel noise.

  One of: a linear gradient, stripes, or smooth colour blobs.
  """
  kind = rng.integers(3)
  if kind == 2:  # Blobs: coarse random colours upsampled bilinearly.
    cells = rng.uniform(0, 255, (rng.integers(3, 9), rng.integers(3, 9), 3))
    image = np.asarray(Image.fromarray(cells.astype(np.uint8)).resize(
        (width, height), Image.BILINEAR), np.float32)
  else:
    angle = rng.uniform(0, np.pi)
    xs = np.arange(width, dtype=np.float32) * np.cos(angle)
    ys = np.arange(height, dtype=np.float32) * np.sin(angle)
    t = (ys[:, None] + xs[None, :]) / max(width, height)
    if kind == 1:  # Stripes.
      t = 0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(0.03, 0.2))
    c0, c1 = rng.uniform(0, 255, (2, 1, 1, 3)).astype(np.float32)
    image = c0 + (c1 - c0) * t[..., None]
  # Grey (one-channel) noise: as good a texture and a third of the cost.
  noise = rng.standard_normal((height, width, 1), dtype=np.float32)
  return image + np.float32(rng.uniform(3, 12)) * noise


def _clutter_colour(rng) -> Tuple[int, int, int]:
  """Half the clutter uses limb colours, so colour alone can't find a limb."""
  if rng.random() < 0.5:
    return _jitter(rng, _LIMB_COLOURS[rng.integers(len(_LIMB_COLOURS))], 30)
  return tuple(int(c) for c in rng.integers(0, 256, 3))


def _draw_clutter(draw, labels, rng, width, height, count, max_size, label):
  """Random rectangles, ellipses, thick lines and triangles."""
  for _ in range(count):
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    size = rng.uniform(0.2, 1.0) * max_size
    colour = _clutter_colour(rng)
    kind = rng.integers(4)
    for canvas, fill in ((draw, colour), (labels, label)):
      if kind == 0:
        canvas.rectangle([x, y, x + size, y + size * rng.uniform(0.3, 1)],
                         fill=fill)
      elif kind == 1:
        canvas.ellipse([x, y, x + size, y + size * rng.uniform(0.3, 1)],
                       fill=fill)
      elif kind == 2:  # Limb-like bars.
        a = rng.uniform(0, 2 * np.pi)
        canvas.line([x, y, x + size * np.cos(a), y + size * np.sin(a)],
                    fill=fill, width=int(rng.integers(3, 12)))
      else:
        pts = np.array([x, y]) + rng.uniform(-size, size, (3, 2)) / 2
        canvas.polygon([tuple(p) for p in pts], fill=fill)



@dataclasses.dataclass
class Person:
  """One drawn person in 0-based pixels, before MPII's annotation rules."""
  joints: np.ndarray    # (16, 2) float.
  visible: np.ndarray   # (16,) bool: the pixel at the joint shows its limb.
  height: float         # Standing height in px (MPII scale * 200).
  main: bool            # The picture's main person (in front, in the crop).


def _fit_placement(rng, body: bodies.Body, height: float, width_px: int,
                   height_px: int, truncate: bool) -> bodies.Placement:
  """Places a body so its joints fit in the image (or deliberately don't)."""
  tilt = np.radians(rng.normal(0, 12) if rng.random() < 0.95 else
                    rng.uniform(-100, 100))
  place = bodies.Placement(height, tilt, np.zeros(2))
  xy, _ = place.apply(body.joints)
  margin = 0.08 * height  # Head radius and limb thickness around the joints.
  lo, hi = xy.min(0) - margin, xy.max(0) + margin
  span = hi - lo
  limit = np.array([width_px, height_px], float)
  fit = min(1.0, *(0.98 * limit / span))
  if fit < 1.0:  # Too large for this image: shrink rather than lose joints.
    place.height *= fit
    lo, hi, span = lo * fit, hi * fit, span * fit
  low, high = -lo, limit - hi
  offset = np.array([rng.uniform(a, max(a, b)) for a, b in zip(low, high)])
  if truncate:  # MPII people often leave the frame; those joints go missing.
    offset += rng.uniform(0.15, 0.4, 2) * span * rng.choice([-1, 1], 2)
  place.offset = offset
  return place


def _place_other(rng, body, height, width_px, height_px, main_xy, main_height
                 ) -> bodies.Placement:
  """Places a background person, keeping clear of the main person's centre."""
  best = None
  for _ in range(8):
    place = _fit_placement(rng, body, height, width_px, height_px,
                           truncate=rng.random() < 0.3)
    distance = np.linalg.norm(place.offset - main_xy)
    if best is None or distance > best[0]:
      best = (distance, place)
    if distance > 0.45 * main_height:
      break
  return best[1]


def render(rng: np.random.Generator, image_size: Tuple[int, int],
           max_people: int) -> Tuple[Image.Image, List[Person]]:
  """Draws one picture.

  Args:
    rng: the picture's generator (its draws decide everything).
    image_size: (min, max) width in pixels; the height is 0.6 to 1 x the
      width (at least 0.75 x min).
    max_people: people per picture are 1 to this (at most 4).

  Returns:
    (picture, people): the RGB picture and its people, main person last.
  """
  width = int(rng.integers(image_size[0], image_size[1] + 1))
  height = int(max(0.75 * image_size[0], width * rng.uniform(0.6, 1.0)))
  canvas = Image.fromarray(
      np.clip(_background(rng, width, height), 0, 255).astype(np.uint8))
  label_map = Image.new("L", (width, height), 0)
  draw, labels = ImageDraw.Draw(canvas), ImageDraw.Draw(label_map)
  num_people = 1 + int(rng.choice(max_people, p=_people_probs(max_people)))

  # Clutter first, then background people, then the main person in front.
  main_height = 200 * rng.uniform(0.6, 1.8)
  _draw_clutter(draw, labels, rng, width, height, int(rng.integers(4, 13)),
                0.5 * main_height, 0)
  main_body = bodies.sample_body(rng)
  main_place = _fit_placement(rng, main_body, main_height, width, height,
                              truncate=rng.random() < 0.12)
  placed = []
  for _ in range(num_people - 1):
    body = bodies.sample_body(rng)
    placed.append((body, _place_other(rng, body, 200 * rng.uniform(0.6, 1.8),
                                      width, height, main_place.offset,
                                      main_place.height), False))
  placed.append((main_body, main_place, True))

  people = []
  for p, (body, place, main) in enumerate(placed):
    items = sorted(_person_items(rng, body, place), key=lambda it: -it.depth)
    for k, item in enumerate(items):
      _draw_item(draw, labels, item, 1 + 16 * p + k)
    xy, _ = place.apply(body.joints)
    people.append((p, items, xy, place.height, main))

  # A few occluders in front, small beside the main person.
  if rng.random() < 0.25:
    _draw_clutter(draw, labels, rng, width, height, int(rng.integers(1, 3)),
                  0.2 * main_place.height, 255)
  return canvas, [_person_visibility(np.asarray(label_map), *person)
                  for person in people]


def _people_probs(max_people: int) -> np.ndarray:
  probs = np.array([0.35, 0.35, 0.2, 0.1][:max_people])
  return probs / probs.sum()


def _person_visibility(label_map, p, items, xy, height, main) -> Person:
  """A joint is visible when the pixel under it shows one of its shapes."""
  h, w = label_map.shape
  visible = np.zeros(mpii.NUM_JOINTS, bool)
  for j in range(mpii.NUM_JOINTS):
    x, y = np.round(xy[j]).astype(int)
    if 0 <= x < w and 0 <= y < h:
      own = {1 + 16 * p + k for k, it in enumerate(items) if j in it.joints}
      visible[j] = int(label_map[y, x]) in own
  return Person(xy, visible, height, main)

