"""Pose estimation on one's own images, without ground-truth centre and scale.

A person box (or the whole image) stands in for MPII's objpos/scale; the crop
is warped (`prediction.warp_crop`, numpy: predicting imports no TensorFlow),
run through the shared heatmap function of `inference` (flip test included)
and decoded back to original pixels.

Library use:

  predictor = Predictor.from_checkpoint("runs/phase_c")
  result = predictor("me.jpg", box=(120, 40, 380, 620))
  result.keypoints      # (16, 2) x, y in original pixels, 0-based
  result.confidences    # (16,)

Command line (prints the joints as JSON, writes a picture with the skeleton
and each stage's attention mask):

  python -m acnn_jax.predict --workdir runs/phase_c --image me.jpg \
      --box 120,40,380,620 --output me_pose.png

A network exported with `python -m acnn_jax.export` predicts the same way
without Flax: `exported.ExportedPredictor.from_export(folder)`.
"""

import json
import os
from typing import Optional, Sequence

from absl import flags
from absl import logging
import jax
import numpy as np

from acnn_jax import checkpoints
from acnn_jax import cli
from acnn_jax import errors
from acnn_jax import inference
from acnn_jax import prediction
from acnn_jax import visualize
from acnn_jax.codec import HeatmapCodec
# The image, box and crop helpers and `Prediction` live in `prediction`, which
# `exported.ExportedPredictor` shares without Flax; they stay importable from
# here, where they were first.
# pylint: disable=unused-import,g-multiple-import
from acnn_jax.prediction import (
    Prediction, as_image, box_to_crop, check_box, check_box_in_image,
    format_box, inside_share, load_image, parse_box, warp_crop,
    whole_image_box)
# pylint: enable=unused-import,g-multiple-import


class Predictor(prediction.OnePersonPerImage):
  """Predicts MPII's 16 joints of one person per image.

  Each image is cropped around a person box (or the whole image, see
  `box_to_crop`), warped to input_size x input_size, scaled to [0, 1] like
  training, and run through `inference.make_predict_fn` (one jitted call per
  batch, flip test included); joints are decoded with the codec and mapped back
  to original pixels (`inference.decode_to_original`).

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
      flip_test: average with the mirrored image (ACNN.md section 4).
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

  def predict_batch(self, images: Sequence,
                    boxes: Optional[Sequence] = None) -> list:
    """Predicts one person in each of several images (any sizes) at once.

    Args:
      images: uint8 RGB arrays or image paths.
      boxes: None, or one box (or None for the whole image) per image.

    Returns:
      A list of `Prediction`, one per image.
    """
    # `warp_crop` is looked up here, when called, so that tests can replace it.
    batch = prediction.prepare_batch(images, boxes, self.input_size,
                                     warp=warp_crop)
    if batch is None:
      return []
    outputs = self._predict_fn(self.variables, batch.inputs)
    keypoints, confidences = inference.decode_to_original(
        self.codec, outputs["heatmaps"], batch.centers, batch.scales)
    outputs = jax.device_get(outputs)
    return prediction.to_predictions(
        batch, keypoints, confidences, heatmaps=outputs["heatmaps"],
        masks=np.moveaxis(np.asarray(outputs["masks"])[..., 0], 0, 1))


def run(predictor: Predictor, image, box=None, output: Optional[str] = None,
        threshold=visualize.DEFAULT_THRESHOLD) -> dict:
  """What the command line does: predict, optionally save the picture.

  Args:
    predictor: a `Predictor`.
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
