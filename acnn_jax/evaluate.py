"""Evaluation of a model on the MPII validation split: PCKh, pred.mat, pictures.

Predictions go through `inference.make_predict_fn` (flip test on by default)
and `inference.decode_to_original` (argmax + quarter offset, inverse crop
transform), the same code `predict.Predictor` uses, and are scored with
`pckh.pckh_table` (ACNN.md section 4).

Command line: evaluate the best (else latest) checkpoint of a workdir:

  python -m acnn_jax.evaluate --workdir=runs/acnn [--phase=b] \
      [--config=configs/phase_b.py] [--pred_mat=pred.mat]

`--config` replaces the phase's saved config.json (its model fields must match
the checkpoint).
"""

import dataclasses
import json
import os
from typing import Dict, List

from absl import flags
from absl import logging
from ml_collections import config_flags
import jax
import numpy as np
import scipy.io

from acnn_jax import checkpoints
from acnn_jax import cli
from acnn_jax import codec as codec_lib
from acnn_jax import configuration
from acnn_jax import inference
from acnn_jax import parallel
from acnn_jax import pckh
from acnn_jax import visualize
from input_pipeline import pipeline
from input_pipeline import prepare


@dataclasses.dataclass
class EvalResult:
  """What `evaluate` returns.

  Attributes:
    table: the PCKh table (`pckh.TABLE_KEYS` -> percent).
    predictions: (N, 16, 2) joints in original pixels, 0-based.
    confidences: (N, 16) heatmap peak values.
    index, person: (N,) the people's ids in the official release.
    pictures: uint8 figures of the first validation people.
  """
  table: Dict[str, float]
  predictions: np.ndarray
  confidences: np.ndarray
  index: np.ndarray
  person: np.ndarray
  pictures: List[np.ndarray]


def _device_fn(predict_fn, codec):
  """Crops -> joints in original pixels, one device's share of a batch."""
  def fn(variables, batch):
    out = predict_fn(variables, batch["image"])
    coords, confidences = inference.decode_to_original(
        codec, out["heatmaps"], batch["center"], batch["scale"])
    return coords, confidences
  return fn


def _pictures(predict_fn, codec, variables, batch, count):
  """Figures (skeleton, heatmaps, each stage's mask) of the first people."""
  count = min(count, int(batch["mask"].sum()))
  if count <= 0:
    return []
  images = batch["image"][:count]
  out = jax.device_get(predict_fn(variables, images))
  crop_coords, confidences = jax.device_get(codec.decode(out["heatmaps"]))
  figures = []
  for i in range(count):
    # Heatmap pixel j is input-crop pixel stride * j + (stride - 1) / 2.
    crop_points = crop_coords[i] * codec.stride + (codec.stride - 1) / 2
    figures.append(visualize.prediction_figure(
        images[i], crop_points, confidences[i], crop=images[i],
        crop_keypoints=crop_points, masks=out["masks"][:, i],
        heatmaps=out["heatmaps"][i], threshold=None))
  return figures


def evaluate(model, variables, batches, *, input_size: int,
             flip_test: bool = True, flip_shift: bool = False,
             masks_to_one: bool = False, num_pictures: int = 0) -> EvalResult:
  """Runs the model over validation batches and scores PCKh.

  Args:
    model: the `models.ACNN` (its `bn_axis_name` is not used here).
    variables: {'params', 'batch_stats'} (host or device arrays).
    batches: iterable of numpy eval host batches from
      `pipeline.create_dataset(config, 'validation', ...)`, with the padding
      `mask`; each batch is split over the local devices.
    input_size: the crops' side.
    flip_test: average with the mirrored crop's heatmaps.
    flip_shift: HRNet/mmpose's one-pixel shift of the flipped heatmaps.
    masks_to_one: run as the plain stacked hourglass (phase A).
    num_pictures: draw this many people of the first batch.

  Returns:
    An `EvalResult`; every real person of the split is counted once.
  """
  model = model.clone(bn_axis_name=None)
  codec = codec_lib.HeatmapCodec(input_size)
  predict_fn = inference.make_predict_fn(model, flip_test, flip_shift,
                                         masks_to_one)
  p_fn = parallel.data_parallel(_device_fn(predict_fn, codec), parallel.AXIS,
                                in_axes=(None, 0), out_axes=0)
  keys = ("joints", "annotated", "head_size", "index", "person")
  kept = {k: [] for k in keys + ("coords", "confidences")}
  pictures = []
  for batch in batches:
    batch = {k: np.asarray(v) for k, v in batch.items()}
    if not pictures and num_pictures:
      pictures = _pictures(predict_fn, codec, variables, batch, num_pictures)
    inputs = {k: batch[k] for k in ("image", "center", "scale")}
    coords, confidences = jax.device_get(
        p_fn(variables, parallel.shard(inputs)))
    real = batch["mask"] > 0
    kept["coords"].append(coords.reshape(-1, *coords.shape[2:])[real])
    kept["confidences"].append(
        confidences.reshape(-1, *confidences.shape[2:])[real])
    for k in keys:
      kept[k].append(batch[k][real])
  if not kept["coords"]:
    raise ValueError("The validation split is empty: nothing to evaluate.")
  got = {k: np.concatenate(v) for k, v in kept.items()}
  table = pckh.pckh_table(got["coords"], got["joints"], got["annotated"],
                          got["head_size"])
  return EvalResult(table=table, predictions=got["coords"],
                    confidences=got["confidences"], index=got["index"],
                    person=got["person"], pictures=pictures)


def write_pred_mat(path: str, result: EvalResult):
  """Writes MPII-format predictions: `preds` (N, 16, 2), 1-based.

  This is what the official MATLAB toolkit and `python -m acnn_jax.pckh`
  read; `index` and `person` (0-based release ids) come along so the rows can
  be matched to people.
  """
  scipy.io.savemat(path, {"preds": result.predictions + 1.0,
                          "index": result.index, "person": result.person},
                   do_compression=True)


def write_results(path: str, table: Dict[str, float], **extra):
  """Writes the PCKh table (and extra fields) as JSON, atomically."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump({**table, **extra}, f, indent=2)
  os.replace(tmp, path)


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", None, "Training workdir (or phase directory).")
  config_flags.DEFINE_config_file(
      "config", None, "Config file; default: the phase's saved config.json.",
      lock_config=False)
  flags.DEFINE_string("phase", None, "Phase to evaluate (default: latest).")
  flags.DEFINE_string("pred_mat", None, "Also write predictions here.")
  flags.DEFINE_boolean("flip_test", None, "Override the config's flip test.")
  flags.DEFINE_boolean("best", True,
                       "Prefer the best-by-validation checkpoint.")
  flags.mark_flag_as_required("workdir")


def main(argv):
  del argv  # cli.run allows none.
  cli.hide_gpus_from_tensorflow()
  path = FLAGS.workdir
  if FLAGS.phase:
    path = checkpoints.phase_dir(path, FLAGS.phase)
  loaded = checkpoints.load_for_inference(path, prefer_best=FLAGS.best,
                                          config=FLAGS.config)
  config = loaded.config
  if FLAGS.flip_test is not None:
    config.flip_test = FLAGS.flip_test
  builder = prepare.prepare_builder(config, checkpoints.root_workdir(path))
  ds = pipeline.create_dataset(
      config, "validation", builder,
      batch_size=configuration.eval_batch_size(config))
  result = evaluate(loaded.model, loaded.variables, ds.as_numpy_iterator(),
                    input_size=config.input_size, flip_test=config.flip_test,
                    flip_shift=config.flip_shift,
                    masks_to_one=loaded.masks_to_one)
  print(pckh.format_table(result.table))
  if FLAGS.pred_mat:
    write_pred_mat(FLAGS.pred_mat, result)
    logging.info("Wrote %d predictions to %s", len(result.predictions),
                 FLAGS.pred_mat)


if __name__ == "__main__":
  cli.run(main, define_flags)
