"""Reader for the HRNet / mmpose JSON layout of MPII.

HRNet (deep-high-resolution-net.pytorch) and mmpose ship MPII's annotations as
`train.json` and `valid.json` (mmpose: `mpii_train.json`, `mpii_val.json`):
a list of `{"image", "center", "scale", "joints", "joints_vis"}` with 1-based
pixel coordinates and `joints_vis` meaning "annotated" (not MPII's occlusion
flag). `valid.json` holds Tompson's 2958 validation people in the order of
`gt_valid.mat`, whose `headboxes_src` gives their head boxes; the layout has
none for training people.

The records are those of `mpii_official` (see its module docstring), with
`visible` = -1 (this layout does not keep MPII's occlusion flag), `index` and
`person` = -1 (it does not keep the release's indices) and zero head boxes for
training people.
"""

import json
from typing import Any, Dict, NamedTuple, Optional, Sequence

import numpy as np

from acnn_jax import errors
from acnn_jax import mpii
from input_pipeline import array_files
from input_pipeline import mpii_official

Record = mpii_official.Record

# HRNet's folder and file names (the first of each), then mmpose's.
ANNOT_DIR = "annot"
TRAIN_JSON_FILES = ("train.json", "mpii_train.json")
VALID_JSON_FILES = ("valid.json", "mpii_val.json")
GT_VALID_FILE = "gt_valid.mat"
GT_VALID_FILES = (GT_VALID_FILE, "mpii_gt_val.mat")
GT_VALID_KEYS = ("pos_gt_src", "jnt_missing", "headboxes_src")


def parse_entry(entry: dict[str, Any]) -> Record:
  """Converts one JSON entry into a record (1-based -> 0-based).

  Args:
    entry: a dict with `image`, `center`, `scale`, `joints` (16 x [x, y]) and
      `joints_vis` (16 flags; absent means every joint is annotated).

  Returns:
    The record; index/person -1, visible -1, head box zeros.
  """
  joints = np.asarray(entry["joints"], np.float64).reshape(mpii.NUM_JOINTS, 2)
  flags = entry.get("joints_vis")
  if flags is None:
    annotated = np.ones(mpii.NUM_JOINTS, bool)
  else:
    # Some writers store joints_vis as 16x2 (one flag per coordinate).
    flags = np.asarray(flags, np.float64).reshape(mpii.NUM_JOINTS, -1)
    annotated = flags[:, 0] > 0
  return mpii_official.make_record(
      image=entry["image"], index=-1, person=-1, joints=joints - 1.0,
      annotated=annotated, visible=np.full(mpii.NUM_JOINTS, -1),
      center=np.asarray(entry["center"], np.float64) - 1.0,
      scale=float(np.asarray(entry["scale"]).ravel()[0]),
      head_box=np.zeros(4))


def read_json(path: str) -> list[Record]:
  """Reads a `train.json` / `valid.json` file into records, in file order."""
  with open(path) as f:
    entries = json.load(f)
  return [parse_entry(entry) for entry in entries]


class GtValid(NamedTuple):
  """The validation ground truth of `gt_valid.mat`, people first.

  Attributes:
    joints: (N, 16, 2) float64 (x, y), 1-BASED as stored (`pos_gt_src`).
    annotated: (N, 16) bool, not `jnt_missing`.
    head_boxes: (N, 4) float64 x1, y1, x2, y2, 1-based (`headboxes_src`).
  """
  joints: np.ndarray
  annotated: np.ndarray
  head_boxes: np.ndarray


def parse_gt_valid(arrays: Dict[str, np.ndarray], path: str) -> GtValid:
  """Checks and reshapes the arrays of a `gt_valid.mat` (`GT_VALID_KEYS`).

  `pos_gt_src` is (16, 2, N), `jnt_missing` (16, N) and `headboxes_src`
  (2, 2, N) with rows (x1, y1) and (x2, y2).

  Args:
    arrays: the file's arrays (`array_files.read_arrays`).
    path: the file, for error messages.

  Raises:
    errors.InputError: an array is missing or has the wrong shape.
  """
  missing = [key for key in GT_VALID_KEYS if key not in arrays]
  if missing:
    raise errors.InputError(f"{path!r} lacks {missing}: is it HRNet's "
                            f"{GT_VALID_FILE}?")
  k = mpii.NUM_JOINTS
  joints = np.asarray(arrays["pos_gt_src"], np.float64)
  if joints.ndim != 3 or joints.shape[:2] != (k, 2):
    raise errors.InputError(f"{path!r}: pos_gt_src must be (16, 2, N), got "
                            f"{joints.shape}.")
  n = joints.shape[2]
  not_annotated = np.asarray(arrays["jnt_missing"])
  if not_annotated.shape != (k, n):
    raise errors.InputError(f"{path!r}: jnt_missing must be (16, {n}), got "
                            f"{not_annotated.shape}.")
  boxes = np.asarray(arrays["headboxes_src"], np.float64)
  if boxes.shape != (2, 2, n):
    raise errors.InputError(f"{path!r}: headboxes_src must be (2, 2, {n}) "
                            f"head boxes, got {boxes.shape}.")
  return GtValid(joints=joints.transpose(2, 0, 1),
                 annotated=~not_annotated.T.astype(bool),
                 head_boxes=boxes.transpose(2, 0, 1).reshape(n, 4))


def read_gt_valid(path: str) -> GtValid:
  """Reads `gt_valid.mat` (HRNet's, mmpose's `mpii_gt_val.mat`, or
  pytorch-pose's `detections_our_format.mat`); see `parse_gt_valid`."""
  return parse_gt_valid(array_files.read_arrays(path, "gt_valid.mat"), path)


def attach_head_boxes(records: Sequence[Record], head_boxes: np.ndarray
                      ) -> list[Record]:
  """Copies of `records` with the head boxes of `gt_valid.mat`, in order.

  Raises:
    errors.InputError: the counts differ (the files do not belong together).
  """
  if len(records) != len(head_boxes):
    raise errors.InputError(
        f"{len(records)} validation people but {len(head_boxes)} head boxes: "
        "valid.json and gt_valid.mat do not match.")
  return [dict(r, head_box=np.asarray(b, np.float32))
          for r, b in zip(records, head_boxes)]


def order_mismatches(records: Sequence[Record], joints: np.ndarray,
                     annotated: np.ndarray, tolerance: float = 1.0
                     ) -> list[int]:
  """Positions where a record's joints disagree with `gt_valid.mat`'s.

  A cheap check that `valid.json` and `gt_valid.mat` list the same people in
  the same order. Only joints annotated in both are compared, and coordinates
  that `gt_valid.mat` holds as 0 are ignored: the real file has 13 of them for
  annotated joints.

  Args:
    records: validation records (0-based).
    joints: (N, 16, 2) `gt_valid.mat`'s joints, 0-based.
    annotated: (N, 16) its annotated joints.
    tolerance: pixels.

  Returns:
    The positions of the disagreeing people.
  """
  bad = []
  for i, record in enumerate(records):
    both = record["annotated"] & annotated[i]
    ours, theirs = record["joints"][both], joints[i][both]
    keep = theirs != -1.0  # A 0 in the 1-based file.
    if np.any(np.abs(ours - theirs)[keep] > tolerance):
      bad.append(i)
  return bad


def read_validation(json_path: str, gt_valid_path: Optional[str]
                    ) -> list[Record]:
  """Reads `valid.json` with the head boxes of `gt_valid.mat`.

  Args:
    json_path: `valid.json` / `mpii_val.json`.
    gt_valid_path: `gt_valid.mat`; None leaves the head boxes at zero.

  Returns:
    Validation records in file order.

  Raises:
    errors.InputError: the two files list different people (count, or joints
      of more than 1% of the people).
  """
  records = read_json(json_path)
  if gt_valid_path is None:
    return records
  gt = read_gt_valid(gt_valid_path)
  records = attach_head_boxes(records, gt.head_boxes - 1.0)
  bad = order_mismatches(records, gt.joints - 1.0, gt.annotated)
  if len(bad) > 0.01 * len(records):
    raise errors.InputError(
        f"{json_path} and {gt_valid_path} disagree on the joints of "
        f"{len(bad)} of {len(records)} people (first: #{bad[0]}): they are "
        "not the same people in the same order.")
  return records
