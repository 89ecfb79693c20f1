"""Pictures of predictions: skeletons, heatmaps and ACNN's attention masks.

`attention_figure` is the one to look at (ACNN's Fig. 6), one row a person.

Every function takes and returns uint8 (H, W, 3) numpy arrays (float images in
[0, 1] are accepted too), so the same pictures go to PNG files (`save_png`) and
to TensorBoard (clu's `writer.write_images` takes a stacked (N, H, W, 3)).

Coordinates follow `geometry`: pixel (i, j) has its centre at x = j, y = i. A
heatmap or mask pixel j covers crop pixels 4j .. 4j + 3 (centre 4j + 1.5), so
masks are upsampled by repeating pixels and heatmaps by PIL's bilinear resize,
which keeps those centres.
"""

import functools
import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from acnn_jax import mpii

# Left limbs blue, right limbs red, the spine yellow (the usual pose colours).
SIDE_COLORS = {
    "left": (40, 140, 255),
    "right": (255, 50, 50),
    "center": (255, 210, 0),
}
# A trained hourglass puts peaks of about 0.5 to 1 on visible joints (the
# targets peak at 1); below 0.2 a joint is usually a guess.
DEFAULT_THRESHOLD = 0.2
MASK_THRESHOLD = 0.5
# The 0.5 level of a soft mask, drawn as a thin line (no skeleton colour).
CONTOUR_COLOR = (80, 255, 120)
# Dark grey between panels and rows: masked panels are black at their edges.
_GAP, _GAP_COLOR = 4, 40


def _as_rgb_uint8(image):
  """(H, W), (H, W, 1|3|4) uint8 or [0, 1] float -> (H, W, 3) uint8 copy."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
    raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}.")
  image = image[..., :3]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.dtype != np.uint8:
    image = np.round(np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0)
  return np.ascontiguousarray(image, dtype=np.uint8)


def _joint_side(joint):
  if joint in mpii.LEFT_JOINTS:
    return "left"
  if joint in mpii.RIGHT_JOINTS:
    return "right"
  return "center"


@functools.lru_cache(maxsize=None)
def _font(size=None):
  """PIL's default font, `size` pixels high if Pillow (>= 10.1) can."""
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow 10.0 has no size argument.
    return ImageFont.load_default()


def _label(image, text, position=(2, 2)):
  """Writes white text on a black box (readable on any picture), in place."""
  draw = ImageDraw.Draw(image)
  box = draw.textbbox(position, text, font=_font())
  draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=0)
  draw.text(position, text, fill=(255, 255, 255), font=_font())


def label(image, text):
  """A copy of `image` (uint8 RGB) with `text` in its top-left corner."""
  picture = Image.fromarray(_as_rgb_uint8(image))
  _label(picture, text)
  return np.asarray(picture)


def draw_skeleton(image, keypoints, confidences=None,
                  threshold=DEFAULT_THRESHOLD, line_width=None):
  """Draws MPII's skeleton on an image.

  Left limbs and joints are blue, right ones red, the spine and head yellow
  (`mpii.SKELETON` sides); joints are dots with a black rim.

  Args:
    image: (H, W, 3) uint8 (or [0, 1] float) image.
    keypoints: (K, 2) joint positions (x, y) in the image's pixels.
    confidences: optional (K,) scores; joints below `threshold` and limbs
      touching them are left out.
    threshold: minimum confidence to draw; None draws every joint.
    line_width: limb width in pixels; by default about 1/100 of the image's
      longer side.

  Returns:
    (H, W, 3) uint8 copy of the image with the skeleton.
  """
  picture = Image.fromarray(_as_rgb_uint8(image))
  keypoints = np.asarray(keypoints, np.float64).reshape(-1, 2)
  shown = np.isfinite(keypoints).all(axis=-1)
  if confidences is not None and threshold is not None:
    shown &= np.asarray(confidences, np.float64).reshape(-1) >= threshold
  if line_width is None:
    line_width = max(2, round(max(picture.size) / 100))
  radius = line_width + 1
  draw = ImageDraw.Draw(picture)
  for a, b, side in mpii.SKELETON:
    if shown[a] and shown[b]:
      draw.line([tuple(keypoints[a]), tuple(keypoints[b])],
                fill=SIDE_COLORS[side], width=line_width)
  for joint, (x, y) in enumerate(keypoints):
    if shown[joint]:
      draw.ellipse((x - radius, y - radius, x + radius, y + radius),
                   fill=SIDE_COLORS[_joint_side(joint)], outline=(0, 0, 0))
  return np.asarray(picture)


def colorize(values):
  """[0, 1] values (H, W) -> (H, W, 3) float colours, black-red-yellow-white."""
  values = np.clip(np.asarray(values, np.float32), 0.0, 1.0)[..., None]
  return np.clip(3.0 * values - np.array([0.0, 1.0, 2.0]), 0.0, 1.0)


def _resize(array, size, resample):
  """(h, w) float array -> (size[0], size[1]) float32 through PIL."""
  picture = Image.fromarray(np.asarray(array, np.float32))
  return np.asarray(picture.resize((size[1], size[0]), resample))


def heatmap_overlay(image_crop, heatmap, alpha=0.7, normalize=False):
  """One heatmap over the crop it was predicted on.

  Args:
    image_crop: (S, S, 3) uint8 network input crop.
    heatmap: (h, w) heatmap on the crop's grid (h = S / 4 for the hourglass).
    alpha: opacity of the heatmap where it reaches 1.
    normalize: divide by the map's maximum; by default values are clipped to
      [0, 1] so the brightness shows the confidence (targets peak at 1).

  Returns:
    (S, S, 3) uint8 picture.
  """
  crop = _as_rgb_uint8(image_crop).astype(np.float32) / 255.0
  values = _resize(heatmap, crop.shape[:2], Image.Resampling.BILINEAR)
  if normalize:
    values = values / max(float(values.max()), 1e-6)
  values = np.clip(values, 0.0, 1.0)[..., None]
  # Weighting by the value keeps the crop visible where the map is zero.
  weight = alpha * values
  out = crop * (1.0 - weight) + colorize(values[..., 0]) * weight
  return _as_rgb_uint8(out)


def _grid(panels, columns):
  """Tiles equal-sized (H, W, 3) panels row by row, black where none is left."""
  rows = -(-len(panels) // columns)
  h, w = panels[0].shape[:2]
  grid = np.zeros((rows * h, columns * w, 3), np.uint8)
  for index, panel in enumerate(panels):
    r, c = divmod(index, columns)
    grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = panel
  return grid


def heatmap_grid(image_crop, heatmaps, columns=4, names=mpii.JOINT_NAMES,
                 normalize=False, with_max=False):
  """Every joint's heatmap over the crop, one labelled tile per joint.

  Args:
    image_crop: (S, S, 3) uint8 crop the heatmaps belong to.
    heatmaps: (h, w, K) heatmaps (e.g. the final prediction).
    columns: tiles per row.
    names: K tile labels (MPII joint names by default).
    normalize: scale each map to its own maximum (see `heatmap_overlay`).
    with_max: add a last tile with the maximum over joints.

  Returns:
    (rows * S, columns * S, 3) uint8 grid.
  """
  heatmaps = np.asarray(heatmaps, np.float32)
  if names is None:
    names = [str(k) for k in range(heatmaps.shape[-1])]
  tiles = [label(heatmap_overlay(image_crop, heatmaps[..., k],
                                 normalize=normalize), names[k])
           for k in range(heatmaps.shape[-1])]
  if with_max:
    tiles.append(label(heatmap_overlay(image_crop, heatmaps.max(axis=-1),
                                       normalize=normalize), "max"))
  return _grid(tiles, columns)


def _upsample_mask(mask, size):
  """(h, w) mask -> (size, size) by pixel repetition (each mask pixel is a
  block of the crop), falling back to PIL's nearest for non-integer ratios."""
  mask = np.asarray(mask, np.float32)
  factor = size // mask.shape[0]
  if factor * mask.shape[0] == size and factor * mask.shape[1] == size:
    return np.repeat(np.repeat(mask, factor, axis=0), factor, axis=1)
  return _resize(mask, (size, size), Image.Resampling.NEAREST)


def _stage_masks(masks):
  """(S, h, w) or (S, h, w, 1) masks -> (S, h, w) float32."""
  masks = np.asarray(masks, np.float32)
  if masks.ndim == 4:
    masks = masks[..., 0]
  if masks.ndim != 3:
    raise ValueError(f"expected (stages, h, w[, 1]) masks, got {masks.shape}.")
  return masks


def attention_overlay(image_crop, masks, threshold=MASK_THRESHOLD, dim=0.0):
  """Each stage's mask over the crop, thresholded (see `attention_figure`).

  Where a mask is below `threshold` the crop is black (or dimmed to `dim` of
  its brightness). Panel i is labelled "M{i+1}" (stage i+1's mask).

  Args:
    image_crop: (S, S, 3) uint8 network input crop.
    masks: (num_stages, h, w[, 1]) masks in [0, 1].
    threshold: masks below it count as discarded.
    dim: brightness left in discarded regions (0: black, as in the paper).

  Returns:
    (S, num_stages * S, 3) uint8, the stages side by side.
  """
  crop = _as_rgb_uint8(image_crop)
  panels = []
  for stage, mask in enumerate(_stage_masks(masks)):
    kept = _upsample_mask(mask, crop.shape[0]) >= threshold
    panel = np.where(kept[..., None], crop, np.round(crop * dim))
    panel = panel.astype(np.uint8)
    panels.append(label(panel, _mask_caption(stage, mask, threshold)))
  return np.concatenate(panels, axis=1)


def _mask_caption(stage, mask, threshold=MASK_THRESHOLD):
  """"M1 mean 0.42 · keeps 37%": the mean tells soft masks apart whose
  thresholded share is the same (0.98 and 0.6 everywhere both keep 100%)."""
  mask = np.asarray(mask, np.float32)
  return (f"M{stage + 1} mean {mask.mean():.2f} \u00b7 keeps "
          f"{(mask >= threshold).mean():.0%}")


def _contour(kept, width=2):
  """(H, W) bool -> the kept pixels up to `width` 4-neighbour steps from a
  discarded one (2: a line that survives TensorBoard's downscaling)."""
  inside = kept
  for _ in range(width):  # Erosion; the picture's border is no contour.
    p = np.pad(inside, 1, mode="edge")
    inside = inside & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
  return kept & ~inside


def _soft_mask_panel(crop, mask, threshold=MASK_THRESHOLD):
  """The crop's brightness times the mask, and its `threshold` contour.

  Scaling, not thresholding, shows how much is kept: 0.98 everywhere leaves
  the crop, 0.3 on the background dims it, 0 is black (ACNN's Fig. 6)."""
  values = np.clip(_upsample_mask(mask, crop.shape[0]), 0.0, 1.0)
  panel = np.round(crop * values[..., None]).astype(np.uint8)
  panel[_contour(values >= threshold)] = CONTOUR_COLOR
  return panel


def _fit_height(image, keypoints, height):
  """Resizes an image to `height` rows, aspect kept, and keypoints or None."""
  image = _as_rgb_uint8(image)
  factor = height / image.shape[0]
  width = max(1, round(image.shape[1] * factor))
  resized = np.asarray(Image.fromarray(image).resize(
      (width, height), Image.Resampling.BILINEAR))
  if keypoints is None:
    return resized, None
  # Pixel centres map as (x + 0.5) * factor - 0.5, like PIL's resize.
  keypoints = (np.asarray(keypoints, np.float64) + 0.5) * np.array(
      [width / image.shape[1], factor]) - 0.5
  return resized, keypoints


def _pad_width(picture, width):
  extra = max(0, width - picture.shape[1])
  return np.pad(picture, ((0, 0), (0, extra), (0, 0)))


def prediction_figure(image, keypoints, confidences=None, crop=None,
                      crop_keypoints=None, masks=None, heatmaps=None,
                      threshold=DEFAULT_THRESHOLD, height=256,
                      show_grid=False):
  """One picture of a prediction: skeleton, heatmaps and attention masks.

  The top row, all `height` pixels high, shows the skeleton on the original
  image; when `crop` is given, the crop with the skeleton and the maximum of
  the heatmaps over it; and each stage's attention mask (`attention_overlay`).
  `show_grid` adds every joint's heatmap below (`heatmap_grid`).

  Args:
    image: (H, W, 3) original image.
    keypoints: (K, 2) joints in original pixels.
    confidences: optional (K,) scores for `threshold`.
    crop: optional (S, S, 3) network input crop.
    crop_keypoints: optional (K, 2) joints in crop pixels.
    masks: optional (stages, h, w[, 1]) attention masks on the crop.
    heatmaps: optional (h, w, K) final heatmaps on the crop.
    threshold: minimum confidence of a drawn joint (None: all); when no
      joint reaches it, the skeleton panel says so instead of showing none.
    height: height of the top row's panels.
    show_grid: append the per-joint heatmap grid (needs crop and heatmaps).

  Returns:
    (rows, columns, 3) uint8 figure.
  """
  resized, points = _fit_height(image, keypoints, height)
  title = "prediction"
  if (confidences is not None and threshold is not None and
      not np.any(np.asarray(confidences, np.float64) >= threshold)):
    title += f"\nno joint with confidence >= {threshold:g}"
  panels = [label(draw_skeleton(resized, points, confidences, threshold),
                  title)]
  if crop is not None:
    crop, crop_points = _fit_height(crop, crop_keypoints, height)
    if crop_points is not None:
      panels.append(label(draw_skeleton(crop, crop_points, confidences,
                                        threshold), "crop"))
    if heatmaps is not None:
      panels.append(label(heatmap_overlay(crop, np.max(heatmaps, axis=-1)),
                          "heatmaps (max)"))
    if masks is not None:
      panels.append(attention_overlay(crop, masks))
  figure = np.concatenate(panels, axis=1)
  if show_grid and crop is not None and heatmaps is not None:
    figure = _join([figure, heatmap_grid(crop, heatmaps, columns=4)], axis=0,
                   gap=0)
  return figure


def people_figure(image, keypoints, confidences=None, boxes=None,
                  labels=None, threshold=DEFAULT_THRESHOLD, title=None):
  """Every person's skeleton on one image, at the image's own size.

  Args:
    image: (H, W, 3) original image.
    keypoints: (P, K, 2) joints in original pixels, one row a person (P may
      be 0).
    confidences: optional (P, K) scores for `threshold`.
    boxes: optional (P, 4) person boxes x1, y1, x2, y2, drawn as white
      frames; each skeleton's lines are then about 1/60 of its box's longer
      side, so that small people far away stay readable.
    labels: optional P texts, written at each box's top-left corner (with
      `boxes` only).
    threshold: minimum confidence of a drawn joint (None: all).
    title: text for the top-left corner (e.g. why nobody is drawn); when
      people were given but no joint reaches `threshold`, a line says so.

  Returns:
    (H, W, 3) uint8 picture.
  """
  picture = _as_rgb_uint8(image)
  keypoints = np.asarray(keypoints, np.float64)
  count = len(keypoints) if keypoints.size else 0
  if boxes is not None:
    boxes = np.asarray(boxes, np.float64).reshape(count, 4)
    frames = Image.fromarray(picture)
    draw = ImageDraw.Draw(frames)
    for x1, y1, x2, y2 in boxes:
      draw.rectangle((x1, y1, x2, y2), outline=(255, 255, 255),
                     width=max(1, round(max(x2 - x1, y2 - y1) / 150)))
    picture = np.asarray(frames)
  shown = 0
  for p in range(count):
    scores = None if confidences is None else np.asarray(confidences)[p]
    width = None
    if boxes is not None:
      x1, y1, x2, y2 = boxes[p]
      width = max(2, round(max(x2 - x1, y2 - y1) / 60))
    picture = draw_skeleton(picture, keypoints[p], scores, threshold, width)
    shown += int(scores is None or threshold is None or
                 np.any(np.asarray(scores, np.float64) >= threshold))
  text = [] if title is None else [title]
  if count and not shown:
    text.append(f"no joint with confidence >= {threshold:g}")
  canvas = Image.fromarray(picture)
  for (x, y), name in zip([] if boxes is None else boxes[:, :2],
                          labels or ()):
    # Inside the picture, also for a box that starts beyond its edge.
    _label(canvas, name, (min(max(2.0, x + 2), canvas.size[0] - 20),
                          min(max(2.0, y + 2), canvas.size[1] - 12)))
  if text:
    _label(canvas, "\n".join(text))
  return np.asarray(canvas)


def _caption_strip(text, width):
  """A black strip with white `text`, the font shrunk until the text fits."""
  size = font_size = max(10, width // 14)
  while size > 8 and _font(size).getlength(text) > width - 6:
    size -= 1
  height = font_size + font_size // 2 + 4
  strip = Image.new("RGB", (width, height))
  ImageDraw.Draw(strip).text((3, height // 2), text, fill=(255, 255, 255),
                             font=_font(size), anchor="lm")
  return np.asarray(strip)


def _join(pictures, axis, gap=_GAP):
  """Equal-height pictures side by side (axis 1), or pictures stacked (axis
  0, the narrower padded with black), with grey gaps between them."""
  if axis == 0:
    width = max(p.shape[1] for p in pictures)
    pictures = [_pad_width(p, width) for p in pictures]
  shape = pictures[0].shape
  sep = np.full(shape[:axis] + (gap,) + shape[axis + 1:], _GAP_COLOR, np.uint8)
  parts = [part for picture in pictures for part in (picture, sep)]
  return np.concatenate(parts[:-1], axis=axis)


def attention_figure(crop, masks, keypoints=None, confidences=None,
                     threshold=DEFAULT_THRESHOLD, panel_size=192, title=None):
  """One person's row of ACNN's Fig. 6: the crop, then what each mask keeps.

  Panel 0 is the input crop with the skeleton; panel i (1 .. S-1) the crop's
  brightness times mask M_i (black where it is 0), a green line at its 0.5
  level and the skeleton, to see where the joints lie relative to what is
  kept. Captions read e.g. "M1 mean 0.42 · keeps 37%" (the mask's mean; the
  share of its pixels >= 0.5).

  The last stage's mask is left out: it gates nothing, so no loss reaches its
  head and it stays near its initial value (about 0.98); drawn, it would look
  like a decision the network never made.

  Args:
    crop: (C, C, 3) network input crop (uint8, or float in [0, 1]).
    masks: (S, h, w[, 1]) masks in [0, 1]; mask pixel j covers crop pixels
      4j .. 4j + 3 (C = 4h).
    keypoints: optional (K, 2) predicted joints (x, y) in crop pixels.
    confidences: optional (K,) scores; joints below `threshold` are not drawn.
    threshold: minimum confidence of a drawn joint (None: all).
    panel_size: side of each square panel, in pixels.
    title: caption of the crop panel (e.g. "person 3"); "input" by default.

  Returns:
    (caption + panel_size, S * panel_size + gaps, 3) uint8 row.
  """
  masks = _stage_masks(masks)
  crop, points = _fit_height(crop, keypoints, panel_size)
  captions = [title or "input"] + [_mask_caption(stage, mask)
                                   for stage, mask in enumerate(masks[:-1])]
  panels = [crop] + [_soft_mask_panel(crop, mask) for mask in masks[:-1]]
  if points is not None:
    panels = [draw_skeleton(p, points, confidences, threshold) for p in panels]
  return _join([np.concatenate([_caption_strip(text, panel_size), panel])
                for text, panel in zip(captions, panels)], axis=1)


def attention_grid(rows, gap=_GAP):
  """Stacks rows (e.g. several people's `attention_figure`) top to bottom.

  Args:
    rows: non-empty list of (H_i, W_i, 3) uint8 pictures.
    gap: grey pixels between rows; narrower rows are padded with black.

  Returns:
    (sum H_i + gaps, max W_i, 3) uint8 picture.
  """
  if not rows:
    raise ValueError("attention_grid needs at least one row.")
  return _join([_as_rgb_uint8(row) for row in rows], axis=0, gap=gap)


def save_png(array, path):
  """Writes an (H, W, 3) uint8 (or [0, 1] float) array as a PNG file."""
  directory = os.path.dirname(os.fspath(path))
  if directory:
    os.makedirs(directory, exist_ok=True)
  Image.fromarray(_as_rgb_uint8(array)).save(path, format="PNG")


def write_pictures(writer, directory, step, pictures):
  """Saves figures as `directory/step<step>_<i>.png` and logs them to
  TensorBoard as `validation/predictions` (padded to a common size).

  Args:
    writer: a clu metric writer.
    directory: where the PNG files go (created if needed).
    step: the training step, in the file names and the log.
    pictures: (H_i, W_i, 3) uint8 figures; nothing happens when empty.
  """
  if not pictures:
    return
  for i, picture in enumerate(pictures):
    save_png(picture, os.path.join(directory, f"step{step}_{i}.png"))
  height = max(p.shape[0] for p in pictures)
  width = max(p.shape[1] for p in pictures)
  padded = np.zeros((len(pictures), height, width, 3), np.uint8)
  for i, p in enumerate(pictures):
    padded[i, :p.shape[0], :p.shape[1]] = p
  writer.write_images(step, {"validation/predictions": padded})
