"""PCKh for MPII Human Pose, the way the official toolkit counts it.

Conventions (docs/design.md section 4):

* Coordinates: predictions and ground truth must be in the same frame; only
  distances matter, so a shared offset cancels. The files (and this module's
  CLI) use MPII's 1-based image pixels.
* Head size: 0.6 x the diagonal of the head box (`mpii.head_size`);
  pose-hg-train's `valid.h5` stores it ready-made as `normalize`.
* A joint is correct when distance / head size <= threshold (inclusive, as in
  the official `evaluatePCKh.m`). Only annotated joints count, in the numerator
  and in the denominator.
* Table columns (`mpii.PCKH_COLUMNS`) pool their joints, i.e. they are
  count-weighted averages of left and right. "Mean" pools the 14 joints other
  than pelvis and thorax (`mpii.MEAN_JOINTS`, the toolkit's "Total");
  "Mean@0.1" is the same at threshold 0.1; "OfficialHead" pools upper neck and
  head top (the toolkit's own Head column). Values are percentages; a column
  with no annotated joint is NaN.

Ground truth is read from either `gt_valid.mat` (through
`input_pipeline.mpii_json.parse_gt_valid`, the reader training uses too) or
pose-hg-train's `valid.h5` (`part`, `normalize`).
Note that `valid.h5` stores integer `part` coordinates, so on the reference
hourglass predictions it agrees with `gt_valid.mat` at threshold 0.5 (to 0.03)
but reads about 0.4 lower at 0.1; `gt_valid.mat` is the reference.

CLI:
  python -m acnn_jax.pckh --ground_truth gt_valid.mat --predictions preds.h5
"""

import json
from typing import Dict, NamedTuple, Tuple

from absl import flags
import numpy as np

from acnn_jax import cli
from acnn_jax import errors
from acnn_jax import mpii
from input_pipeline import array_files
from input_pipeline import mpii_json

TABLE_KEYS = tuple(name for name, _ in mpii.PCKH_COLUMNS) + (
    "Mean", "Mean@0.1", "OfficialHead")


class GroundTruth(NamedTuple):
  """Ground truth for N people, 1-based image pixels.

  Attributes:
    joints: (N, 16, 2) float, (x, y) per joint.
    annotated: (N, 16) bool, whether each joint is annotated.
    head_sizes: (N,) float, 0.6 x head-box diagonal.
  """
  joints: np.ndarray
  annotated: np.ndarray
  head_sizes: np.ndarray


def _check_inputs(predictions, ground_truth, annotated, head_sizes):
  """Validates shapes and values; returns float/bool numpy arrays."""
  predictions = np.asarray(predictions, dtype=np.float64)
  ground_truth = np.asarray(ground_truth, dtype=np.float64)
  annotated = np.asarray(annotated, dtype=bool)
  head_sizes = np.asarray(head_sizes, dtype=np.float64)
  k = mpii.NUM_JOINTS
  for name, array, tail in (("predictions", predictions, (k, 2)),
                            ("ground_truth", ground_truth, (k, 2)),
                            ("annotated", annotated, (k,)),
                            ("head_sizes", head_sizes, ())):
    if array.ndim != 1 + len(tail) or array.shape[1:] != tail:
      want = ", ".join(["N"] + [str(d) for d in tail])
      raise errors.InputError(
          f"{name} must have shape ({want}), got {array.shape}.")
  n = predictions.shape[0]
  for name, array in (("ground_truth", ground_truth), ("annotated", annotated),
                      ("head_sizes", head_sizes)):
    if array.shape[0] != n:
      raise errors.InputError(
          f"{name} has {array.shape[0]} people but predictions have {n}: "
          "they must describe the same people in the same order.")
  if not np.isfinite(predictions).all():
    bad = np.argwhere(~np.isfinite(predictions).all(-1))[0]
    raise errors.InputError(
        f"predictions contain NaN or inf (first at person {bad[0]}, joint "
        f"{bad[1]}); every joint needs a finite prediction.")
  if not np.isfinite(ground_truth[annotated]).all():
    raise errors.InputError("ground_truth has NaN or inf at annotated joints.")
  if not (np.isfinite(head_sizes) & (head_sizes > 0)).all():
    bad = int(np.argmax(~(np.isfinite(head_sizes) & (head_sizes > 0))))
    raise errors.InputError(f"head sizes must be positive and finite; person "
                            f"{bad} has {head_sizes[bad]}.")
  return predictions, ground_truth, annotated, head_sizes


def _correct_and_counts(predictions, ground_truth, annotated, head_sizes,
                        threshold):
  """Per joint: number of correct annotated joints, number annotated."""
  distances = np.linalg.norm(predictions - ground_truth, axis=-1)
  correct = (distances / head_sizes[:, None] <= threshold) & annotated
  return correct.sum(axis=0), annotated.sum(axis=0)


def _check_threshold(threshold):
  if not (np.isfinite(threshold) and threshold >= 0):
    raise errors.InputError(f"threshold must be a finite number >= 0, got "
                            f"{threshold}.")


def _pooled(correct, counts, joints) -> float:
  """Count-weighted PCKh (%) over `joints`; NaN when none is annotated."""
  joints = list(joints)
  total = counts[joints].sum()
  return float(100.0 * correct[joints].sum() / total) if total else float("nan")


def pckh(predictions, ground_truth, annotated, head_sizes,
         threshold: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
  """Per-joint PCKh@threshold.

  Args:
    predictions: (N, 16, 2) predicted (x, y), same frame as `ground_truth`.
    ground_truth: (N, 16, 2) true (x, y); ignored where not annotated.
    annotated: (N, 16) bool, the joints that count.
    head_sizes: (N,) positive head sizes (0.6 x head-box diagonal).
    threshold: fraction of the head size within which a joint is correct
      (inclusive).

  Returns:
    pck: (16,) float64 percentages, NaN for a joint never annotated.
    counts: (16,) int, annotated joints per joint type.

  Raises:
    errors.InputError (a ValueError): on bad shapes, mismatched N, non-finite
      predictions, or non-positive head sizes.
  """
  _check_threshold(threshold)
  arrays = _check_inputs(predictions, ground_truth, annotated, head_sizes)
  correct, counts = _correct_and_counts(*arrays, threshold)
  with np.errstate(invalid="ignore", divide="ignore"):
    pck = np.where(counts > 0, 100.0 * correct / np.maximum(counts, 1), np.nan)
  return pck, counts


def pckh_table(predictions, ground_truth, annotated, head_sizes,
               threshold: float = 0.5) -> Dict[str, float]:
  """The PCKh table: MPII's columns, Mean, Mean@0.1 and OfficialHead.

  Args:
    predictions: (N, 16, 2) predicted (x, y), same frame as `ground_truth`.
    ground_truth: (N, 16, 2) true (x, y).
    annotated: (N, 16) bool, the joints that count.
    head_sizes: (N,) positive head sizes.
    threshold: threshold of every column except "Mean@0.1" (always 0.1).

  Returns:
    Dict with keys `TABLE_KEYS` (Head, Shoulder, Elbow, Wrist, Hip, Knee,
    Ankle, Mean, Mean@0.1, OfficialHead), percentages as Python floats.

  Raises:
    errors.InputError: as `pckh`.
  """
  _check_threshold(threshold)
  arrays = _check_inputs(predictions, ground_truth, annotated, head_sizes)
  correct, counts = _correct_and_counts(*arrays, threshold)
  table = {name: _pooled(correct, counts, joints)
           for name, joints in mpii.PCKH_COLUMNS}
  table["Mean"] = _pooled(correct, counts, mpii.MEAN_JOINTS)
  correct_01, _ = _correct_and_counts(*arrays, 0.1)
  table["Mean@0.1"] = _pooled(correct_01, counts, mpii.MEAN_JOINTS)
  table["OfficialHead"] = _pooled(correct, counts, mpii.OFFICIAL_HEAD_JOINTS)
  return table


def format_table(table: Dict[str, float], threshold: float = 0.5) -> str:
  """Two aligned lines (names, values) plus a title, for logs and CLIs.

  Args:
    table: a `pckh_table` result.
    threshold: the threshold the table was computed at, for the title only.

  Returns:
    The table as a string without a trailing newline.
  """
  missing = [key for key in TABLE_KEYS if key not in table]
  if missing:
    raise ValueError(f"table lacks {missing}; pass a pckh_table() result.")
  widths = [max(len(key), 6) for key in TABLE_KEYS]
  header = "  ".join(key.rjust(w) for key, w in zip(TABLE_KEYS, widths))
  values = "  ".join(f"{table[key]:{w}.2f}" for key, w in zip(TABLE_KEYS,
                                                                widths))
  title = (f"PCKh@{threshold:g} (Mean: all joints but pelvis and thorax; "
           "OfficialHead: neck + head top)")
  return "\n".join((title, header, values))


# ---------------------------------------------------------------- file reading


def _numbers(arrays, key: str, path: str) -> np.ndarray:
  """`arrays[key]` as float64; errors.InputError when it is not numeric."""
  try:
    return np.asarray(arrays[key], np.float64)
  except (TypeError, ValueError) as error:
    raise errors.InputError(
        f"{path!r}: {key} must be an array of numbers, got "
        f"{np.asarray(arrays[key]).dtype} values.") from error


def _check_ground_truth_values(gt: GroundTruth, path: str) -> GroundTruth:
  """Names the file when its annotated joints or head sizes are not usable
  (`pckh_table` would only say which array)."""
  bad = gt.annotated & ~np.isfinite(gt.joints).all(axis=-1)
  if bad.any():
    person = int(np.argwhere(bad)[0, 0])
    raise errors.InputError(f"{path!r}: annotated joints hold NaN or inf "
                            f"(first at person {person}).")
  usable = np.isfinite(gt.head_sizes) & (gt.head_sizes > 0)
  if not usable.all():
    person = int(np.argmin(usable))
    raise errors.InputError(
        f"{path!r}: head sizes must be positive and finite; person {person} "
        f"has {gt.head_sizes[person]}.")
  return gt


def load_ground_truth(path: str) -> GroundTruth:
  """Reads gt_valid.mat or pose-hg-train's valid.h5 ground truth.

  gt_valid.mat: `pos_gt_src` (16, 2, N) 1-based, `jnt_missing` (16, N),
  `headboxes_src` (2, 2, N). valid.h5: `part` (N, 16, 2) 1-based, a joint
  with both coordinates 0 is not annotated (coordinates may be negative, so
  not "> 0"; this matches gt_valid.mat's `jnt_missing` exactly), and
  `normalize` (N,), the head size already.

  Args:
    path: the file.

  Returns:
    A `GroundTruth`.

  Raises:
    errors.MissingError: if `path` does not exist (a FileNotFoundError).
    errors.InputError: if it is neither kind of file, is damaged, or its
      arrays are malformed: wrong shapes, not numbers, NaN at annotated
      joints or head sizes that are not positive (a ValueError).
  """
  arrays = array_files.read_arrays(path, "ground-truth")
  k = mpii.NUM_JOINTS
  if set(mpii_json.GT_VALID_KEYS) <= arrays.keys():
    numeric = {key: _numbers(arrays, key, path)
               for key in mpii_json.GT_VALID_KEYS}
    gt = mpii_json.parse_gt_valid(numeric, path)
    return _check_ground_truth_values(
        GroundTruth(gt.joints, gt.annotated, mpii.head_size(gt.head_boxes)),
        path)
  if {"part", "normalize"} <= arrays.keys():
    joints = _numbers(arrays, "part", path)
    if joints.ndim != 3 or joints.shape[1:] != (k, 2):
      raise errors.InputError(f"{path!r}: part must be (N, 16, 2), got "
                              f"{joints.shape}.")
    head_sizes = _numbers(arrays, "normalize", path).reshape(-1)
    if head_sizes.shape != joints.shape[:1]:
      raise errors.InputError(
          f"{path!r}: normalize has {head_sizes.shape[0]} values for "
          f"{joints.shape[0]} people.")
    return _check_ground_truth_values(
        GroundTruth(joints, (joints != 0).any(axis=-1), head_sizes), path)
  found = sorted(key for key in arrays if not key.startswith("__"))
  hint = (" (a predictions file: are --ground_truth and --predictions "
          "swapped?)" if "preds" in found else "")
  raise errors.InputError(
      f"{path!r} is not a ground-truth file: expected gt_valid.mat "
      f"(pos_gt_src, jnt_missing, headboxes_src) or pose-hg-train's valid.h5 "
      f"(part, normalize); found {found}{hint}.")


def predictions_layout(shape) -> str:
  """How a `preds` array of `shape` is laid out: 'N,16,2' or '2,16,N'.

  The MPII evaluation scripts that `newell.h5` comes from (eval-mpii-pose)
  take `preds` as [n x 16 x 2] or [2 x 16 x n]. Python tools (pytorch-pose,
  HRNet, `evaluate --pred_mat`) write (N, 16, 2); (2, 16, N) is what Python
  reads from MATLAB's other layout saved as a v5 .mat, or from an N x 16 x 2
  MATLAB array saved as v7.3 (HDF5 reverses the axes). Both fit (2, 16, 2),
  two people: that is read as (N, 16, 2), the layout this project writes (a
  two-person file of the other layout must be saved as (N, 16, 2) or as
  `pos_pred_src`).

  Args:
    shape: the array's shape.

  Returns:
    'N,16,2' or '2,16,N'; '' for any other shape.
  """
  k = mpii.NUM_JOINTS
  if len(shape) == 3 and tuple(shape[1:]) == (k, 2):
    return "N,16,2"
  if len(shape) == 3 and tuple(shape[:2]) == (2, k):
    return "2,16,N"
  return ""


def load_predictions(path: str) -> np.ndarray:
  """Reads predictions, 1-based image pixels, as (N, 16, 2).

  The file (.h5 or .mat) holds `preds` as (N, 16, 2) or (2, 16, N) (see
  `predictions_layout`, which also settles N == 2), or else MATLAB's
  `pos_pred_src` as (16, 2, N) (so gt_valid.mat itself reads as Tompson's
  predictions).

  Args:
    path: the file.

  Returns:
    (N, 16, 2) float64 predictions, all finite.

  Raises:
    errors.MissingError: if `path` does not exist (a FileNotFoundError).
    errors.InputError: if the file is damaged, neither array is there, it
      has another shape, is not numeric or holds NaN or inf (a ValueError).
  """
  arrays = array_files.read_arrays(path, "predictions")
  k = mpii.NUM_JOINTS
  if "preds" in arrays:
    preds = _numbers(arrays, "preds", path)
    layout = predictions_layout(preds.shape)
    if not layout:
      raise errors.InputError(
          f"{path!r}: preds has shape {preds.shape}; expected (N, 16, 2) or "
          "(2, 16, N), 1-based (x, y) of N people.")
    if layout == "2,16,N":
      preds = preds.transpose(2, 1, 0)
  elif "pos_pred_src" in arrays:
    preds = _numbers(arrays, "pos_pred_src", path)
    if preds.ndim != 3 or preds.shape[:2] != (k, 2):
      raise errors.InputError(f"{path!r}: pos_pred_src must be (16, 2, N), got "
                              f"{preds.shape}.")
    preds = preds.transpose(2, 0, 1)
  else:
    found = sorted(key for key in arrays if not key.startswith("__"))
    hint = (" (a ground-truth file: are --ground_truth and --predictions "
            "swapped?)" if "part" in found else "")
    raise errors.InputError(
        f"{path!r} has no 'preds' array ((N, 16, 2) or (2, 16, N), 1-based); "
        f"found {found}{hint}.")
  finite = np.isfinite(preds).all(axis=-1)
  if not finite.all():
    person, joint = np.argwhere(~finite)[0]
    raise errors.InputError(
        f"{path!r}: predictions hold NaN or inf (first at person {person}, "
        f"joint {joint}); every joint needs a finite prediction.")
  return preds


def evaluate_files(ground_truth_path: str, predictions_path: str,
                   threshold: float = 0.5) -> Dict[str, float]:
  """`pckh_table` of a predictions file against a ground-truth file."""
  gt = load_ground_truth(ground_truth_path)
  preds = load_predictions(predictions_path)
  if preds.shape[0] != gt.joints.shape[0]:
    raise errors.InputError(
        f"{predictions_path!r} has {preds.shape[0]} people but "
        f"{ground_truth_path!r} has {gt.joints.shape[0]}: predictions must "
        "follow the ground truth's people, in order.")
  return pckh_table(preds, gt.joints, gt.annotated, gt.head_sizes, threshold)


# ------------------------------------------------------------------------ CLI


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("ground_truth", None,
                      "gt_valid.mat or pose-hg-train valid.h5.")
  flags.DEFINE_string("predictions", None,
                      ".h5/.mat with preds (N x 16 x 2 or 2 x 16 x N, "
                      "1-based).")
  flags.DEFINE_float("threshold", 0.5,
                     "PCKh threshold of all columns but Mean@0.1.")
  flags.DEFINE_bool("json", False, "Print a JSON object instead of a table.")
  flags.mark_flags_as_required(["ground_truth", "predictions"])


def main(argv):
  del argv  # cli.run allows none.
  table = evaluate_files(FLAGS.ground_truth, FLAGS.predictions,
                         FLAGS.threshold)
  if FLAGS.json:
    print(json.dumps(table))
  else:
    print(format_table(table, FLAGS.threshold))


if __name__ == "__main__":
  cli.run(main, define_flags)
