"""What both predictors share: images and boxes in, crops, `Prediction` out.

`predict.Predictor` runs a checkpoint (Flax), `exported.ExportedPredictor` an
exported model (jax only); both check the images and boxes, crop and warp
them (`prepare_batch`) and hand back `Prediction`s (`to_predictions`) here,
so the two read a box and report a pose the same way. This module imports
neither Flax nor TensorFlow (`warp_crop` is the TensorFlow-free warp).
"""

import dataclasses
import os
from typing import Callable, NamedTuple, Optional, Sequence

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageOps

from acnn_jax import errors
from acnn_jax import geometry
from acnn_jax import mpii
from acnn_jax import visualize


def load_image(path) -> np.ndarray:
  """Reads an image file as (H, W, 3) uint8 RGB, upright per its EXIF tag.

  Raises:
    errors.InputError: the file is missing or is not a readable image.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise errors.InputError(f"image file not found: {path}")
  try:
    with Image.open(path) as picture:
      # Phone photos store their orientation in EXIF; keypoints should match
      # the picture as people see it.
      picture = ImageOps.exif_transpose(picture)
      return np.asarray(picture.convert("RGB"))
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    raise errors.InputError(f"cannot read image {path}: {error}") from error


def as_image(image) -> np.ndarray:
  """A path or an (H, W), (H, W, 3|4) uint8 array -> (H, W, 3) uint8 RGB."""
  if isinstance(image, (str, os.PathLike)):
    return load_image(image)
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise errors.InputError(
        f"expected a uint8 image, got dtype {image.dtype} (scale [0, 1] "
        "floats by 255 and cast).")
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if (image.ndim != 3 or image.shape[-1] not in (3, 4) or
      min(image.shape[:2]) < 1):
    raise errors.InputError(
        f"expected an (H, W, 3) image, got shape {image.shape}.")
  return image[..., :3]


def parse_box(text: str):
  """'x1,y1,x2,y2' -> a checked (x1, y1, x2, y2) tuple of floats.

  Raises:
    errors.InputError: not four numbers, or x2 <= x1 or y2 <= y1.
  """
  parts = text.replace(" ", "").split(",")
  try:
    box = tuple(float(part) for part in parts)
  except ValueError:
    box = ()
  if len(box) != 4:
    raise errors.InputError(
        f"bad box {text!r}: expected four numbers x1,y1,x2,y2.")
  return check_box(box)


def check_box(box):
  """Returns `box` as a float tuple; raises errors.InputError if not a box.

  A box must be at least one pixel wide and high: a smaller one crops a few
  interpolated pixels, and usually means coordinates given as fractions of
  the image instead of pixels.
  """
  box = tuple(float(v) for v in np.asarray(box, np.float64).reshape(-1))
  if len(box) != 4 or not np.all(np.isfinite(box)):
    raise errors.InputError(f"bad box {box}: expected four finite numbers "
                            "x1, y1, x2, y2.")
  x1, y1, x2, y2 = box
  if x2 <= x1 or y2 <= y1:
    raise errors.InputError(f"bad box {box}: needs x2 > x1 and y2 > y1.")
  if x2 - x1 < 1 or y2 - y1 < 1:
    raise errors.InputError(
        f"bad box {format_box(box)}: {x2 - x1:g} x {y2 - y1:g} pixels, less "
        "than one pixel wide or high; x1,y1,x2,y2 are image pixels, not "
        "fractions of the image.")
  return box


def format_box(box) -> str:
  """'x1,y1,x2,y2', the way --box takes it."""
  return ",".join(f"{float(v):g}" for v in box)


def whole_image_box(height: int, width: int):
  """The box of a whole image: its outer pixel edges (centres are 0-based)."""
  return (-0.5, -0.5, width - 0.5, height - 0.5)


def inside_share(box, height: int, width: int) -> float:
  """The share of a checked `box`'s area inside a height x width image."""
  x1, y1, x2, y2 = box
  left, top, right, bottom = whole_image_box(height, width)
  inside = (max(0.0, min(x2, right) - max(x1, left)) *
            max(0.0, min(y2, bottom) - max(y1, top)))
  return inside / ((x2 - x1) * (y2 - y1))


def check_box_in_image(box, height: int, width: int):
  """`check_box`, and the box must overlap the height x width image.

  A box partly outside the image is kept as given (not clipped, which would
  move the person in the crop): the crop is black there, as training crops
  are beyond the image's border. `prepare_batch` warns when less than half
  of a box is inside.

  Raises:
    errors.InputError: not a box (`check_box`), or wholly outside the image.
  """
  box = check_box(box)
  if inside_share(box, height, width) <= 0:
    right, bottom = whole_image_box(height, width)[2:]
    raise errors.InputError(
        f"box {format_box(box)} lies wholly outside the image, which is "
        f"{width} x {height} pixels (x from -0.5 to {right:g}, y from -0.5 to "
        f"{bottom:g}); give x1,y1,x2,y2 in pixels of the upright image.")
  return box


def box_to_crop(box):
  """A person box -> the crop's (center, scale).

  The crop is centred on the box centre and covers max(box w, box h) * 1.25
  original pixels: the 1.25 padding of MPII's crops (`mpii.SCALE_PADDING`),
  so a tight box leaves the person the margin training crops had. There is no
  15 * scale downward shift: unlike MPII's objpos, a box is centred on the
  person already.

  Args:
    box: (x1, y1, x2, y2) in original pixels (pixel centres are 0-based, so a
      whole W x H image is (-0.5, -0.5, W - 0.5, H - 0.5)).

  Returns:
    (center, scale): (2,) float32 centre and the scale (crop side / 200).
  """
  x1, y1, x2, y2 = check_box(box)
  center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0], np.float32)
  side = max(x2 - x1, y2 - y1) * mpii.SCALE_PADDING
  return center, np.float32(side / mpii.PIXEL_STD)


def warp_crop(image, center, scale, size) -> np.ndarray:
  """The (size, size, 3) float32 [0, 1] network input for one crop.

  Numpy (`geometry.warp_image_numpy`), so that predicting never pays
  TensorFlow's seconds of import; equal bit for bit to the warp training
  uses (`geometry.warp_image`, TensorFlow; tests/test_export.py checks it).
  """
  matrix = geometry.affine_matrix(center, scale, size)
  pixels = np.asarray(image, np.float32) / 255.0
  return geometry.warp_image_numpy(pixels, matrix, size)


def crop_to_original(points, center, scale, size) -> np.ndarray:
  """Maps (..., 2) input-crop pixels of one crop back to original pixels."""
  matrix = geometry.affine_matrix(center, scale, size)
  return geometry.apply_affine(geometry.invert_affine(matrix), points)


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One person's pose and what the network saw.

  Attributes:
    keypoints: (K, 2) float32 joints (x, y) in original pixels, 0-based.
    confidences: (K,) float32 heatmap peak values.
    heatmaps: (h, w, K) float32 final (flip-averaged) heatmaps on the crop.
    masks: (S, h, w) float32 attention mask of every stage on the crop.
    crop: (input_size, input_size, 3) uint8 network input.
    center: (2,) crop centre in original pixels.
    scale: crop scale (the crop covers 200 * scale original pixels).
  """
  keypoints: np.ndarray
  confidences: np.ndarray
  heatmaps: np.ndarray
  masks: np.ndarray
  crop: np.ndarray
  center: np.ndarray
  scale: float

  @property
  def crop_keypoints(self) -> np.ndarray:
    """(K, 2) joints in crop pixels (for drawing on `crop`)."""
    matrix = geometry.affine_matrix(self.center, self.scale,
                                    self.crop.shape[0])
    return geometry.apply_affine(matrix, self.keypoints)

  def to_records(self, names=mpii.JOINT_NAMES):
    """JSON-ready [{'joint', 'x', 'y', 'confidence'}] in joint order."""
    return [dict(joint=name, x=float(x), y=float(y), confidence=float(c))
            for name, (x, y), c in zip(names, self.keypoints,
                                       self.confidences)]

  def figure(self, image, threshold=visualize.DEFAULT_THRESHOLD,
             show_grid=False) -> np.ndarray:
    """`visualize.prediction_figure` of this prediction on its `image`."""
    return visualize.prediction_figure(
        as_image(image), self.keypoints, self.confidences, crop=self.crop,
        crop_keypoints=self.crop_keypoints, masks=self.masks,
        heatmaps=self.heatmaps, threshold=threshold, show_grid=show_grid)


class OnePersonPerImage:
  """What both predictors share: `predictor(image, box)` is one person.

  Subclasses define `predict_batch(images, boxes)`.
  """

  def __call__(self, image, box=None) -> Prediction:
    """Predicts one person.

    Args:
      image: (H, W, 3) uint8 RGB array, or a path to an image file.
      box: (x1, y1, x2, y2) person box in pixels; None takes the whole image.

    Returns:
      A `Prediction` (keypoints in original pixels).
    """
    return self.predict_batch([image], [box])[0]


class CropBatch(NamedTuple):
  """The network inputs of a batch of images (see `prepare_batch`).

  Attributes:
    inputs: (B, size, size, 3) float32 [0, 1] crops.
    centers: (B, 2) float32 crop centres in original pixels.
    scales: (B,) float32 crop scales.
  """
  inputs: np.ndarray
  centers: np.ndarray
  scales: np.ndarray


def prepare_batch(images: Sequence, boxes: Optional[Sequence], size: int,
                  warp: Callable = warp_crop) -> Optional[CropBatch]:
  """Checks images and boxes, and crops each image around its box.

  Args:
    images: (H, W, 3) uint8 RGB arrays or image paths (already `as_image`d).
    boxes: None, or one box (or None for the whole image) per image.
    size: side of the network input.
    warp: `warp(image, center, scale, size)` -> one [0, 1] crop.

  Returns:
    A `CropBatch`, or None when there are no images.

  Raises:
    errors.InputError: a bad image or box, or as many boxes as images.
  """
  images = [as_image(image) for image in images]
  if not images:
    return None
  boxes = [None] * len(images) if boxes is None else list(boxes)
  if len(boxes) != len(images):
    raise errors.InputError(
        f"got {len(images)} images but {len(boxes)} boxes.")
  for i, (image, box) in enumerate(zip(images, boxes)):
    if box is not None:
      box = check_box_in_image(box, *image.shape[:2])
      share = inside_share(box, *image.shape[:2])
      if share < 0.5:
        logging.warning(
            "Image %d: only %.0f%% of box %s lies inside the %d x %d image; "
            "the rest of the crop is black.", i, 100 * share,
            format_box(box), image.shape[1], image.shape[0])
  crops = [box_to_crop(whole_image_box(*image.shape[:2]) if box is None
                       else box) for image, box in zip(images, boxes)]
  centers = np.stack([center for center, _ in crops])
  scales = np.array([scale for _, scale in crops], np.float32)
  inputs = np.stack([warp(image, center, scale, size)
                     for image, (center, scale) in zip(images, crops)])
  return CropBatch(inputs, centers, scales)


def to_predictions(batch: CropBatch, keypoints, confidences, heatmaps,
                   masks) -> list:
  """One `Prediction` per crop of `batch`.

  Args:
    batch: the `CropBatch` the network ran on.
    keypoints: (B, K, 2) joints in original pixels.
    confidences: (B, K) heatmap peak values.
    heatmaps: (B, h, w, K) final heatmaps.
    masks: (B, S, h, w) every stage's attention mask.

  Raises:
    errors.InputError: some joint is NaN or infinite.
  """
  keypoints, confidences = np.asarray(keypoints), np.asarray(confidences)
  finite = (np.isfinite(keypoints).all(axis=(1, 2)) &
            np.isfinite(confidences).all(axis=1))
  if not finite.all():
    # NaN joints would be drawn nowhere and written as invalid JSON.
    raise errors.InputError(
        f"the network's output for image {int(np.argmin(finite))} holds NaN "
        "or inf, so it has no joints to report: its variables hold NaN or "
        "inf, or its computation overflows (config.dtype bfloat16?). Use "
        "another checkpoint.")
  crops = np.round(np.clip(batch.inputs, 0.0, 1.0) * 255.0).astype(np.uint8)
  return [
      Prediction(keypoints=keypoints[i], confidences=confidences[i],
                 heatmaps=np.asarray(heatmaps[i]), masks=np.asarray(masks[i]),
                 crop=crops[i], center=batch.centers[i],
                 scale=float(batch.scales[i]))
      for i in range(len(batch.inputs))
  ]
