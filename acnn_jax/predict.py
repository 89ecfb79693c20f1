"""Pose estimation on one's own images: from a checkpoint or from an export.

A person box (or the whole image) stands in for MPII's objpos/scale; the crop
is warped (`warp_crop`, numpy: predicting imports no TensorFlow), run through
the network and decoded back to original pixels. Two predictors share the
images, boxes, crops and the `Prediction` they hand back:

* `Predictor` runs a checkpoint (Flax) through the heatmap function of
  `inference` (flip test included) and `inference.decode_to_original`, the
  code evaluation runs;
* `ExportedPredictor` runs the folder `python -m acnn_jax.export` writes, with
  jax and numpy alone: `ExportedModel` loads its `acnn.jax_export` (the
  network with its weights, flip test and decoding, serialized by
  `jax.export`), whose keypoints come in crop pixels (`codec`) and are
  mapped back through the crop's own inverse.

Library use:

  predictor = Predictor.from_checkpoint("runs/phase_c")
  # or, without Flax, orbax or TensorFlow:
  predictor = ExportedPredictor.from_export("exports/acnn")
  result = predictor("me.jpg", box=(120, 40, 380, 620))
  result.keypoints      # (16, 2) x, y in original pixels, 0-based
  result.confidences    # (16,)
  # Every person of a photo, one box each, in one batch, in box order:
  people = predictor.predict_people("crowd.jpg", [(10, 20, 110, 300),
                                                  (150, 30, 260, 310)])

  model = ExportedModel("exports/acnn")
  out = model(crops)            # (B, R, R, 3) float32 in [0, 1]
  out["keypoints"]              # (B, 16, 2) x, y in crop pixels

Importing this module loads neither Flax, orbax, ml_collections nor
TensorFlow (tests/test_export.py checks it); `Predictor.from_checkpoint`
imports `checkpoints` (Flax and orbax) when called.

Command line (prints the joints as JSON, writes a picture with the skeleton
and each stage's attention mask):

  python -m acnn_jax.predict --workdir runs/phase_c --image me.jpg \
      --box 120,40,380,620 --output me_pose.png

Every person of a photo, or of each photo in a folder, from a person
detector's boxes (COCO detection results, `detections`): writes their joints
as COCO keypoint results (`detections.keypoint_result`) and a picture per
image with every skeleton:

  python -m acnn_jax.predict --workdir runs/phase_c --image crowd.jpg \
      --boxes crowd_boxes.json --output crowd_pose.png   # + crowd_pose.json
  python -m acnn_jax.predict --workdir runs/phase_c --image_dir photos \
      --boxes detections.json --min_score 0.5 --output_dir poses
"""

import dataclasses
import json
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging
import jax
from jax import export as jax_export
import numpy as np
from PIL import Image
from PIL import ImageOps

from acnn_jax import cli
from acnn_jax import detections
from acnn_jax import errors
from acnn_jax import geometry
from acnn_jax import inference
from acnn_jax import mpii
from acnn_jax import output_paths
from acnn_jax import visualize
from acnn_jax.codec import HeatmapCodec

# What an export folder holds (`acnn_jax.export` writes it).
ARTIFACT_FILE = "acnn.jax_export"
METADATA_FILE = "export.json"
# export.json's layout; readers refuse a newer one.
FORMAT_VERSION = 1
# The exported function's outputs, by name (see `ExportedModel.__call__`).
OUTPUT_NAMES = ("keypoints", "confidences", "heatmaps", "masks")


# ------------------------------------------------------ images, boxes, crops

# How PIL's image modes become 8-bit RGB (`load_image`). PIL's own
# convert("RGB") is right for 8-bit modes without alpha, but clips wider ones
# (a 16-bit greyscale PNG turns pure white) and drops alpha.
#
# 8 bits per channel, no alpha: PIL's conversion is exact (bilevel 1 becomes
# 0 and 255; YCbCr and HSV by their formulas).
_RGB_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "HSV")
# With alpha (RGBa premultiplied): composited on white (`_on_white`).
_ALPHA_MODES = ("LA", "PA", "RGBA", "RGBa")
# 16-bit unsigned greyscale: scaled by 255 / 65535, rounded.
_16_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# 32-bit integers: scaled by the bit depth the file declares (`_declared_bits`)
# if it is 16 or fewer, else refused.
_INTEGER_MODE = "I"
# 32-bit floats: values in [0, 1] (the float image convention, which
# `as_image` asks of arrays too) are scaled by 255; others are refused.
_FLOAT_MODE = "F"
# The TIFF tag of the bits per sample.
_TIFF_BITS_PER_SAMPLE = 258
# What to do instead, the end of every refusal.
_SAVE_AS_8_BIT = ("Save it as 8-bit RGB or greyscale (PNG or JPEG) and pass "
                  "that.")


def _declared_bits(picture: Image.Image) -> Optional[int]:
  """The bits per pixel an 'I' (32-bit integer) image's file declares, or
  None. PIL decodes PGM of any depth above 8 bits (rescaled) and, in some
  versions, 16-bit greyscale PNG to 'I' values up to 65535."""
  if picture.format in ("PNG", "PPM"):
    return 16
  if picture.format == "TIFF":
    bits = picture.tag_v2.get(_TIFF_BITS_PER_SAMPLE)
    bits = bits[0] if isinstance(bits, tuple) else bits
    return int(bits) if bits else None
  return None


def _has_alpha(picture: Image.Image) -> bool:
  """An alpha channel, a palette or colour marked transparent (PNG tRNS,
  GIF)."""
  return (picture.mode in _ALPHA_MODES or "transparency" in picture.info or
          (picture.mode == "P" and picture.palette is not None and
           picture.palette.mode == "RGBA"))


def _mode_mistake(picture: Image.Image) -> Optional[str]:
  """Why the mode of an image (read from its header) cannot become 8-bit
  RGB without guessing, or None."""
  mode = picture.mode
  if mode in _RGB_MODES + _ALPHA_MODES + _16_BIT_MODES + (_FLOAT_MODE,):
    return None
  if mode == _INTEGER_MODE:
    bits = _declared_bits(picture)
    if bits is not None and bits <= 16:
      return None
    depth = (f"{bits}-bit values" if bits else
             f"{picture.format or 'its format'} declares no bit depth")
    return (f"it holds 32-bit integers (PIL mode I; {depth}), whose "
            "brightness range is unknown")
  if mode == "LAB":
    return ("it is a CIELAB image (PIL mode LAB), whose RGB colours "
            "depend on a white point the file does not give")
  return f"PIL mode {mode} has no known conversion to 8-bit RGB"


def _scaled(values: np.ndarray, top: int) -> np.ndarray:
  """Integers in [0, top] -> uint8 in [0, 255], rounded to nearest."""
  values = values.astype(np.int64)
  return ((values * 255 + top // 2) // top).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
  return np.repeat(grey[..., None], 3, axis=-1)


def _on_white(rgba: Image.Image) -> np.ndarray:
  """An RGBA picture composited on white, as viewers and browsers show it.

  Not its alpha dropped: the colour under a transparent pixel is hidden
  (black, or what an eraser left), and would put a background nobody sees,
  or a ghost, into the crop.
  """
  white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
  return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))


def _to_rgb(picture: Image.Image, bits: Optional[int],
            path: str) -> np.ndarray:
  """(H, W, 3) uint8 RGB of a picture whose mode `_mode_mistake` allowed;
  `bits`: `_declared_bits` of an 'I' one.

  Raises:
    errors.InputError: a float image with values outside [0, 1].
  """
  mode = picture.mode
  if mode in _16_BIT_MODES:
    return _grey_to_rgb(_scaled(np.asarray(picture), 2**16 - 1))
  if mode == _INTEGER_MODE:
    values = np.asarray(picture)
    top = 2**bits - 1
    if values.size and (values.min() < 0 or values.max() > top):
      raise errors.InputError(
          f"cannot use image {path}: it holds {bits}-bit integers (PIL mode "
          f"I), but values from {values.min()} to {values.max()}, beyond "
          f"0..{top}. {_SAVE_AS_8_BIT}")
    return _grey_to_rgb(_scaled(values, top))
  if mode == _FLOAT_MODE:
    values = np.asarray(picture)
    if not np.all(np.isfinite(values)):
      raise errors.InputError(
          f"cannot use image {path}: it holds 32-bit floats (PIL mode F), "
          f"some NaN or infinite. {_SAVE_AS_8_BIT}")
    if values.size and (values.min() < 0 or values.max() > 1):
      raise errors.InputError(
          f"cannot use image {path}: it holds 32-bit floats (PIL mode F) "
          f"from {values.min():g} to {values.max():g}; only floats in "
          f"[0, 1] have a known brightness. {_SAVE_AS_8_BIT}")
    return _grey_to_rgb(np.round(values * 255).astype(np.uint8))
  if _has_alpha(picture):
    return _on_white(picture.convert("RGBA"))
  return np.asarray(picture.convert("RGB"))


def _not_an_image_file(path: str) -> errors.InputError:
  if os.path.isdir(path):
    return errors.InputError(f"{path} is a folder, not an image file (a "
                             "folder of images is --image_dir).")
  return errors.InputError(f"image file not found: {path}")


def load_image(path) -> np.ndarray:
  """Reads an image file as (H, W, 3) uint8 RGB, upright per its EXIF tag.

  Every image mode PIL opens becomes 8-bit RGB without guessing, or is
  refused: 16-bit greyscale is scaled (not clipped) to 8 bits, an 'I' image
  by the bit depth its file declares, a float one with values in [0, 1] by
  255; alpha (LA, PA, RGBA, a transparent palette entry or colour) is
  composited on white (`_on_white`). CIELAB, 32-bit integers without a
  depth of at most 16 bits and floats outside [0, 1] are refused.

  Raises:
    errors.InputError: the file is missing, a folder, not a readable image,
      or an image whose values have no known 8-bit brightness.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise _not_an_image_file(path)
  try:
    with Image.open(path) as picture:
      mistake = _mode_mistake(picture)
      if mistake:
        raise errors.InputError(
            f"cannot use image {path}: {mistake}. {_SAVE_AS_8_BIT}")
      # Read before the turn below, whose copy keeps neither.
      bits = (_declared_bits(picture) if picture.mode == _INTEGER_MODE
              else None)
      # Phone photos store their orientation in EXIF; keypoints should match
      # the picture as people see it.
      picture = ImageOps.exif_transpose(picture)
      return _to_rgb(picture, bits, path)
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    if isinstance(error, errors.UserError):
      raise
    raise errors.InputError(f"cannot read image {path}: {error}") from error


def as_image(image) -> np.ndarray:
  """A path or an (H, W), (H, W, 3|4) uint8 array -> (H, W, 3) uint8 RGB.

  A fourth channel is alpha: composited on white, as `load_image` does.
  """
  if isinstance(image, (str, os.PathLike)):
    return load_image(image)
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise errors.InputError(
        f"expected a uint8 image, got dtype {image.dtype} (scale [0, 1] "
        "floats by 255 and cast).")
  if image.ndim == 2:
    image = _grey_to_rgb(image)
  if (image.ndim != 3 or image.shape[-1] not in (3, 4) or
      min(image.shape[:2]) < 1):
    raise errors.InputError(
        f"expected an (H, W, 3) image, got shape {image.shape}.")
  if image.shape[-1] == 4:
    return _on_white(Image.fromarray(image, "RGBA"))
  return image


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


def check_named_box(box, height: int, width: int, name: Optional[str]):
  """`check_box_in_image`, its message led by `name` (e.g. the file entry
  that gave the box) when there is one.

  Raises:
    errors.InputError: not a box, or wholly outside the image.
  """
  try:
    return check_box_in_image(box, height, width)
  except errors.InputError as error:
    if name is None:
      raise
    raise errors.InputError(f"{name}: {error}") from error


def prepare_batch(images: Sequence, boxes: Optional[Sequence], size: int,
                  names: Optional[Sequence[str]] = None
                  ) -> Optional[CropBatch]:
  """Checks images and boxes, and crops each image around its box.

  Args:
    images: (H, W, 3) uint8 RGB arrays or image paths (already `as_image`d).
    boxes: None, or one box (or None for the whole image) per image.
    size: side of the network input.
    names: what errors and warnings call each box (default: "Image i").

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
      name = None if names is None else names[i]
      box = check_named_box(box, *image.shape[:2], name)
      share = inside_share(box, *image.shape[:2])
      if share < 0.5:
        logging.warning(
            "%s: only %.0f%% of box %s lies inside the %d x %d image; "
            "the rest of the crop is black.", name or f"Image {i}",
            100 * share, format_box(box), image.shape[1], image.shape[0])
  crops = [box_to_crop(whole_image_box(*image.shape[:2]) if box is None
                       else box) for image, box in zip(images, boxes)]
  centers = np.stack([center for center, _ in crops])
  scales = np.array([scale for _, scale in crops], np.float32)
  # `warp_crop` is looked up here, when called, so that tests can replace it.
  inputs = np.stack([warp_crop(image, center, scale, size)
                     for image, (center, scale) in zip(images, crops)])
  return CropBatch(inputs, centers, scales)


def pad_batch(batch: CropBatch, size: int) -> CropBatch:
  """`batch` with its last crop repeated up to `size` crops (the network
  handles each crop alone, so the first ones' answers do not change)."""
  extra = size - len(batch.inputs)
  if extra <= 0:
    return batch
  return CropBatch(*(np.concatenate([array, np.repeat(array[-1:], extra, 0)])
                     for array in batch))


def to_predictions(batch: CropBatch, keypoints, confidences, heatmaps,
                   masks, names: Optional[Sequence[str]] = None) -> list:
  """One `Prediction` per crop of `batch`.

  Args:
    batch: the `CropBatch` the network ran on.
    keypoints: (B, K, 2) joints in original pixels.
    confidences: (B, K) heatmap peak values.
    heatmaps: (B, h, w, K) final heatmaps.
    masks: (B, S, h, w) every stage's attention mask.
    names: what the error calls each crop (default: "image i").

  Raises:
    errors.InputError: some joint is NaN or infinite.
  """
  keypoints, confidences = np.asarray(keypoints), np.asarray(confidences)
  finite = (np.isfinite(keypoints).all(axis=(1, 2)) &
            np.isfinite(confidences).all(axis=1))
  if not finite.all():
    # NaN joints would be drawn nowhere and written as invalid JSON.
    first = int(np.argmin(finite))
    name = f"image {first}" if names is None else names[first]
    raise errors.InputError(
        f"the network's output for {name} holds NaN "
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


# ------------------------------------------------------------- predictors

class PosePredictor:
  """What both predictors share: images and boxes in, `Prediction`s out.

  One person per image (`__call__`, `predict_batch`), or every person of one
  image (`predict_people`). Subclasses set `input_size` and define
  `_run(batch)`.
  """
  input_size: int

  def __call__(self, image, box=None) -> Prediction:
    """Predicts one person.

    Args:
      image: (H, W, 3) uint8 RGB array, or a path to an image file.
      box: (x1, y1, x2, y2) person box in pixels; None takes the whole image.

    Returns:
      A `Prediction` (keypoints in original pixels).
    """
    return self.predict_batch([image], [box])[0]

  def predict_batch(self, images: Sequence,
                    boxes: Optional[Sequence] = None) -> list:
    """Predicts one person in each of several images (any sizes) at once.

    Args:
      images: uint8 RGB arrays or image paths.
      boxes: None, or one box (or None for the whole image) per image.

    Returns:
      A list of `Prediction`, one per image.
    """
    batch = prepare_batch(images, boxes, self.input_size)
    if batch is None:
      return []
    return to_predictions(batch, *self._run(batch))

  def predict_people(self, image, boxes: Sequence,
                     names: Optional[Sequence[str]] = None) -> list:
    """Predicts every person of one image, one box each, in one batch.

    Each person is cropped and decoded exactly as `__call__(image, box)`
    does, so the answers equal one call per box.

    Args:
      image: (H, W, 3) uint8 RGB array, or a path to an image file.
      boxes: one (x1, y1, x2, y2) box in pixels per person.
      names: what errors and warnings call each box (default: "Box i"), e.g.
        the detections file's entry.

    Returns:
      A list of `Prediction`, one per box, in the order of `boxes`.
    """
    pixels = as_image(image)
    boxes = list(boxes)
    if not boxes:
      return []
    if any(box is None for box in boxes):
      raise errors.InputError(
          "predict_people takes one box per person; None (the whole image) "
          "is for __call__ and predict_batch.")
    if names is None:
      names = [f"Box {i}" for i in range(len(boxes))]
    batch = prepare_batch([pixels] * len(boxes), boxes, self.input_size,
                          names)
    # Photos hold any number of people, and every batch size compiles the
    # network anew: padded to a power of two, a folder of photos compiles
    # it a few times, not once per head count.
    padded = pad_batch(batch, 1 << (len(boxes) - 1).bit_length())
    outputs = [np.asarray(output)[:len(boxes)]
               for output in self._run(padded)]
    return to_predictions(batch, *outputs, names=names)

  def _run(self, batch: CropBatch):
    """The network on `batch`: (keypoints (B, K, 2) in original pixels,
    confidences (B, K), heatmaps (B, h, w, K), masks (B, S, h, w))."""
    raise NotImplementedError


# The name before predictors took several people per image (issue 24).
OnePersonPerImage = PosePredictor


class Predictor(PosePredictor):
  """Predicts MPII's 16 joints of people in images from a checkpoint.

  Each image is cropped around a person box (or the whole image, see
  `box_to_crop`), warped to input_size x input_size, scaled to [0, 1] like
  training, and run through `inference.make_predict_fn` (one jitted call per
  batch, flip test included); joints are decoded with the codec and mapped back
  to original pixels (`inference.decode_to_original`), as evaluation does.

  Attributes:
    model: the ACNN module.
    variables: its {'params', 'batch_stats'}.
    input_size: side of the network input.
    codec: the heatmap codec used for decoding.
  """

  def __init__(self, model, variables, input_size: int = 256,
               flip_test: bool = True, flip_shift: bool = False,
               masks_to_one: bool = False):
    """Builds a predictor from variables in memory.

    Args:
      model: an `models.ACNN`.
      variables: its variables ({'params', 'batch_stats'}).
      input_size: side of the square network input.
      flip_test: average with the mirrored image (docs/design.md section 4).
      flip_shift: HRNet/mmpose's one-pixel shift of the flipped heatmaps.
      masks_to_one: run as the plain stacked hourglass (phase A weights).
    """
    self.model = model
    self.variables = jax.device_put(variables)
    self.input_size = int(input_size)
    self.codec = HeatmapCodec(input_size=self.input_size)
    self._predict_fn = inference.make_predict_fn(
        model, flip_test=flip_test, flip_shift=flip_shift,
        masks_to_one=masks_to_one)

  @classmethod
  def from_checkpoint(cls, path, **overrides) -> "Predictor":
    """Loads a predictor from a workdir or checkpoint.

    Args:
      path: what `checkpoints.load_for_inference` accepts (a workdir or one
        checkpoint).
      **overrides: input_size, flip_test, flip_shift or masks_to_one values
        that replace the checkpoint config's (None keeps the config's).

    Returns:
      A `Predictor` with the checkpoint's model, variables and settings.
    """
    # Imported here: Flax and orbax, which exported models do without.
    from acnn_jax import checkpoints  # pylint: disable=g-import-not-at-top
    loaded = checkpoints.load_for_inference(path)
    settings = dict(input_size=loaded.config.input_size,
                    flip_test=loaded.config.flip_test,
                    flip_shift=loaded.config.flip_shift,
                    masks_to_one=loaded.masks_to_one)
    unknown = set(overrides) - set(settings)
    if unknown:
      raise TypeError(f"unknown settings {sorted(unknown)}; expected some of "
                      f"{sorted(settings)}.")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return cls(loaded.model, loaded.variables, **settings)

  def _run(self, batch):
    outputs = self._predict_fn(self.variables, batch.inputs)
    keypoints, confidences = inference.decode_to_original(
        self.codec, outputs["heatmaps"], batch.centers, batch.scales)
    outputs = jax.device_get(outputs)
    return (keypoints, confidences, outputs["heatmaps"],
            np.moveaxis(np.asarray(outputs["masks"])[..., 0], 0, 1))


def read_metadata(directory: str) -> dict:
  """The export.json of an export folder.

  Raises:
    errors.MissingError: the folder or its export.json does not exist.
    errors.InputError: export.json is damaged or of a newer format.
  """
  fix = f"Export again: python -m acnn_jax.export --output={directory} ..."
  if not os.path.isdir(directory):
    raise errors.MissingError(f"export folder not found: {directory} (write "
                              "one with `python -m acnn_jax.export`).")
  path = os.path.join(directory, METADATA_FILE)
  if not os.path.isfile(path):
    raise errors.MissingError(
        f"{directory} holds no {METADATA_FILE}: it is not a folder written by "
        "`python -m acnn_jax.export`.")
  metadata = errors.read_json(path, dict, "an export's description", fix)
  version = metadata.get("format_version")
  if not isinstance(version, int) or version > FORMAT_VERSION:
    raise errors.InputError(
        f"{path} has format_version {version!r}; this acnn_jax reads "
        f"{FORMAT_VERSION} and older. Update acnn_jax, or export with this "
        "one.")
  return metadata


class ExportedModel:
  """The exported network: (B, R, R, 3) crops in, keypoints and maps out.

  Attributes:
    directory: the export folder.
    metadata: its export.json (input and heatmap size, joint names, flip
      test, phase, step, checkpoint, output shapes, versions).
    input_size: R, the side of the crops it takes.
  """

  def __init__(self, directory):
    """Loads `directory`/acnn.jax_export and export.json.

    Raises:
      errors.MissingError: no such folder, export.json or artifact.
      errors.InputError: a damaged file, or an artifact exported for other
        platforms than this machine's.
    """
    self.directory = os.fspath(directory)
    self.metadata = read_metadata(self.directory)
    self.input_size = int(self.metadata["input_size"])
    path = os.path.join(self.directory, ARTIFACT_FILE)
    if not os.path.isfile(path):
      raise errors.MissingError(
          f"{self.directory} holds no {ARTIFACT_FILE} (exported with "
          "--formats=saved_model only?); export again with --formats=jax.")
    with open(path, "rb") as f:
      blob = f.read()
    try:
      self._exported = jax_export.deserialize(bytearray(blob))
    except Exception as error:  # pylint: disable=broad-except
      # A truncated or foreign file fails anywhere in the deserializer.
      raise errors.InputError(
          f"{path} cannot be read as a jax.export artifact ({error}); export "
          "again.") from error
    platform = jax_export.default_export_platform()
    if platform not in self._exported.platforms:
      raise errors.InputError(
          f"{path} was exported for {', '.join(self._exported.platforms)}, "
          f"but JAX runs on {platform} here; export again with "
          f"--platforms={platform} (or run JAX on one of those).")
    # One compile per batch size, then cached.
    self._call = jax.jit(self._exported.call)

  def __call__(self, images) -> Dict[str, np.ndarray]:
    """Runs the network on crops.

    Args:
      images: (B, R, R, 3) float32 crops in [0, 1] (`warp_crop` makes them
        from an image and a box).

    Returns:
      {name: numpy array} for the `OUTPUT_NAMES`: keypoints (B, K, 2) x, y in
      crop pixels (0-based pixel centres, `codec.HeatmapCodec.to_crop`),
      confidences (B, K), heatmaps (B, h, w, K), masks (B, S, h, w).
    """
    images = np.asarray(images, np.float32)
    size = self.input_size
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
      raise errors.InputError(
          f"expected (B, {size}, {size}, 3) crops, got shape {images.shape}.")
    return {name: np.asarray(value)
            for name, value in self._call(images).items()}


class ExportedPredictor(PosePredictor):
  """`Predictor` on an exported network (same calls, same answers).

  Attributes:
    model: the `ExportedModel`.
    input_size: side of the network input.
  """

  def __init__(self, model: ExportedModel):
    self.model = model
    self.input_size = model.input_size

  @classmethod
  def from_export(cls, directory) -> "ExportedPredictor":
    """Loads the export folder `directory` (see `ExportedModel`)."""
    return cls(ExportedModel(directory))

  def _run(self, batch):
    outputs = self.model(batch.inputs)
    # The network decoded the joints into crop pixels; the crop's own inverse
    # takes them to the image.
    keypoints = np.stack([
        geometry.crop_to_original(points, center, scale, self.input_size)
        for points, center, scale in zip(outputs["keypoints"], batch.centers,
                                         batch.scales)])
    return (keypoints, outputs["confidences"], outputs["heatmaps"],
            outputs["masks"])


# ------------------------------------------------------------ command line

def run(predictor: PosePredictor, image, box=None,
        output: Optional[str] = None,
        threshold=visualize.DEFAULT_THRESHOLD) -> dict:
  """What the command line does: predict, optionally save the picture.

  Args:
    predictor: a `Predictor` or `ExportedPredictor`.
    image: an image path or (H, W, 3) uint8 array.
    box: None (whole image) or an (x1, y1, x2, y2) box.
    output: path of the PNG to write (skeleton + attention masks), or None.
    threshold: minimum confidence of the joints drawn.

  Returns:
    A JSON-ready dict: image (the path, if one was given), box, keypoints
    (`Prediction.to_records`) and output.
  """
  name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
  pixels = as_image(image)
  box = None if box is None else check_box_in_image(box, *pixels.shape[:2])
  prediction = predictor(pixels, box)
  if output:
    visualize.save_png(prediction.figure(pixels, threshold=threshold), output)
    best = float(np.max(prediction.confidences))
    if threshold is not None and not best >= threshold:
      logging.warning(
          "No joint has confidence >= %g (the highest is %.3g), so %s shows "
          "no skeleton; lower --threshold to see the best guesses, or check "
          "the box.", threshold, best, output)
  return dict(image=name, box=None if box is None else list(box),
              keypoints=prediction.to_records(), output=output or None)


# ------------------------------------- every person of a photo, from boxes

# What --image_dir reads: the extensions PIL opens that photos come in.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif",
                    ".tiff", ".webp")
# EXIF orientations 5 to 8 turn the picture a quarter (`ImageOps
# .exif_transpose`), swapping its width and height.
_EXIF_ORIENTATION, _QUARTER_TURNS = 0x0112, (5, 6, 7, 8)


def image_shape(path) -> Tuple[int, int]:
  """(height, width) of an image file as shown (after its EXIF rotation),
  from its header: checking boxes needs no decoded pixels.

  Raises:
    errors.InputError: the file is missing, a folder, not a readable image,
      or of a mode `load_image` refuses whatever its pixels (`_mode_mistake`).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise _not_an_image_file(path)
  try:
    with Image.open(path) as picture:
      mistake = _mode_mistake(picture)
      width, height = picture.size
      if picture.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
        width, height = height, width
  except (OSError, ValueError, Image.DecompressionBombError) as error:
    raise errors.InputError(f"cannot read image {path}: {error}") from error
  if mistake:  # Found before the network is loaded, not after.
    raise errors.InputError(
        f"cannot use image {path}: {mistake}. {_SAVE_AS_8_BIT}")
  return height, width


def image_files(folder: str) -> List[str]:
  """The sorted names of the image files (`IMAGE_EXTENSIONS`) in `folder`.

  Raises:
    errors.MissingError: no such folder.
    errors.InputError: it holds no image file.
  """
  if not os.path.isdir(folder):
    raise errors.MissingError(f"image folder not found: {folder}")
  names = sorted(
      name for name in os.listdir(folder)
      if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and
      os.path.isfile(os.path.join(folder, name)))
  if not names:
    raise errors.InputError(
        f"{folder} holds no image file (of {', '.join(IMAGE_EXTENSIONS)}).")
  return names


def picture_names(file_names: Sequence[str]) -> List[str]:
  """The picture of each image: `<stem>_pose.png`, or `<stem>_<extension>
  _pose.png` where two images share a stem (a.jpg, a.png)."""
  stems = [os.path.splitext(name)[0] for name in file_names]
  return [f"{stem}_pose.png" if stems.count(stem) == 1 else
          f"{stem}_{os.path.splitext(name)[1][1:]}_pose.png"
          for stem, name in zip(stems, file_names)]


def check_detection(detection: detections.Detection, height: int,
                    width: int, image: str) -> None:
  """`check_box_in_image` for a detection's bbox, in its own words.

  Raises:
    errors.InputError: the bbox is under a pixel wide or high, or lies
      wholly outside the height x width `image`; the message names the entry.
  """
  bbox = "[" + ", ".join(f"{v:g}" for v in detection.bbox) + "]"
  if min(detection.bbox[2:]) < 1:
    raise errors.InputError(
        f"{detection.label}: bbox {bbox} is less than one pixel wide or "
        "high; [x, y, w, h] are image pixels, not fractions of the image.")
  if inside_share(detection.box, height, width) <= 0:
    raise errors.InputError(
        f"{detection.label}: bbox {bbox} lies wholly outside {image}, which "
        f"is {width} x {height} pixels; give [x, y, w, h] in pixels of the "
        "upright image (or is the image_id wrong?).")


class People(NamedTuple):
  """One image's people to predict (see `plan_people`).

  Attributes:
    image: the image file.
    people: its kept `detections.Detection`s, in the file's order.
    low_scores: how many of its person boxes scored below the minimum.
  """
  image: str
  people: List[detections.Detection]
  low_scores: int


def plan_people(images: Sequence[str], boxes_file: str,
                min_score: float = detections.DEFAULT_MIN_SCORE,
                folder: Optional[str] = None) -> List[People]:
  """Reads a detections file and checks it against the images, before any
  network is loaded.

  Args:
    images: the image files to predict on.
    boxes_file: the detections (`detections.read`).
    min_score: person boxes scoring less are left out.
    folder: the folder `images` are all of (--image_dir): then every entry
      must name one of them. Without it (--image), entries for other images
      are left out, but some entry must name one of `images`.

  Returns:
    A `People` per image, in the order of `images`.

  Raises:
    errors.InputError: a malformed file or entry, an entry naming no image,
      or a box wholly outside its image; the message names the entry.
  """
  entries = detections.read(boxes_file)
  names = [os.path.basename(image) for image in images]
  found, unmatched = detections.by_image(entries, names)
  if unmatched and folder is not None:
    entry = unmatched[0]
    raise errors.InputError(
        f"{entry.label} names no image in {folder}: "
        f"{detections.match_rule(entry.image_id)}. Fix the image_id, or "
        "give the --image_dir that holds the image.")
  if unmatched and not found:
    ids = sorted({repr(d.image_id) for d in unmatched})
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    stem = os.path.splitext(names[0])[0]
    ways = [repr(names[0]), repr(stem)] + (
        [str(int(stem))] if stem.isdecimal() and stem.isascii() else [])
    raise errors.InputError(
        f"{boxes_file} holds no entry for {images[0]} (its image_ids: "
        f"{shown}); give that image's entries image_id "
        f"{' or '.join(ways)}, or pass the --image they are for.")
  if unmatched:
    logging.info("Left out %s of %s for other images.",
                 _count(len(unmatched), "entry", "entries"), boxes_file)
  plan, other_categories = [], 0
  for image, name in zip(images, names):
    kept, others, low = detections.keep_people(found.get(name, []),
                                               min_score)
    other_categories += others
    if kept:
      height, width = image_shape(image)
      for detection in kept:
        check_detection(detection, height, width, image)
    plan.append(People(image, kept, low))
  if other_categories:
    logging.info("Left out %s of %s whose category_id is not %d (person).",
                 _count(other_categories, "entry", "entries"), boxes_file,
                 detections.PERSON_CATEGORY)
  return plan


def _count(count: int, thing: str, things: str) -> str:
  """'1 entry', '3 entries'."""
  return f"{count} {thing if count == 1 else things}"


def run_people(predictor: PosePredictor, people: People,
               output: Optional[str] = None,
               threshold=visualize.DEFAULT_THRESHOLD,
               min_score: float = detections.DEFAULT_MIN_SCORE) -> list:
  """Predicts every kept person of one image (one batch), optionally draws
  them all on it.

  Args:
    predictor: a `Predictor` or `ExportedPredictor`.
    people: the image and its boxes (`plan_people`).
    output: PNG to write: the image with every skeleton, box and score.
    threshold: minimum confidence of the joints drawn.
    min_score: the minimum score the boxes were kept at (for messages).

  Returns:
    The image's people in COCO's keypoint results format
    (`detections.keypoint_result`), in the order of `people.people`.
  """
  boxes = [detection.box for detection in people.people]
  if not boxes:
    why = (f"its {people.low_scores} person boxes score below --min_score "
           f"{min_score:g}" if people.low_scores else "it has no person box")
    logging.warning("%s: no person to predict: %s.", people.image, why)
  else:
    logging.info("%s: %s; left out %s below --min_score %g.", people.image,
                 _count(len(boxes), "person", "people"),
                 _count(people.low_scores, "person box", "person boxes"),
                 min_score)
  pixels = load_image(people.image)
  predictions = predictor.predict_people(
      pixels, boxes, [detection.label for detection in people.people])
  if output:
    title = None
    if not boxes:
      title = "no person box" + (
          f" with score >= {min_score:g}" if people.low_scores else "")
    picture = visualize.people_figure(
        pixels, [p.keypoints for p in predictions],
        [p.confidences for p in predictions], boxes=boxes,
        labels=[f"{i + 1}: {d.score:.2f}"
                for i, d in enumerate(people.people)],
        threshold=threshold, title=title)
    visualize.save_png(picture, output)
  return [detections.keypoint_result(detection, p.keypoints, p.confidences)
          for detection, p in zip(people.people, predictions)]


def results_json(results: Sequence[dict]) -> str:
  """COCO keypoint results as strict JSON, one person a line."""
  # allow_nan=False: NaN or Infinity would not parse (Predictor refuses
  # them).
  lines = ",\n".join(json.dumps(r, allow_nan=False) for r in results)
  return f"[\n{lines}\n]\n" if results else "[]\n"


def check_usage(image=None, image_dir=None, box=None, boxes=None,
                output=None, output_dir=None, output_json=None,
                min_score=detections.DEFAULT_MIN_SCORE) -> None:
  """Refuses flags that do not go together (the command's flags' values).

  Raises:
    app.UsageError: the first clash, and how to call instead.
  """
  if (image is None) == (image_dir is None):
    raise app.UsageError("give --image=FILE, or --image_dir=FOLDER with "
                         "--boxes=FILE; one of them.")
  if box is not None and boxes is not None:
    raise app.UsageError("--box is one person's box, --boxes a file of "
                         "them; give one.")
  if boxes is None:
    for flag, value in (("image_dir", image_dir), ("output_dir", output_dir),
                        ("output_json", output_json)):
      if value is not None:
        raise app.UsageError(
            f"--{flag} goes with --boxes=FILE (person boxes as COCO "
            "detection results).")
  if image_dir is not None and output is not None:
    raise app.UsageError("--output is one picture; with --image_dir give "
                         "--output_dir=FOLDER.")
  if output is not None and output_dir is not None:
    raise app.UsageError("give --output=FILE.png or --output_dir=FOLDER, "
                         "not both.")
  if (image_dir is not None and output_dir is not None and
      os.path.abspath(image_dir) == os.path.abspath(output_dir)):
    raise app.UsageError("give an --output_dir other than --image_dir: a "
                         "second run would take the pictures for photos.")
  if not np.isfinite(min_score):
    raise app.UsageError(f"--min_score must be a number, not {min_score}.")


def json_destination(output=None, output_dir=None, output_json=None,
                     boxes=None) -> Optional[str]:
  """Where --boxes' keypoint results go: --output_json, else beside the
  picture(s) (out.png -> out.json; --output_dir -> keypoints.json in it),
  else None (standard output).

  Raises:
    app.UsageError: that is the --boxes file itself.
  """
  path = output_json
  if path is None and output:
    path = os.path.splitext(output)[0] + ".json"
  if path is None and output_dir:
    path = os.path.join(output_dir, "keypoints.json")
  if path and boxes and os.path.abspath(path) == os.path.abspath(boxes):
    raise app.UsageError(
        f"the keypoints would overwrite the --boxes file {boxes}; give "
        "--output_json=ANOTHER.json.")
  return path


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", None,
                      "Training workdir or checkpoint to load.")
  flags.DEFINE_string("image", None, "Image file to run on.")
  flags.DEFINE_string("image_dir", None, "Folder of images to run on, with "
                      "--boxes: every image file in it.")
  flags.DEFINE_string("box", None, "Person box x1,y1,x2,y2 in pixels; "
                      "default: the whole image.")
  flags.DEFINE_string("boxes", None, "JSON file of person boxes, COCO "
                      "detection results: [{image_id, bbox: [x, y, w, h], "
                      "score, category_id}]; predicts every person.")
  flags.DEFINE_float("min_score", detections.DEFAULT_MIN_SCORE,
                     "With --boxes: the lowest detection score kept.")
  flags.DEFINE_string("output", None, "PNG to write: skeleton, crop, heatmaps "
                      "and every stage's attention mask; with --boxes, every "
                      "person's skeleton and box on the image.")
  flags.DEFINE_string("output_dir", None, "With --boxes: folder of one "
                      "<image>_pose.png per image.")
  flags.DEFINE_string("output_json", None, "With --boxes: the COCO keypoint "
                      "results file (default: beside --output, or "
                      "keypoints.json in --output_dir; else printed).")
  flags.DEFINE_bool("no_flip", False, "Turn the flip test off (default: the "
                    "checkpoint config's setting).")
  flags.DEFINE_float("threshold", visualize.DEFAULT_THRESHOLD,
                     "Minimum confidence of the joints drawn.")
  flags.mark_flags_as_required(["workdir"])


def _load_predictor() -> Predictor:
  if not os.path.exists(FLAGS.workdir):
    raise errors.MissingError(
        f"workdir or checkpoint not found: {FLAGS.workdir} (pass the "
        "--workdir of a training run, or one of its checkpoints).")
  return Predictor.from_checkpoint(
      FLAGS.workdir, flip_test=False if FLAGS.no_flip else None)


def _main_people():
  """--boxes: every person of --image or of each image in --image_dir."""
  folder = FLAGS.image_dir
  if folder is None:
    images = [FLAGS.image]
    pictures = [FLAGS.output]
    if FLAGS.output_dir is not None:
      pictures = [os.path.join(
          FLAGS.output_dir,
          picture_names([os.path.basename(FLAGS.image)])[0])]
  else:
    names = image_files(folder)
    images = [os.path.join(folder, name) for name in names]
    pictures = [None if FLAGS.output_dir is None else
                os.path.join(FLAGS.output_dir, name)
                for name in picture_names(names)]
  json_path = json_destination(FLAGS.output, FLAGS.output_dir,
                               FLAGS.output_json, FLAGS.boxes)
  plan = plan_people(images, FLAGS.boxes, FLAGS.min_score, folder)
  predictor = _load_predictor()
  results = []
  for people, picture in zip(plan, pictures):
    results += run_people(predictor, people, picture, FLAGS.threshold,
                          FLAGS.min_score)
  if json_path is None:
    print(results_json(results), end="")
    return
  if os.path.dirname(json_path):
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
  with open(json_path, "w", encoding="utf-8") as f:
    f.write(results_json(results))
  logging.info("Wrote %s of %s to %s.",
               _count(len(results), "person", "people"),
               _count(len(plan), "image", "images"), json_path)


def _check_outputs() -> None:
  """Checks where the results go (`output_paths`), before any work."""
  if FLAGS.output:  # --output= draws nothing, as `run` takes it.
    output_paths.file(FLAGS.output, "--output")
  if FLAGS.output_dir is not None:
    output_paths.folder(FLAGS.output_dir, "--output_dir")
  if FLAGS.boxes is not None:
    json_path = json_destination(FLAGS.output, FLAGS.output_dir,
                                 FLAGS.output_json, FLAGS.boxes)
    if json_path is not None:
      output_paths.file(json_path, "--output_json" if FLAGS.output_json
                        else f"the keypoints file {json_path}")


def main(argv):
  del argv  # cli.run allows none.
  check_usage(FLAGS.image, FLAGS.image_dir, FLAGS.box, FLAGS.boxes,
              FLAGS.output, FLAGS.output_dir, FLAGS.output_json,
              FLAGS.min_score)
  _check_outputs()
  if FLAGS.boxes is not None:
    _main_people()
    return
  # Check the user's inputs before the slow part (loading the network).
  box = parse_box(FLAGS.box) if FLAGS.box is not None else None
  image = load_image(FLAGS.image)
  if box is not None:
    check_box_in_image(box, *image.shape[:2])
  predictor = _load_predictor()
  result = run(predictor, image, box, FLAGS.output, FLAGS.threshold)
  result["image"] = FLAGS.image
  # Strict JSON: NaN or Infinity would not parse (Predictor refuses them).
  print(json.dumps(result, indent=2, allow_nan=False))


if __name__ == "__main__":
  cli.run(main, define_flags)
