"""Reader for the HRNet / mmpose JSON layout of MPII.

HRNet (deep-high-resolution-net.pytorch) and mmpose ship MPII's annotations as
`train.json` and `valid.json` (mmpose: `mpii_train.json`, `mpii_val.json`):
a list of `{"image", "center", "scale", "joints", "joints_vis"}` with 1-based
pixel coordinates and `joints_vis` meaning "annotated" (not MPII's occlusion
flag). `valid.json` holds Tompson's 2958 validation people in the order of
`gt_valid.mat`, whose `headboxes_src` gives their head boxes; the layout has
none for training people. HRNet's `test.json` (mmpose: `mpii_test.json`),
where present, lists people of the test images with only `image`, `center`
and `scale` (`read_test_json`).

The records are those of `mpii_official` (see its module docstring), with
`visible` = -1 (this layout does not keep MPII's occlusion flag), `index` and
`person` = -1 (it does not keep the release's indices) and zero head boxes for
training people.

A malformed file (not JSON, not a list, an entry without a key or with a
string or a wrong shape where numbers belong) is an `errors.InputError` that
names the file, the entry (list index and image) and the key; a null or NaN
number is one bad person instead, which the builder skips and counts.
"""

import os
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence

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
TEST_JSON_FILES = ("test.json", "mpii_test.json")
GT_VALID_FILE = "gt_valid.mat"
GT_VALID_FILES = (GT_VALID_FILE, "mpii_gt_val.mat")
GT_VALID_KEYS = ("pos_gt_src", "jnt_missing", "headboxes_src")
ENTRY_KEYS = ("image", "center", "scale", "joints")  # joints_vis may be absent.
TEST_ENTRY_KEYS = ("image", "center", "scale")  # Test people have no joints.
# How to replace a damaged file: the end of every error about one.
JSON_FIX = ("Download the file again: HRNet's data/mpii/annot/ or mmpose's "
            "mpii_annotations.tar (see MANUAL_DOWNLOAD_INSTRUCTIONS).")


def _show(value: Any, limit: int = 60) -> str:
  """A value as the error messages quote it: its repr, cut short."""
  text = repr(value)
  return text if len(text) <= limit else text[:limit] + "..."


def _numbers(entry: dict[str, Any], key: str, shapes: Sequence[tuple[int, ...]]
             ) -> np.ndarray:
  """`entry[key]` as float64 of one of `shapes` (-1: any length).

  JSON null and NaN become NaN: a missing number of one person, which the
  builder skips and counts (nan_coordinates) like MPII's own NaNs.

  Raises:
    errors.InputError: the value is not numbers (strings, objects) or has
      another shape; the message names the key (the caller adds the file).
  """
  value = entry[key]
  try:
    array = np.asarray(value)
  except ValueError:  # Ragged lists.
    array = np.asarray(None)
  if array.dtype == object:  # null among the numbers, or something else.
    items = array.ravel()
    if all(v is None or isinstance(v, (int, float)) for v in items):
      array = np.asarray([np.nan if v is None else v for v in items],
                         np.float64).reshape(array.shape)
  if array.dtype.kind not in "biuf" or not any(
      len(shape) == array.ndim and all(n in (-1, m) for n, m in
                                       zip(shape, array.shape))
      for shape in shapes):
    wanted = " or ".join(str(shape).replace("-1", "k") for shape in shapes)
    raise errors.InputError(
        f"'{key}' must be numbers of shape {wanted}, got {_show(value)}")
  return array.astype(np.float64)


def _check_entry(entry: Any, keys: Sequence[str]) -> None:
  """Raises `errors.InputError` unless `entry` is an object holding `keys`
  with a file name in 'image'."""
  if not isinstance(entry, dict):
    raise errors.InputError(
        f"an entry must be an object with {', '.join(keys)}, got "
        f"{_show(entry)}")
  absent = [key for key in keys if key not in entry]
  if absent:
    raise errors.InputError(f"the entry lacks {', '.join(absent)}")
  if not isinstance(entry["image"], str) or not entry["image"]:
    raise errors.InputError(
        f"'image' must be a file name, got {_show(entry['image'])}")


def parse_entry(entry: dict[str, Any]) -> Record:
  """Converts one JSON entry into a record (1-based -> 0-based).

  Args:
    entry: a dict with `image`, `center`, `scale`, `joints` (16 x [x, y]) and
      `joints_vis` (16 flags; absent means every joint is annotated).

  Returns:
    The record; index/person -1, visible -1, head box zeros.

  Raises:
    errors.InputError: a key is missing or its value is not what HRNet
      writes; the message names the key.
  """
  _check_entry(entry, ENTRY_KEYS)
  k = mpii.NUM_JOINTS
  joints = _numbers(entry, "joints", [(k, 2)])
  if entry.get("joints_vis") is None:
    annotated = np.ones(k, bool)
  else:
    # Some writers store joints_vis as 16x2 (one flag per coordinate).
    flags = _numbers(entry, "joints_vis", [(k,), (k, -1)]).reshape(k, -1)
    annotated = flags[:, 0] > 0
  return mpii_official.make_record(
      image=entry["image"], index=-1, person=-1, joints=joints - 1.0,
      annotated=annotated, visible=np.full(k, -1),
      center=_numbers(entry, "center", [(2,)]) - 1.0,
      scale=_numbers(entry, "scale", [(), (1,)]).item(),
      head_box=np.zeros(4))


def parse_test_entry(entry: dict[str, Any]) -> Record:
  """Converts one `test.json` entry (a person without joints) into a record.

  Args:
    entry: a dict with `image`, `center` and `scale`; other keys (joints,
      if a writer added them) are ignored: the test set has no ground truth.

  Returns:
    The record: index/person -1 (the layout does not keep the release's
    indices), no annotated joint, visible -1, head box zeros.

  Raises:
    errors.InputError: a key is missing or its value is not what HRNet
      writes; the message names the key.
  """
  _check_entry(entry, TEST_ENTRY_KEYS)
  k = mpii.NUM_JOINTS
  return mpii_official.make_record(
      image=entry["image"], index=-1, person=-1, joints=np.zeros((k, 2)),
      annotated=np.zeros(k, bool), visible=np.full(k, -1),
      center=_numbers(entry, "center", [(2,)]) - 1.0,
      scale=_numbers(entry, "scale", [(), (1,)]).item(),
      head_box=np.zeros(4))


def read_test_json(path: str) -> list[Record]:
  """Reads a `test.json` / `mpii_test.json` file into records, in file order.

  The file order is all that identifies a person besides its image, centre
  and scale: HRNet's file keeps no release index.

  Raises:
    errors.MissingError: the file does not exist.
    errors.InputError: it is not JSON, not a list, or an entry is malformed;
      the message names the file, the entry and the key.
  """
  return _read_entries(path, parse_test_entry)


def read_json(path: str) -> list[Record]:
  """Reads a `train.json` / `valid.json` file into records, in file order.

  Raises:
    errors.MissingError: the file does not exist.
    errors.InputError: it is not JSON, not a list, or an entry is malformed;
      the message names the file, the entry and the key.
  """
  return _read_entries(path, parse_entry)


def _read_entries(path: str, parse: Callable[[Any], Record]) -> list[Record]:
  """The records of a JSON list of people, each read by `parse`."""
  if not os.path.isfile(path):
    raise errors.MissingError(f"{path} does not exist. {JSON_FIX}")
  entries = errors.read_json(path, list, "a list of people",
                              f"Is it HRNet's or mmpose's file? {JSON_FIX}")
  records = []
  for i, entry in enumerate(entries):
    try:
      records.append(parse(entry))
    except errors.InputError as e:
      image = entry.get("image") if isinstance(entry, dict) else None
      where = f"entry {i}" + (f" ({image})" if isinstance(image, str) else "")
      raise errors.InputError(f"{path}, {where}: {e}. {JSON_FIX}") from None
  return records


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


def _gt_array(arrays: Dict[str, np.ndarray], key: str, path: str
              ) -> np.ndarray:
  """`arrays[key]` as float64; errors.InputError when it is not numbers."""
  try:
    array = np.asarray(arrays[key])
    if array.dtype.kind not in "biuf":
      raise TypeError(f"dtype {array.dtype}")
    return array.astype(np.float64)
  except (TypeError, ValueError) as e:
    raise errors.InputError(f"{path!r}: {key} must hold numbers ({e}). "
                            f"{JSON_FIX}") from e


def parse_gt_valid(arrays: Dict[str, np.ndarray], path: str) -> GtValid:
  """Checks and reshapes the arrays of a `gt_valid.mat` (`GT_VALID_KEYS`).

  `pos_gt_src` is (16, 2, N), `jnt_missing` (16, N) and `headboxes_src`
  (2, 2, N) with rows (x1, y1) and (x2, y2).

  Args:
    arrays: the file's arrays (`array_files.read_arrays`).
    path: the file, for error messages.

  Raises:
    errors.InputError: an array is missing, not numbers or has the wrong
      shape.
  """
  missing = [key for key in GT_VALID_KEYS if key not in arrays]
  if missing:
    raise errors.InputError(f"{path!r} lacks {missing}: is it HRNet's "
                            f"{GT_VALID_FILE}? {JSON_FIX}")
  k = mpii.NUM_JOINTS
  joints = _gt_array(arrays, "pos_gt_src", path)
  if joints.ndim != 3 or joints.shape[:2] != (k, 2):
    raise errors.InputError(f"{path!r}: pos_gt_src must be (16, 2, N), got "
                            f"{joints.shape}. {JSON_FIX}")
  n = joints.shape[2]
  not_annotated = _gt_array(arrays, "jnt_missing", path)
  if not_annotated.shape != (k, n):
    raise errors.InputError(f"{path!r}: jnt_missing must be (16, {n}), got "
                            f"{not_annotated.shape}. {JSON_FIX}")
  boxes = _gt_array(arrays, "headboxes_src", path)
  if boxes.shape != (2, 2, n):
    raise errors.InputError(f"{path!r}: headboxes_src must be (2, 2, {n}) "
                            f"head boxes, got {boxes.shape}. {JSON_FIX}")
  return GtValid(joints=joints.transpose(2, 0, 1),
                 annotated=~not_annotated.T.astype(bool),
                 head_boxes=boxes.transpose(2, 0, 1).reshape(n, 4))


def read_gt_valid(path: str) -> GtValid:
  """Reads `gt_valid.mat` (HRNet's, mmpose's `mpii_gt_val.mat`, or
  pytorch-pose's `detections_our_format.mat`); see `parse_gt_valid`."""
  return parse_gt_valid(
      array_files.read_arrays(path, GT_VALID_FILE, JSON_FIX), path)


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
  if len(records) != len(gt.head_boxes):
    raise errors.InputError(
        f"{json_path} lists {len(records)} validation people but "
        f"{gt_valid_path} holds {len(gt.head_boxes)}: the files do not "
        f"match. {JSON_FIX}")
  records = attach_head_boxes(records, gt.head_boxes - 1.0)
  bad = order_mismatches(records, gt.joints - 1.0, gt.annotated)
  if len(bad) > 0.01 * len(records):
    raise errors.InputError(
        f"{json_path} and {gt_valid_path} disagree on the joints of "
        f"{len(bad)} of {len(records)} people (first: #{bad[0]}): they are "
        "not the same people in the same order.")
  return records
