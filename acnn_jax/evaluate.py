"""Evaluation of a model on MPII: validation PCKh, pred.mat, pictures, and
the test set's benchmark submission.

Predictions go through `inference.make_predict_fn` (flip test on by default)
and `inference.decode_to_original` (argmax + quarter offset, inverse crop
transform), the same code `predict.Predictor` uses, and are scored with
`pckh.pckh_table` (docs/design.md section 4).

Command line: evaluate the best (else latest) checkpoint of a workdir:

  python -m acnn_jax.evaluate --workdir=runs/acnn [--phase=b] \
      [--config=configs/phase_b.py] [--pred_mat=pred.mat]

`--config` replaces the phase's saved config.json (its model fields must match
the checkpoint). MPII scores its test set only from a submitted file; this
writes it (`acnn_jax.submission`), predicting every test person with the
flip test (unless `--flip_test=false`):

  python -m acnn_jax.evaluate --workdir=runs/acnn --split=test \
      --submission=pred_keypoints_mpii.mat
"""

import dataclasses
import json
import os
from typing import Any, Dict, List

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import jax
import jax.numpy as jnp
import numpy as np
import scipy.io

from acnn_jax import checkpoints
from acnn_jax import cli
from acnn_jax import codec as codec_lib
from acnn_jax import configuration
from acnn_jax import distributed
from acnn_jax import errors
from acnn_jax import geometry
from acnn_jax import inference
from acnn_jax import mask_stats
from acnn_jax import output_paths
from acnn_jax import parallel
from acnn_jax import pckh
from acnn_jax import phases
from acnn_jax import submission
from acnn_jax import visualize
from input_pipeline import mpii_builder
from input_pipeline import pipeline
from input_pipeline import prepare


@dataclasses.dataclass
class EvalResult:
  """What `evaluate` returns.

  Attributes:
    table: the PCKh table (`pckh.TABLE_KEYS` -> percent); empty when not
      scored (the test split).
    predictions: (N, 16, 2) joints in original pixels, 0-based.
    confidences: (N, 16) heatmap peak values.
    index, person: (N,) the people's ids in the official release.
    pictures: uint8 figures of the first validation people.
    mask_stats: where the masks look (`mask_stats.MaskStats.result`), empty
      when no mask gates a later stage (phase A, one stack, no attention).
  """
  table: Dict[str, float]
  predictions: np.ndarray
  confidences: np.ndarray
  index: np.ndarray
  person: np.ndarray
  pictures: List[np.ndarray]
  mask_stats: Dict[str, float] = dataclasses.field(default_factory=dict)


def _device_fn(predict_fn, codec):
  """Crops -> joints in original pixels and the gating masks (batch first),
  one device's share of a batch."""
  def fn(variables, batch):
    out = predict_fn(variables, batch["image"])
    coords, confidences = inference.decode_to_original(
        codec, out["heatmaps"], batch["center"], batch["scale"])
    # (S, B, h, w, 1) -> (B, S - 1, h, w): the masks that gate a stage.
    masks = jnp.moveaxis(out["masks"][:-1, ..., 0], 0, 1)
    return coords, confidences, masks
  return fn


@inference.built_once
def _eval_fns(model, codec, flip_test, flip_shift, masks_to_one,
              num_devices):
  """(heatmap function, mapped evaluation function) of one setting.

  Built once per process and setting (`inference.built_once`): a training
  run evaluates every `eval_every_epochs`, and each evaluation reuses the
  programs the first one compiled.
  """
  predict_fn = inference.make_predict_fn(model, flip_test, flip_shift,
                                         masks_to_one)
  p_fn = parallel.data_parallel(_device_fn(predict_fn, codec), parallel.AXIS,
                                in_axes=(None, 0), out_axes=0,
                                num_devices=num_devices)
  return predict_fn, p_fn


def _heatmap_joints(batch, key, heatmap_size):
  """Joints (`joints` or `other_joints`) in heatmap pixels of the crops."""
  return np.stack([
      geometry.apply_affine(geometry.affine_matrix(c, s, heatmap_size), j)
      for c, s, j in zip(batch["center"], batch["scale"], batch[key])])


def _pictures(predict_fn, codec, variables, batch, count):
  """ACNN's Fig. 6 for the first people of a batch: per person the crop with
  the predicted skeleton, then what each mask keeps (one picture)."""
  count = min(count, int(batch["mask"].sum()))
  if count <= 0:
    return []
  images = batch["image"][:count]
  out = jax.device_get(predict_fn(variables, images))
  crop_points, confidences = jax.device_get(
      codec.decode_to_crop(out["heatmaps"]))
  rows = []
  for i in range(count):
    rows.append(visualize.attention_figure(
        images[i], out["masks"][:, i], crop_points[i], confidences[i],
        threshold=None, title=f"person {i}"))
  return [visualize.attention_grid(rows)]


def evaluate(model, variables, batches, *, input_size: int,
             flip_test: bool = True, flip_shift: bool = False,
             masks_to_one: bool = False, num_pictures: int = 0,
             region_stats: bool = False, score: bool = True) -> EvalResult:
  """Runs the model over evaluation batches and scores PCKh.

  Args:
    model: the `models.ACNN` (its `bn_axis_name` is not used here).
    variables: {'params', 'batch_stats'} (host or device arrays).
    batches: iterable of numpy eval host batches from
      `pipeline.create_dataset(config, 'validation', ...)` (or 'test',
      unscored), with the padding `mask`; each batch is split over the
      local devices. In a multi-host run, each process passes its own
      share of the split.
    input_size: the crops' side.
    flip_test: average with the mirrored crop's heatmaps.
    flip_shift: HRNet/mmpose's one-pixel shift of the flipped heatmaps.
    masks_to_one: run as the plain stacked hourglass (phase A).
    num_pictures: draw this many people of the first batch.
    region_stats: also measure the masks on the target person and the
      background (`mask_stats`; trustworthy on the synthetic set only).
    score: compute PCKh and the mask statistics. False for the test split,
      whose people have no joints: only the predictions are returned.

  The compiled programs are kept for the next call with equal settings
  (`_eval_fns`): a run's later evaluations compile nothing.

  Returns:
    An `EvalResult`; every real person of the split is counted once (in a
    multi-host run: of every process's share, process 0's first; every
    process gets the same result).
  """
  model = model.clone(bn_axis_name=None)
  codec = codec_lib.HeatmapCodec(input_size)
  predict_fn, p_fn = _eval_fns(model, codec, bool(flip_test),
                               bool(flip_shift), bool(masks_to_one),
                               jax.device_count())
  keys = ("joints", "annotated", "head_size", "index", "person")
  kept = {k: [] for k in keys + ("coords", "confidences")}
  gating = (model.num_stacks - 1 if score and model.attention and
            not masks_to_one else 0)
  stats = mask_stats.MaskStats(gating, regions=region_stats)
  pictures = []
  num_batches, inputs = 0, None
  for batch in batches:
    num_batches += 1
    batch = {k: np.asarray(v) for k, v in batch.items()}
    if not pictures and num_pictures:
      pictures = _pictures(predict_fn, codec, variables, batch, num_pictures)
    inputs = {k: batch[k] for k in ("image", "center", "scale")}
    coords, confidences, masks = jax.device_get(
        p_fn(variables, parallel.shard(inputs)))
    real = batch["mask"] > 0
    if gating:
      stats.add(masks.reshape(-1, *masks.shape[2:])[real],
                _heatmap_joints(batch, "joints", codec.heatmap_size)[real],
                batch["annotated"][real],
                _heatmap_joints(batch, "other_joints",
                                codec.heatmap_size)[real],
                batch["other_annotated"][real])
    kept["coords"].append(coords.reshape(-1, *coords.shape[2:])[real])
    kept["confidences"].append(
        confidences.reshape(-1, *confidences.shape[2:])[real])
    for k in keys:
      kept[k].append(batch[k][real])
  # Every process fails alike, rather than one waiting for the others.
  if distributed.sum_over_processes(
      np.array([len(kept["coords"]) == 0], np.int32))[0]:
    raise ValueError("The split is empty (or, in a multi-host run, some "
                     "process's share of it): nothing to evaluate.")
  # A pmapped program spans the devices of all processes: each runs it
  # equally often, the ones with fewer batches on padding.
  for _ in range(distributed.most_over_processes(num_batches) - num_batches):
    p_fn(variables, parallel.shard(
        jax.tree_util.tree_map(np.zeros_like, inputs)))
  got = {k: distributed.concatenate_rows(np.concatenate(v))
         for k, v in kept.items()}
  if gating:
    stats.add_other_processes()
  table = pckh.pckh_table(got["coords"], got["joints"], got["annotated"],
                          got["head_size"]) if score else {}
  return EvalResult(table=table, predictions=got["coords"],
                    confidences=got["confidences"], index=got["index"],
                    person=got["person"], pictures=pictures,
                    mask_stats=stats.result())


def write_pred_mat(path: str, result: EvalResult):
  """Writes MPII-format predictions: `preds` (N, 16, 2), 1-based.

  This is what the official MATLAB toolkit and `python -m acnn_jax.pckh`
  read; `index` and `person` (0-based release ids) come along so the rows can
  be matched to people.
  """
  scipy.io.savemat(path, {"preds": result.predictions + 1.0,
                          "index": result.index, "person": result.person},
                   do_compression=True)


def _evaluate_split(loaded, builder, split: str, **options) -> EvalResult:
  """`evaluate` of a loaded checkpoint over one split of `builder`, with the
  checkpoint's config (its flip test, input size, evaluation batch)."""
  config = loaded.config
  ds = pipeline.create_dataset(
      config, split, builder,
      batch_size=configuration.eval_batch_size(config))
  return evaluate(loaded.model, loaded.variables, ds.as_numpy_iterator(),
                  input_size=config.input_size, flip_test=config.flip_test,
                  flip_shift=config.flip_shift,
                  masks_to_one=loaded.masks_to_one, **options)


def predict_test(loaded: checkpoints.LoadedModel, builder,
                 path: str) -> submission.Written:
  """Predicts the test people and writes the benchmark's file to `path`.

  Args:
    loaded: the checkpoint (`checkpoints.load_for_inference`); its config's
      `flip_test` applies.
    builder: the prepared `mpii` data set.
    path: the submission file (`submission.write`).

  Returns:
    What was written.

  Raises:
    errors.InputError: the data set has no test people (the message says
      why: `mpii_builder.read_test_split`).
  """
  test = mpii_builder.read_test_split(builder)
  result = _evaluate_split(loaded, builder, "test", score=False)
  # The rows come back in the split's order, as the split lists them.
  if not (np.array_equal(result.index, test.people["index"]) and
          np.array_equal(result.person, test.people["person"])):
    raise RuntimeError("The test predictions are not in the order of the "
                       "test split's people.")
  return submission.write(path, result.predictions, test.people,
                          test.images)


def people_record(builder, num_people: int) -> Dict[str, Any]:
  """What an evaluation record says of the people behind its table.

  A PCKh means little without its people: a data set prepared from a folder
  missing images (`--config.allow_missing_images`) scores fewer.

  Args:
    builder: the prepared `mpii` builder of the validation split.
    num_people: the people scored.

  Returns:
    `num_people`; `skipped_people`, the validation people the data set left
    out when it was prepared, and `skipped_by_reason`, {reason: people}
    (`mpii_builder.SKIP_REASONS`); both None for a data set that does not
    record them (`mpii_builder.recorded_skips`).
  """
  logs = mpii_builder.recorded_skips(builder) or {}
  log = logs.get("validation")
  return {"num_people": num_people,
          "skipped_people": None if log is None else sum(
              log.skipped.values()),
          "skipped_by_reason": None if log is None else dict(
              sorted(log.skipped.items()))}


def describe_people(record: Dict[str, Any]) -> str:
  """'Scored 78 validation people; the data set left out 82 (...).'"""
  line = f"Scored {record['num_people']} validation people"
  skipped = record.get("skipped_people")
  if skipped is None:
    return line + "."
  if not skipped:
    return line + "; the data set left out none."
  reasons = ", ".join(f"{reason} {count}" for reason, count in
                      record["skipped_by_reason"].items())
  return (f"{line}; the data set left out {skipped} of "
          f"{record['num_people'] + skipped} when it was prepared "
          f"({reasons}).")


def write_results(path: str, table: Dict[str, Any], **extra):
  """Writes the PCKh table (and extra fields) as JSON, atomically."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump({**table, **extra}, f, indent=2)
  os.replace(tmp, path)


def read_history(path: str) -> List[Dict[str, Any]]:
  """The evaluation records of `append_history`, oldest first ([] if none)."""
  if not os.path.exists(path):
    return []
  return errors.read_json(
      path, list, "the list of this phase's evaluations (for the plots)",
      "Move it aside to start a new one.")


def append_history(path: str, record: Dict[str, Any]):
  """Appends one evaluation's record to a JSON list, atomically.

  A resumed run evaluates again at steps it had already evaluated: a record
  replaces the one of the same phase and step.
  """
  history = [r for r in read_history(path)
             if (r.get("phase"), r.get("step")) !=
             (record.get("phase"), record.get("step"))]
  write_list = sorted(history + [record], key=lambda r: r["step"])
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(write_list, f, indent=1)
  os.replace(tmp, path)


def history_across_phases(workdir: str, last_phase: str
                          ) -> List[Dict[str, Any]]:
  """The evaluation records of `workdir`'s phases up to `last_phase`, in
  training order (phases that did not run have none)."""
  history = []
  for name in phases.NAMES[:phases.NAMES.index(last_phase) + 1]:
    history += read_history(os.path.join(
        checkpoints.phase_dir(workdir, name), "eval_history.json"))
  return history


FLAGS = flags.FLAGS
SPLITS = ("validation", "test")


def define_flags():
  flags.DEFINE_string("workdir", None, "Training workdir (or phase directory).")
  config_flags.DEFINE_config_file(
      "config", None, "Config file; default: the phase's saved config.json.",
      lock_config=False)
  flags.DEFINE_string("phase", None, "Phase to evaluate (default: latest).")
  flags.DEFINE_enum("split", "validation", SPLITS,
                    "validation: PCKh (and --pred_mat); test: predict MPII's "
                    "test people for --submission (no ground truth, no "
                    "PCKh).")
  flags.DEFINE_string("pred_mat", None, "Also write predictions here.")
  flags.DEFINE_string(
      "submission", None,
      "With --split=test: write MPII's benchmark file here "
      f"({submission.FILE_NAME}: the `{submission.VARIABLE}` struct its "
      "toolkit reads, and `preds`); an existing file is replaced.")
  flags.DEFINE_boolean("flip_test", None, "Override the config's flip test.")
  flags.DEFINE_boolean("best", True,
                       "Prefer the best-by-validation checkpoint.")
  flags.mark_flag_as_required("workdir")


def check_outputs(split: str, submission_path: str, pred_mat: str) -> None:
  """Refuses outputs that do not go with the split.

  Raises:
    app.UsageError: `--submission` without `--split=test` (the benchmark
      scores test predictions only), `--split=test` without `--submission`
      (without ground truth, that file is the only result) or with
      `--pred_mat` (the submission holds the same `preds`).
  """
  if split != "test" and submission_path:
    raise app.UsageError(
        "--submission writes MPII's test benchmark file: add --split=test "
        "(validation predictions go to --pred_mat).")
  if split == "test" and not submission_path:
    raise app.UsageError(
        "--split=test needs --submission=FILE: the test set has no ground "
        "truth to score here, so the file MPII scores is its only result.")
  if split == "test" and pred_mat:
    raise app.UsageError(
        "--pred_mat goes with --split=validation; with --split=test, the "
        "--submission file holds the same `preds` array.")


def main(argv):
  del argv  # cli.run allows none.
  check_outputs(FLAGS.split, FLAGS.submission, FLAGS.pred_mat)
  # Where the results go, before minutes of work, not after.
  if FLAGS.submission:
    submission.check_output(FLAGS.submission)
  if FLAGS.pred_mat:  # Replaced when it exists, as it always was.
    output_paths.file(FLAGS.pred_mat, "--pred_mat")
  path = FLAGS.workdir
  if FLAGS.phase:
    path = checkpoints.phase_dir(path, FLAGS.phase)
  # First the checkpoint: a missing or diverged one is refused at once.
  loaded = checkpoints.load_for_inference(path, prefer_best=FLAGS.best,
                                          config=FLAGS.config)
  cli.hide_gpus_from_tensorflow()
  config = loaded.config
  if FLAGS.flip_test is not None:
    config.flip_test = FLAGS.flip_test
  builder = prepare.prepare_builder(config, checkpoints.root_workdir(path))
  if FLAGS.split == "test":
    written = predict_test(loaded, builder, FLAGS.submission)
    print(f"Predicted {written.people} test people of {builder.data_dir} "
          f"({'with' if config.flip_test else 'without'} the flip test).\n"
          + submission.describe(written))
    return
  result = _evaluate_split(loaded, builder, "validation",
                           region_stats=config.synthetic_images > 0)
  print(pckh.format_table(result.table) +
        mask_stats.format_stats(result.mask_stats) + "\n" +
        describe_people(people_record(builder, len(result.predictions))))
  if FLAGS.pred_mat:
    write_pred_mat(FLAGS.pred_mat, result)
    logging.info("Wrote %d predictions to %s", len(result.predictions),
                 FLAGS.pred_mat)


if __name__ == "__main__":
  cli.run(main, define_flags)
