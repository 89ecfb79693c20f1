"""Running an exported network with jax and numpy alone: no Flax, no TensorFlow.

`python -m acnn_jax.export` writes a folder (see `acnn_jax.export`) whose
`acnn.jax_export` is the whole network with its weights, flip test and
decoding, serialized by `jax.export`; this module loads it back:

  model = exported.ExportedModel("exports/acnn")
  out = model(crops)            # (B, R, R, 3) float32 in [0, 1]
  out["keypoints"]              # (B, 16, 2) x, y in crop pixels

  predictor = exported.ExportedPredictor.from_export("exports/acnn")
  result = predictor("me.jpg", box=(120, 40, 380, 620))   # a `Prediction`

`ExportedPredictor` crops and reports like `predict.Predictor` (the two share
`prediction`), so it answers what `Predictor.from_checkpoint` answers for the
checkpoint that was exported. Neither this module nor those it imports load
Flax, orbax, ml_collections or TensorFlow (tests/test_export.py checks it).
"""

import os
from typing import Dict, Optional, Sequence

import jax
from jax import export as jax_export
import numpy as np

from acnn_jax import errors
from acnn_jax import json_files
from acnn_jax import prediction

# What an export folder holds.
ARTIFACT_FILE = "acnn.jax_export"
SAVED_MODEL_DIR = "saved_model"
METADATA_FILE = "export.json"
# export.json's layout; readers refuse a newer one.
FORMAT_VERSION = 1
# The exported function's outputs, by name (shapes in `output_shapes`).
OUTPUT_NAMES = ("keypoints", "confidences", "heatmaps", "masks")


def output_shapes(input_size: int, num_joints: int, num_stacks: int,
                  stride: int = 4) -> Dict[str, list]:
  """The outputs' shapes, "batch" standing for the symbolic batch size."""
  size = input_size // stride
  return dict(keypoints=["batch", num_joints, 2],
              confidences=["batch", num_joints],
              heatmaps=["batch", size, size, num_joints],
              masks=["batch", num_stacks, size, size])


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
  metadata = json_files.read(path, dict, "an export's description", fix)
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
      images: (B, R, R, 3) float32 crops in [0, 1] (`prediction.warp_crop`
        makes them from an image and a box).

    Returns:
      {name: numpy array} for the `OUTPUT_NAMES`: keypoints (B, K, 2) x, y in
      crop pixels (0-based pixel centres), confidences (B, K), heatmaps
      (B, h, w, K), masks (B, S, h, w).
    """
    images = np.asarray(images, np.float32)
    size = self.input_size
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
      raise errors.InputError(
          f"expected (B, {size}, {size}, 3) crops, got shape {images.shape}.")
    return {name: np.asarray(value)
            for name, value in self._call(images).items()}


class ExportedPredictor(prediction.OnePersonPerImage):
  """`predict.Predictor` on an exported network (same calls, same answers).

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

  def predict_batch(self, images: Sequence,
                    boxes: Optional[Sequence] = None) -> list:
    """Predicts one person in each of several images (any sizes) at once.

    Args:
      images: uint8 RGB arrays or image paths.
      boxes: None, or one box (or None for the whole image) per image.

    Returns:
      A list of `prediction.Prediction`, one per image.
    """
    batch = prediction.prepare_batch(images, boxes, self.input_size,
                                     warp=prediction.warp_crop)
    if batch is None:
      return []
    outputs = self.model(batch.inputs)
    # The network decoded the joints into crop pixels; the crop's own inverse
    # takes them to the image.
    keypoints = np.stack([
        prediction.crop_to_original(points, center, scale, self.input_size)
        for points, center, scale in zip(outputs["keypoints"], batch.centers,
                                         batch.scales)])
    return prediction.to_predictions(
        batch, keypoints, outputs["confidences"], outputs["heatmaps"],
        outputs["masks"])
