"""Pictures of predictions: skeletons, heatmaps and ACNN's attention masks.

Every function takes and returns uint8 (H, W, 3) numpy arrays (float images in
[0, 1] are accepted too), so the same pictures go to PNG files (`save_png`) and
to TensorBoard (clu's `writer.write_images` takes a stacked (N, H, W, 3)).

Coordinates follow `geometry`: pixel (i, j) has its centre at x = j, y = i. A
heatmap or mask pixel j covers crop pixels 4j .. 4j + 3 (centre 4j + 1.5), so
masks are upsampled by repeating pixels and heatmaps by PIL's bilinear resize,
which keeps those centres.
"""

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


def _font():
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
  names = list(names) if names is not None else [str(k) for k in
                                                  range(heatmaps.shape[-1])]
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


def attention_overlay(image_crop, masks, threshold=MASK_THRESHOLD, dim=0.0):
  """Each stage's attention mask over the crop, like ACNN's Fig. 6.

  Regions the mask discards (mask < `threshold`) are black (or dimmed to
  `dim` of their brightness); what it keeps shows the crop. Panel i is
  labelled "M{i+1}": the mask of stage i+1, which gates stage i+2's input and
  prediction (the last one gates nothing).

  Args:
    image_crop: (S, S, 3) uint8 network input crop.
    masks: (num_stages, h, w) or (num_stages, h, w, 1) masks in [0, 1].
    threshold: masks below it count as discarded (0.5, the binary masks').
    dim: brightness left in discarded regions (0: black, as in the paper;
      e.g. 0.25 keeps the context readable).

  Returns:
    (S, num_stages * S, 3) uint8, the stages side by side.
  """
  crop = _as_rgb_uint8(image_crop)
  masks = np.asarray(masks, np.float32)
  if masks.ndim == 4:
    masks = masks[..., 0]
  if masks.ndim != 3:
    raise ValueError(f"expected (stages, h, w[, 1]) masks, got {masks.shape}.")
  panels = []
  for stage, mask in enumerate(masks):
    kept = _upsample_mask(mask, crop.shape[0]) >= threshold
    panel = np.where(kept[..., None], crop, np.round(crop * dim))
    panel = panel.astype(np.uint8)
    panels.append(label(panel, f"M{stage + 1} keeps {kept.mean():.0%}"))
  return np.concatenate(panels, axis=1)


def _fit_height(image, keypoints, height):
  """Resizes an image to `height` rows (aspect kept) and its keypoints along."""
  image = _as_rgb_uint8(image)
  factor = height / image.shape[0]
  width = max(1, round(image.shape[1] * factor))
  resized = np.asarray(Image.fromarray(image).resize(
      (width, height), Image.Resampling.BILINEAR))
  # Pixel centres map as (x + 0.5) * factor - 0.5, like PIL's resize.
  keypoints = (np.asarray(keypoints, np.float64) + 0.5) * np.array(
      [width / image.shape[1], factor]) - 0.5
  return resized, keypoints


def _pad_width(picture, width):
  if picture.shape[1] >= width:
    return picture
  pad = np.zeros((picture.shape[0], width - picture.shape[1], 3), np.uint8)
  return np.concatenate([picture, pad], axis=1)


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
    threshold: minimum confidence of a drawn joint (None: all).
    height: height of the top row's panels.
    show_grid: append the per-joint heatmap grid (needs crop and heatmaps).

  Returns:
    (rows, columns, 3) uint8 figure.
  """
  resized, points = _fit_height(image, keypoints, height)
  panels = [label(draw_skeleton(resized, points, confidences, threshold),
                  "prediction")]
  if crop is not None:
    crop = _as_rgb_uint8(crop)
    factor = height / crop.shape[0]
    crop = np.asarray(Image.fromarray(crop).resize(
        (height, height), Image.Resampling.BILINEAR))
    if crop_keypoints is not None:
      crop_points = (np.asarray(crop_keypoints, np.float64) + 0.5) * factor
      crop_points = crop_points - 0.5
      panels.append(label(draw_skeleton(crop, crop_points, confidences,
                                        threshold), "crop"))
    if heatmaps is not None:
      panels.append(label(heatmap_overlay(crop, np.max(heatmaps, axis=-1)),
                          "heatmaps (max)"))
    if masks is not None:
      panels.append(attention_overlay(crop, masks))
  figure = np.concatenate(panels, axis=1)
  if show_grid and crop is not None and heatmaps is not None:
    grid = heatmap_grid(crop, heatmaps, columns=4)
    width = max(figure.shape[1], grid.shape[1])
    figure = np.concatenate([_pad_width(figure, width),
                             _pad_width(grid, width)], axis=0)
  return figure


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
