"""Synthetic MPII: stick people written in MPII's own file layouts.

Tests, smoke runs and CPU demos need MPII-shaped data without the 12 GB
download. `generate` writes such a set, top to bottom in this file:

* poses: `sample_body` draws a 3D stick body of height 1 with all 16 MPII
  joints, human proportions and joint ranges (standing, walking, arms up,
  sitting, bending or free), seen from a random yaw; `Placement` maps it
  into an image;
* pictures: `render` draws several such people on a textured, cluttered
  background (clutter partly in limb colours, some of it limb-like bars),
  background people behind, the main person in front, each as filled limbs
  (left limbs warm, right limbs cool), torso, neck and a head with a face,
  back to front; a joint is visible when the pixel under it shows its own
  limb;
* annotations: MPII's conventions (clicked pixels, missing and unlabelled
  people, visibility flags in the release's three spellings, head boxes,
  objpos and scale, the single people of `single_people`);
* files: MPII's own formats, so the real readers (`mpii_official`,
  `mpii_json`, `acnn_jax.pckh`) are exercised unchanged:

    D/images/<9 digits>.jpg            always
    layout 'official' (the MPII release + pose-hg-train's validation split):
      D/mpii_human_pose_v1_u12_1.mat   struct RELEASE (annolist, img_train,
                                       single_person), MATLAB v5, 1-based
                                       pixels, with the release's awkward
                                       nesting and number types
      D/valid.h5                       index, person (0-based), imgname,
                                       part, normalize
    layout 'json' (HRNet / mmpose):
      D/annot/train.json, D/annot/valid.json
      D/annot/test.json                image, center, scale of the single
                                       people of the test images
      D/annot/gt_valid.mat             pos_gt_src, jnt_missing,
                                       headboxes_src (valid.json's order)
    layout 'both':                     both of the above, sharing D/images

* the marker: a user's MPII folder is never written into. `generate` writes
  only into a new or empty folder, or one that holds its marker file
  `ACNN_SYNTHETIC.json`: written first (with `complete: false`), it records
  the arguments of the set, and is completed when the last file is written.
  So a folder with the marker is synthetic, and tells whether its set is
  whole and which arguments made it (`read_marker`);
* the command line.

The output is a pure function of (seed, num_images, options): same bytes for
the same arguments.

Usage:
  python -m input_pipeline.synthetic --output_dir /tmp/mpii_synth \
      --num_images 300 --seed 0 --layout both
"""

import dataclasses
import inspect
import io
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import flags
from absl import logging
import h5py
import numpy as np
from PIL import Image
from PIL import ImageDraw
import scipy.io
import scipy.spatial

from acnn_jax import cli
from acnn_jax import errors
from acnn_jax import mpii
from acnn_jax import output_paths
from input_pipeline import mpii_json
from input_pipeline import mpii_official

LAYOUTS = ("official", "json", "both")


# ---------------------------------------------------------------- poses --


# Segment lengths as fractions of the standing height H = 200 * scale, after
# anthropometric tables (Drillis & Contini): thigh ~ shin, upper arm a little
# longer than forearm; standing ankle-to-head-top is ~0.96 H.
LENGTH = {
    "head": 0.15, "neck": 0.035, "torso": 0.28,
    "hip_half": 0.085, "shoulder_half": 0.12, "chest_depth": 0.05,
    "upper_arm": 0.165, "forearm": 0.145, "thigh": 0.245, "shin": 0.245,
}

# Pose families (name, probability). Angles below are degrees: `flex` swings a
# limb forward from hanging straight down, `abduct` swings it sideways away
# from the body, `bend` is knee/elbow flexion (knees only bend backwards).
_POSES = (("stand", 0.2), ("walk", 0.2), ("arms_up", 0.15), ("sit", 0.15),
          ("bend", 0.1), ("free", 0.2))


@dataclasses.dataclass
class Body:
  """A posed body in camera axes (x right, y down, z away), height 1.

  Attributes:
    joints: (16, 3) joint positions, pelvis at the origin.
    forward: (3,) unit vector the body faces.
    head_up: (3,) unit vector from upper neck to head top.
  """
  joints: np.ndarray
  forward: np.ndarray
  head_up: np.ndarray


def unit(v: np.ndarray) -> np.ndarray:
  return v / max(np.linalg.norm(v), 1e-9)


def _limb_direction(flex, abduct, side, forward, left, up) -> np.ndarray:
  """Unit direction of a limb from its root joint (see _POSES for angles)."""
  f, a = np.radians(flex), np.radians(abduct)
  return (np.cos(a) * (np.cos(f) * -up + np.sin(f) * forward) +
          np.sin(a) * side * left)


def _bend(direction, bend_deg, toward) -> np.ndarray:
  """Rotates `direction` by `bend_deg` towards `toward` (elbow flexion)."""
  t = toward - direction * (toward @ direction)
  if np.linalg.norm(t) < 1e-6:  # Toward is parallel: any perpendicular works.
    t = np.cross(direction, [0.0, 0.0, 1.0])
  t = unit(t)
  k = np.radians(bend_deg)
  return np.cos(k) * direction + np.sin(k) * t


def _pose_angles(rng: np.random.Generator, family: str) -> Dict[str, Any]:
  """Joint angles for one pose family, as per-side (right, left) pairs."""
  u = rng.uniform
  if family == "walk":
    swing = u(15, 35) * rng.choice([-1, 1])
    legs_flex = (swing, -swing * u(0.6, 1.0))
    legs_bend = tuple(u(0, 15) if f > 0 else u(10, 45) for f in legs_flex)
    arms_flex = (-legs_flex[0] * u(0.5, 1.2), -legs_flex[1] * u(0.5, 1.2))
    return dict(lean=u(-5, 12), legs_flex=legs_flex, legs_abduct=(u(0, 6),
                u(0, 6)), legs_bend=legs_bend, arms_flex=arms_flex,
                arms_abduct=(u(5, 15), u(5, 15)),
                arms_bend=(u(10, 60), u(10, 60)))
  if family == "sit":
    return dict(lean=u(-10, 20), legs_flex=(u(65, 100), u(65, 100)),
                legs_abduct=(u(0, 20), u(0, 20)),
                legs_bend=(u(60, 110), u(60, 110)),
                arms_flex=(u(0, 60), u(0, 60)), arms_abduct=(u(0, 25),
                u(0, 25)), arms_bend=(u(20, 100), u(20, 100)))
  if family == "bend":
    flex = u(50, 90)
    return dict(lean=u(30, 70), legs_flex=(flex + u(-10, 10), flex +
                u(-10, 10)), legs_abduct=(u(0, 15), u(0, 15)),
                legs_bend=(u(50, 120), u(50, 120)),
                arms_flex=(u(20, 100), u(20, 100)),
                arms_abduct=(u(0, 30), u(0, 30)),
                arms_bend=(u(0, 90), u(0, 90)))
  # Standing legs are shared by "stand", "arms_up" and, loosened, "free".
  legs = dict(lean=u(-5, 10), legs_flex=(rng.normal(0, 5), rng.normal(0, 5)),
              legs_abduct=(u(0, 12), u(0, 12)), legs_bend=(u(0, 10),
              u(0, 10)))
  if family == "stand":
    return dict(legs, arms_flex=(u(-15, 25), u(-15, 25)),
                arms_abduct=(u(5, 30), u(5, 30)),
                arms_bend=(u(0, 40), u(0, 40)))
  if family == "arms_up":
    return dict(legs, arms_flex=(u(0, 180), u(0, 180)),
                arms_abduct=(u(60, 175), u(60, 175)),
                arms_bend=(u(0, 60), u(0, 60)))
  return dict(lean=u(-20, 40), legs_flex=(u(-40, 110), u(-40, 110)),
              legs_abduct=(u(0, 45), u(0, 45)), legs_bend=(u(0, 140),
              u(0, 140)), arms_flex=(u(-60, 180), u(-60, 180)),
              arms_abduct=(u(0, 170), u(0, 170)),
              arms_bend=(u(0, 150), u(0, 150)))


def sample_body(rng: np.random.Generator) -> Body:
  """A random 3D pose seen from a random yaw (front, side, back views)."""
  names, probs = zip(*_POSES)
  angles = _pose_angles(rng, rng.choice(names, p=probs))
  yaw = rng.uniform(0, 2 * np.pi)
  up = np.array([0.0, -1.0, 0.0])
  forward = np.array([np.sin(yaw), 0.0, -np.cos(yaw)])
  left = np.cross(up, forward)  # Facing the camera, left is image right.

  lean, side_lean = np.radians(angles["lean"]), np.radians(rng.normal(0, 5))
  torso_up = unit(np.cos(lean) * np.cos(side_lean) * up +
                   np.sin(lean) * forward + np.sin(side_lean) * left)
  twist = np.radians(rng.normal(0, 10))
  shoulder_left = unit(np.cos(twist) * left + np.sin(twist) * forward)
  shoulder_forward = np.cross(shoulder_left, up)
  head_up = unit(torso_up + rng.normal(0, 0.15) * forward +
                  rng.normal(0, 0.1) * left)

  L = LENGTH
  joints = np.zeros((mpii.NUM_JOINTS, 3))
  joints[mpii.THORAX] = L["torso"] * torso_up
  joints[mpii.UPPER_NECK] = joints[mpii.THORAX] + L["neck"] * head_up
  joints[mpii.HEAD_TOP] = joints[mpii.UPPER_NECK] + L["head"] * head_up
  sides = ((-1, mpii.R_HIP, mpii.R_KNEE, mpii.R_ANKLE, mpii.R_SHOULDER,
            mpii.R_ELBOW, mpii.R_WRIST),
           (1, mpii.L_HIP, mpii.L_KNEE, mpii.L_ANKLE, mpii.L_SHOULDER,
            mpii.L_ELBOW, mpii.L_WRIST))
  for k, (side, hip, knee, ankle, shoulder, elbow, wrist) in enumerate(sides):
    flex, abduct = angles["legs_flex"][k], angles["legs_abduct"][k]
    joints[hip] = side * L["hip_half"] * left
    joints[knee] = joints[hip] + L["thigh"] * _limb_direction(
        flex, abduct, side, forward, left, up)
    joints[ankle] = joints[knee] + L["shin"] * _limb_direction(
        flex - angles["legs_bend"][k], abduct, side, forward, left, up)
    joints[shoulder] = joints[mpii.THORAX] + side * L["shoulder_half"] * (
        shoulder_left)
    upper = _limb_direction(angles["arms_flex"][k], angles["arms_abduct"][k],
                            side, shoulder_forward, shoulder_left, up)
    # Elbows flex towards the front, turned in or out by the upper arm's
    # rotation.
    roll = np.radians(rng.uniform(-45, 60))
    toward = (np.cos(roll) * shoulder_forward -
              np.sin(roll) * side * shoulder_left)
    joints[elbow] = joints[shoulder] + L["upper_arm"] * upper
    joints[wrist] = joints[elbow] + L["forearm"] * _bend(
        upper, angles["arms_bend"][k], toward)
  return Body(joints, forward, head_up)


@dataclasses.dataclass
class Placement:
  """Body units -> image pixels: scale by height, tilt in-plane, translate."""
  height: float
  tilt: float
  offset: np.ndarray  # (2,) image position of the pelvis (0-based pixels).

  def apply(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(k, 3) body points -> ((k, 2) 0-based pixel xy, (k,) depth in px)."""
    c, s = np.cos(self.tilt), np.sin(self.tilt)
    xy = points[:, :2] @ np.array([[c, s], [-s, c]]) * self.height
    return xy + self.offset, points[:, 2] * self.height


# ------------------------------------------------------------- pictures --


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
  d = unit(np.asarray(q, float) - p)
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


def _person_items(rng, body: Body, place: Placement
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
  depth = LENGTH["chest_depth"] * body.forward
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


def _head_item(rng, body: Body, place: Placement, skin) -> _Item:
  """A filled head ellipse (head top just inside it) with eyes and nose."""
  xy, z = place.apply(body.joints[list(HEAD_JOINTS)])
  axis = xy[1] - xy[0]
  length = max(np.linalg.norm(axis), 1.0)
  centre3d = body.joints[list(HEAD_JOINTS)].mean(0)
  radius = LENGTH["head"] / 2
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


def _fit_placement(rng, body: Body, height: float, width_px: int,
                   height_px: int, truncate: bool) -> Placement:
  """Places a body so its joints fit in the image (or deliberately don't)."""
  tilt = np.radians(rng.normal(0, 12) if rng.random() < 0.95 else
                    rng.uniform(-100, 100))
  place = Placement(height, tilt, np.zeros(2))
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
                 ) -> Placement:
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
  main_body = sample_body(rng)
  main_place = _fit_placement(rng, main_body, main_height, width, height,
                              truncate=rng.random() < 0.12)
  placed = []
  for _ in range(num_people - 1):
    body = sample_body(rng)
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


# ---------------------------------------------------------- annotations --


@dataclasses.dataclass
class Annotation:
  """One person as the release stores it (1-based pixels).

  The .mat, valid.h5 and the JSON files are all written from these, so they
  agree by construction.
  """
  objpos: Tuple[int, int]
  scale: float
  head_box: Tuple[int, int, int, int]      # x1, y1, x2, y2.
  joints: np.ndarray                       # (16, 2) float, as stored.
  annotated: np.ndarray                    # (16,) bool: has a point.
  is_visible: List[Any]                    # Raw .mat values per joint.
  has_points: bool


@dataclasses.dataclass
class ImageRecord:
  """One image: its file name, split and people."""
  name: str
  is_train: bool
  people: List[Annotation]


def _annotate(rng, person: Person, width: int, height: int,
              label_points: bool) -> Annotation:
  """Applies MPII's annotation conventions to one drawn person."""
  xy = person.joints + 1.0  # MATLAB pixels are 1-based.
  # Annotators clicked pixels (integers); the neck and head top were derived
  # from head boxes in the release and keep sub-pixel values for some people.
  joints = np.round(xy)
  if rng.random() < 0.5:
    for j in HEAD_JOINTS:
      joints[j] = np.round(xy[j], 4)
  inside = ((joints >= 1) & (joints <= [width, height])).all(1)
  annotated = inside & (rng.random(mpii.NUM_JOINTS) > 0.015)
  has_points = label_points and bool(annotated.any())
  if not has_points:
    annotated[:] = False

  # is_visible comes as 1/0, as the string '1'/'0', or empty (which
  # pose-hg-train read as visible).
  is_visible = []
  for j in range(mpii.NUM_JOINTS):
    flag = int(person.visible[j])
    kind = rng.random()
    if kind < 0.05:
      is_visible.append(np.zeros((0, 0), np.uint8))
    elif kind < 0.15:
      is_visible.append(str(flag))
    else:
      is_visible.append(np.array([[flag]], np.uint8))

  neck, top = xy[mpii.UPPER_NECK], xy[mpii.HEAD_TOP]
  centre = (neck + top) / 2
  half = np.linalg.norm(top - neck) * rng.uniform(0.95, 1.1, 2) / 2
  head_box = tuple(int(v) for v in np.round(
      np.concatenate([centre - half, centre + half])))
  torso_mid = (xy[mpii.PELVIS] + xy[mpii.THORAX]) / 2
  objpos = tuple(int(v) for v in np.round(
      torso_mid + rng.normal(0, 0.02 * person.height, 2)))
  scale = float(person.height / mpii.PIXEL_STD * rng.uniform(0.97, 1.03))
  return Annotation(objpos, scale, head_box, joints,
                                    annotated, is_visible, has_points)


def _make_image(seed: int, index: int, is_train: bool, image_size, max_people
                ) -> Tuple[Image.Image, ImageRecord]:
  """Renders and annotates image `index`; independent of the other images."""
  rng = np.random.default_rng([seed, 0, index])
  name = f"{int(rng.integers(1, 10**9)):09d}.jpg"
  picture, drawn = render(rng, image_size, max_people)
  # Shuffle so the main person is not always the last annorect.
  order = rng.permutation(len(drawn))
  drawn = [drawn[k] for k in order]
  people = []
  for person in drawn:
    # MPII left some people of training images without points.
    label_points = person.main or rng.random() < 0.75
    if rng.random() < 0.03:
      label_points = False
    people.append(_annotate(rng, person, picture.width, picture.height,
                            label_points))
  return picture, ImageRecord(name, is_train, people)


# A person is single when every other person's objpos is at least this many
# of the taller one's heights away (half a height: 100 px x the scale).
SINGLE_PERSON_GAP = 0.5


def single_people(people: Sequence[Annotation]) -> List[int]:
  """The release's `single_person` of one image: its separated people.

  MPII lists the people "sufficiently separated" from the others (the
  single-person benchmark predicts only these, each from its own objpos and
  scale). The synthetic stand-in: a person is single when no other person's
  objpos lies within `SINGLE_PERSON_GAP` of the taller one's height
  (200 px x scale). So a lone person is single, and of a crowded picture
  some people, or none, are; no random draw decides it, so the pictures
  are those of a set written without this field.

  Args:
    people: the image's people, in annorect order.

  Returns:
    Their 0-based annorect indices, ascending.
  """
  single = []
  for p, a in enumerate(people):
    if all(np.hypot(a.objpos[0] - b.objpos[0], a.objpos[1] - b.objpos[1]) >=
           SINGLE_PERSON_GAP * mpii.PIXEL_STD * max(a.scale, b.scale)
           for q, b in enumerate(people) if q != p):
      single.append(p)
  return single


def _splits(seed: int, num_images: int, test_fraction: float) -> np.ndarray:
  """img_train flags: ~test_fraction test images, at least one of each."""
  is_test = np.random.default_rng([seed, 1]).random(num_images) < test_fraction
  if num_images >= 2 and test_fraction > 0 and not is_test.any():
    is_test[-1] = True
  if num_images >= 1 and is_test.all():
    is_test[0] = False
  return ~is_test


def _make_unique(record: ImageRecord, seen: set,
                 rng: np.random.Generator) -> None:
  """Renames a (rare) colliding file name, deterministically."""
  while record.name in seen:
    record.name = f"{int(rng.integers(1, 10**9)):09d}.jpg"
  seen.add(record.name)


def _choose_valid(seed: int, records: Sequence[ImageRecord],
                  valid_fraction: float) -> List[Tuple[int, int]]:
  """~valid_fraction of the annotated train people, as sorted pairs.

  Returns:
    0-based (image index, person index) pairs, at least one when possible.
  """
  candidates = [(i, p) for i, r in enumerate(records) if r.is_train
                for p, a in enumerate(r.people) if a.has_points]
  if not candidates or valid_fraction <= 0:
    return []
  count = min(len(candidates), max(1, round(valid_fraction * len(candidates))))
  chosen = np.random.default_rng([seed, 2]).choice(len(candidates), count,
                                                   replace=False)
  return sorted(candidates[k] for k in chosen)


# ----------------------------------------------- files: the .mat writer --


def _mat_number(value) -> np.ndarray:
  """A 1x1 array typed as MATLAB's writer stored MPII's numbers.

  The release stores integral values in the smallest integer class (uint8,
  uint16, int16) and others as double; readers must cope with all of them.
  """
  value = float(value)
  if value == int(value):
    for dtype in (np.uint8, np.uint16, np.int16):
      info = np.iinfo(dtype)
      if info.min <= value <= info.max:
        return np.array([[value]], dtype)
  return np.array([[value]], np.float64)


def _struct_array(rows: Sequence[Dict[str, Any]], fields: Sequence[str],
                  shape: Tuple[int, int]) -> np.ndarray:
  """A MATLAB struct array (savemat writes structured arrays as such)."""
  array = np.empty(len(rows), dtype=[(f, object) for f in fields])
  for i, row in enumerate(rows):
    for f in fields:
      array[f][i] = row[f]
  return array.reshape(shape)


def _empty() -> np.ndarray:
  return np.zeros((0, 0))  # MATLAB's [].


def _points(a: Annotation) -> np.ndarray:
  """The 1xK `annopoints.point` struct array of the annotated joints."""
  rows = [{"id": _mat_number(j), "x": _mat_number(a.joints[j, 0]),
           "y": _mat_number(a.joints[j, 1]), "is_visible": a.is_visible[j]}
          for j in np.flatnonzero(a.annotated)]
  # The release lists points in annotation order, not by id.
  return _struct_array(rows, ("x", "y", "id", "is_visible"), (1, len(rows)))


def _annorect(record: ImageRecord) -> np.ndarray:
  """One image's 1xP `annorect`; test images only carry scale and objpos."""
  rows = []
  for a in record.people:
    row = {"x1": _mat_number(a.head_box[0]), "y1": _mat_number(a.head_box[1]),
           "x2": _mat_number(a.head_box[2]), "y2": _mat_number(a.head_box[3]),
           "annopoints": ({"point": _points(a)} if a.has_points else _empty()),
           "scale": _mat_number(a.scale),
           "objpos": {"x": _mat_number(a.objpos[0]),
                      "y": _mat_number(a.objpos[1])}}
    rows.append(row)
  fields = (("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")
            if record.is_train else ("scale", "objpos"))
  return _struct_array(rows, fields, (1, len(rows)))


def _single_person(records: Sequence[ImageRecord]) -> np.ndarray:
  """`RELEASE.single_person`: an Nx1 cell, per image a column of 1-based
  annorect indices (`single_people`), or [] when it has none."""
  cells = np.empty((len(records), 1), dtype=object)
  for i, record in enumerate(records):
    single = single_people(record.people)
    cells[i, 0] = (np.array(single, np.float64).reshape(-1, 1) + 1
                   if single else _empty())
  return cells


def _release(records: Sequence[ImageRecord]) -> Dict[str, Any]:
  """The RELEASE struct's fields that readers use, nested as in
  mpii_human_pose_v1_u12_1.mat."""
  annolist = _struct_array(
      [{"image": {"name": r.name}, "annorect": _annorect(r)}
       for r in records], ("image", "annorect"), (1, len(records)))
  return {"annolist": annolist,
          "img_train": np.array([[r.is_train for r in records]], np.uint8),
          "single_person": _single_person(records)}


def _savemat(path: str, variables: Dict[str, Any], seed: int) -> None:
  """savemat with a fixed header: scipy stamps the time, which breaks
  byte-for-byte determinism."""
  buffer = io.BytesIO()
  scipy.io.savemat(buffer, variables, do_compression=True, oned_as="column")
  data = bytearray(buffer.getvalue())
  text = (f"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: acnn-jax "
          f"input_pipeline.synthetic (seed {seed})").encode("ascii")
  data[:116] = text[:116].ljust(116, b" ")
  with open(path, "wb") as f:
    f.write(bytes(data))


# ----------------------------------------- files: valid.h5 and the JSON --


def _valid_rows(records, valid_pairs):
  """Per validation person: image name, pair and annotation."""
  return [(records[i].name, i, p, records[i].people[p]) for i, p in
          valid_pairs]


def _write_valid_h5(path: str, rows) -> None:
  """pose-hg-train's annot/valid.h5 for the validation people."""
  n = len(rows)
  part = np.zeros((n, mpii.NUM_JOINTS, 2))
  for k, (_, _, _, a) in enumerate(rows):
    # pose-hg-train stored whole pixels, 0 for joints without a point.
    part[k] = np.where(a.annotated[:, None], np.floor(a.joints), 0)
  boxes = np.array([a.head_box for _, _, _, a in rows], np.float64)
  columns = {
      "imgname": np.array([r[0].encode() for r in rows], dtype="S13"),
      "index": np.array([r[1] for r in rows], np.float64),
      "normalize": mpii.head_size(boxes.reshape(n, 4)),
      "part": part,
      "person": np.array([r[2] for r in rows], np.float64),
  }
  with h5py.File(path, "w", track_order=False) as f:
    for key, value in columns.items():
      # No timestamps in the object headers: same bytes for the same seed.
      f.create_dataset(key, data=value, track_times=False)


def write_official(output_dir: str, records: Sequence[ImageRecord],
                   valid_pairs: Sequence[Tuple[int, int]], seed: int) -> None:
  """The release .mat and valid.h5 (layout 'official')."""
  _savemat(os.path.join(output_dir, mpii_official.RELEASE_FILE),
           {"RELEASE": _release(records)}, seed)
  _write_valid_h5(os.path.join(output_dir, mpii_official.VALID_H5_FILE),
                  _valid_rows(records, valid_pairs))


def _json_entry(name: str, a: Annotation) -> Dict[str, Any]:
  """One HRNet/mmpose entry; unannotated joints are [-1, -1] as in HRNet."""
  joints = [[float(x), float(y)] if ok else [-1.0, -1.0]
            for (x, y), ok in zip(a.joints, a.annotated)]
  return {"joints_vis": [int(v) for v in a.annotated], "joints": joints,
          "image": name, "scale": round(a.scale, 6),
          "center": [float(a.objpos[0]), float(a.objpos[1])]}


def _test_entries(records: Sequence[ImageRecord]) -> List[Dict[str, Any]]:
  """HRNet's test.json: image, center and scale of the single people of
  the test images, in release order (HRNet's has no joints, and no
  release indices)."""
  entries = []
  for r in records:
    for p in ([] if r.is_train else single_people(r.people)):
      a = r.people[p]
      entries.append({"center": [float(a.objpos[0]), float(a.objpos[1])],
                      "scale": round(a.scale, 6), "image": r.name})
  return entries


def _write_gt_valid(path: str, rows, seed: int) -> None:
  """HRNet's gt_valid.mat: the validation ground truth in valid.json order."""
  n = len(rows)
  pos = np.zeros((mpii.NUM_JOINTS, 2, n))
  missing = np.ones((mpii.NUM_JOINTS, n), np.uint8)
  boxes = np.zeros((2, 2, n))
  for k, (_, _, _, a) in enumerate(rows):
    pos[:, :, k] = np.where(a.annotated[:, None], a.joints, 0)
    missing[:, k] = ~a.annotated
    boxes[:, :, k] = np.reshape(a.head_box, (2, 2))
  _savemat(path, {"jnt_missing": missing, "pos_gt_src": pos,
                  "headboxes_src": boxes}, seed)


def write_json(output_dir: str, records: Sequence[ImageRecord],
               valid_pairs: Sequence[Tuple[int, int]], seed: int) -> None:
  """annot/train.json, annot/valid.json, annot/test.json and
  annot/gt_valid.mat (layout 'json')."""
  annot = os.path.join(output_dir, mpii_json.ANNOT_DIR)
  os.makedirs(annot, exist_ok=True)
  valid_set = set(valid_pairs)
  train = [_json_entry(r.name, a) for i, r in enumerate(records) if r.is_train
           for p, a in enumerate(r.people)
           if a.has_points and (i, p) not in valid_set]
  rows = _valid_rows(records, valid_pairs)
  valid = [_json_entry(name, a) for name, _, _, a in rows]
  for file_name, entries in ((mpii_json.TRAIN_JSON_FILES[0], train),
                             (mpii_json.VALID_JSON_FILES[0], valid),
                             (mpii_json.TEST_JSON_FILES[0],
                              _test_entries(records))):
    with open(os.path.join(annot, file_name), "w") as f:
      json.dump(entries, f)
  _write_gt_valid(os.path.join(annot, mpii_json.GT_VALID_FILE), rows, seed)


# ----------------------------------- the marker: which folders are ours --


MARKER = "ACNN_SYNTHETIC.json"


def read_marker(directory: str) -> Optional[Dict[str, Any]]:
  """The marker of `directory`: {'settings': {...}, 'complete': bool}, or
  None when there is none (not a synthetic folder). An unreadable marker
  (a crash while writing it) reads as an incomplete set."""
  path = os.path.join(directory, MARKER)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      marker = json.load(f)
  except (OSError, ValueError):
    return {"settings": None, "complete": False}
  if not isinstance(marker, dict):
    return {"settings": None, "complete": False}
  return marker


def _write_marker(directory: str, settings: Dict[str, Any],
                  complete: bool) -> None:
  """Writes the marker atomically."""
  path = os.path.join(directory, MARKER)
  with open(path + ".tmp", "w") as f:
    json.dump({"settings": settings, "complete": complete}, f, indent=2)
  os.replace(path + ".tmp", path)


def _claim(directory: str, settings: Dict[str, Any]) -> None:
  """Makes `directory` ours before anything is written into it.

  Raises:
    errors.InputError: it exists, is not empty and has no marker: it is
      someone's data, not ours to write into.
  """
  if os.path.isdir(directory) and os.listdir(directory) and read_marker(
      directory) is None:
    raise errors.InputError(
        f"{directory} already holds files that are not a synthetic data set "
        f"(it has no {MARKER}); synthetic data is only written into a new or "
        "empty folder, or one it wrote before. Choose another folder.")
  os.makedirs(directory, exist_ok=True)
  _write_marker(directory, settings, complete=False)


# --------------------------------------------------------- the data set --


def generate(output_dir: str, num_images: int, seed: int = 0,
             layout: str = "official", valid_fraction: float = 0.2,
             image_size: Tuple[int, int] = (320, 640),
             test_fraction: float = 0.15, max_people: int = 4,
             jpeg_quality: int = 90) -> Dict[str, Any]:
  """Writes a synthetic MPII data set.

  Args:
    output_dir: directory to write into: new, empty, or written by this
      function before (it holds `MARKER`).
    num_images: number of images.
    seed: the output is a deterministic function of the arguments.
    layout: 'official' (release .mat + valid.h5), 'json' (HRNet annot/*.json +
      annot/gt_valid.mat) or 'both'; images always go to output_dir/images.
    valid_fraction: fraction of the annotated people of training images put
      in the validation split (at least one when there are any).
    image_size: (min, max) image width in pixels; heights are 0.6 to 1 x the
      width.
    test_fraction: fraction of images marked img_train = 0 (no points), at
      least one when num_images >= 2.
    max_people: people per image are 1 to this (at most 4).
    jpeg_quality: JPEG quality of the images.

  Returns:
    A summary dict: output_dir, layout, images, train_images, test_images,
    people, annotated_people, train_people, valid_people, test_people (the
    single people of the test images), seconds.

  Raises:
    errors.InputError: for an unknown layout or nonsensical sizes (a
      ValueError), or an `output_dir` that holds other files
      (`_claim`: a user's data is never written into).
  """
  if layout not in LAYOUTS:
    raise errors.InputError(f"layout must be one of {LAYOUTS}, got "
                            f"{layout!r}.")
  if num_images < 1 or not 1 <= max_people <= 4:
    raise errors.InputError("need num_images >= 1 and 1 <= max_people <= 4, "
                            f"got {num_images} and {max_people}.")
  start = time.perf_counter()
  settings = settings_of(num_images, seed, layout=layout,
                         valid_fraction=valid_fraction, image_size=image_size,
                         test_fraction=test_fraction, max_people=max_people,
                         jpeg_quality=jpeg_quality)
  _claim(output_dir, settings)
  image_dir = os.path.join(output_dir, mpii_official.IMAGES_DIR)
  os.makedirs(image_dir, exist_ok=True)
  is_train = _splits(seed, num_images, test_fraction)

  records, seen, rename_rng = [], set(), np.random.default_rng([seed, 3])
  for index in range(num_images):
    picture, record = _make_image(seed, index, bool(is_train[index]),
                                  tuple(image_size), max_people)
    _make_unique(record, seen, rename_rng)
    records.append(record)
    picture.save(os.path.join(image_dir, record.name), quality=jpeg_quality)

  valid_pairs = _choose_valid(seed, records, valid_fraction)
  if layout in ("official", "both"):
    write_official(output_dir, records, valid_pairs, seed)
  if layout in ("json", "both"):
    write_json(output_dir, records, valid_pairs, seed)
  _write_marker(output_dir, settings, complete=True)
  return _summary(output_dir, layout, records, valid_pairs,
                  time.perf_counter() - start)


def settings_of(num_images: int, seed: int, **options) -> Dict[str, Any]:
  """The arguments of `generate` that make a set, as its marker records
  them (JSON values; omitted options take `generate`'s defaults)."""
  defaults = {name: parameter.default for name, parameter in
              inspect.signature(generate).parameters.items()
              if parameter.default is not inspect.Parameter.empty}
  settings = {**defaults, **options, "num_images": int(num_images),
              "seed": int(seed)}
  return json.loads(json.dumps(settings))


def _summary(output_dir, layout, records, valid_pairs, seconds):
  train_people = sum(a.has_points for r in records if r.is_train
                     for a in r.people)
  return {
      "output_dir": output_dir, "layout": layout, "images": len(records),
      "train_images": sum(r.is_train for r in records),
      "test_images": sum(not r.is_train for r in records),
      "people": sum(len(r.people) for r in records),
      "annotated_people": train_people,
      "train_people": train_people - len(valid_pairs),
      "valid_people": len(valid_pairs),
      "test_people": sum(len(single_people(r.people)) for r in records
                         if not r.is_train),
      "seconds": round(seconds, 2),
  }


# --------------------------------------------------------- command line --


FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("output_dir", None, "Directory to write the data into.")
  flags.DEFINE_integer("num_images", 300, "Number of images.")
  flags.DEFINE_integer("seed", 0, "Random seed; same seed, same bytes.")
  flags.DEFINE_enum("layout", "official", LAYOUTS,
                    "official: release .mat + valid.h5; json: HRNet "
                    "annot/*.json + gt_valid.mat; both: both.")
  flags.DEFINE_float("valid_fraction", 0.2,
                     "Fraction of annotated training people for validation.")
  flags.mark_flag_as_required("output_dir")


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run allows none.
  output_paths.folder(FLAGS.output_dir, "--output_dir")
  summary = generate(FLAGS.output_dir, FLAGS.num_images, seed=FLAGS.seed,
                     layout=FLAGS.layout, valid_fraction=FLAGS.valid_fraction)
  logging.info("Synthetic MPII written: %s", summary)
  print(json.dumps(summary))


if __name__ == "__main__":
  cli.run(main, define_flags)
