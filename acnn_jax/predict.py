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
"""

import dataclasses
import json
import os
from typing import Dict, NamedTuple, Optional, Sequence

from absl import flags
from absl import logging
import jax
from jax import export as jax_export
import numpy as np
from PIL import Image
from PIL import ImageOps

from acnn_jax import cli
from acnn_jax import errors
from acnn_jax import geometry
from acnn_jax import inference
from acnn_jax import mpii
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


def prepare_batch(images: Sequence, boxes: Optional[Sequence],
                  size: int) -> Optional[CropBatch]:
  """Checks images and boxes, and crops each image around its box.

  Args:
    images: (H, W, 3) uint8 RGB arrays or image paths (already `as_image`d).
    boxes: None, or one box (or None for the whole image) per image.
    size: side of the network input.

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
  # `warp_crop` is looked up here, when called, so that tests can replace it.
  inputs = np.stack([warp_crop(image, center, scale, size)
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


# ------------------------------------------------------------- predictors

class OnePersonPerImage:
  """What both predictors share: images and boxes in, `Prediction`s out.

  Subclasses set `input_size` and define `_run(batch)`.
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

  def _run(self, batch: CropBatch):
    """The network on `batch`: (keypoints (B, K, 2) in original pixels,
    confidences (B, K), heatmaps (B, h, w, K), masks (B, S, h, w))."""
    raise NotImplementedError


class Predictor(OnePersonPerImage):
  """Predicts MPII's 16 joints of one person per image from a checkpoint.

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


class ExportedPredictor(OnePersonPerImage):
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

def run(predictor: OnePersonPerImage, image, box=None,
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


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", None,
                      "Training workdir or checkpoint to load.")
  flags.DEFINE_string("image", None, "Image file to run on.")
  flags.DEFINE_string("box", None, "Person box x1,y1,x2,y2 in pixels; "
                      "default: the whole image.")
  flags.DEFINE_string("output", None, "PNG to write: skeleton, crop, heatmaps "
                      "and every stage's attention mask.")
  flags.DEFINE_bool("no_flip", False, "Turn the flip test off (default: the "
                    "checkpoint config's setting).")
  flags.DEFINE_float("threshold", visualize.DEFAULT_THRESHOLD,
                     "Minimum confidence of the joints drawn.")
  flags.mark_flags_as_required(["workdir", "image"])


def main(argv):
  del argv  # cli.run allows none.
  # Check the user's inputs before the slow part (loading the network).
  box = parse_box(FLAGS.box) if FLAGS.box is not None else None
  image = load_image(FLAGS.image)
  if box is not None:
    check_box_in_image(box, *image.shape[:2])
  if not os.path.exists(FLAGS.workdir):
    raise errors.MissingError(
        f"workdir or checkpoint not found: {FLAGS.workdir} (pass the "
        "--workdir of a training run, or one of its checkpoints).")
  predictor = Predictor.from_checkpoint(
      FLAGS.workdir, flip_test=False if FLAGS.no_flip else None)
  result = run(predictor, image, box, FLAGS.output, FLAGS.threshold)
  result["image"] = FLAGS.image
  # Strict JSON: NaN or Infinity would not parse (Predictor refuses them).
  print(json.dumps(result, indent=2, allow_nan=False))


if __name__ == "__main__":
  cli.run(main, define_flags)
