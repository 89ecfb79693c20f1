"""Synthetic MPII, part 3: writing annotations in MPII's own file formats.

The people of `synthetic` are written exactly as the real data sets ship
them, with what the project's readers (`mpii_official`, `mpii_json`,
`acnn_jax.pckh`) read:

* layout 'official' (the MPII release + pose-hg-train's validation split):
    D/mpii_human_pose_v1_u12_1.mat   struct RELEASE (annolist, img_train),
                                     MATLAB v5, 1-based pixels, with the
                                     release's awkward nesting and number types
    D/valid.h5                       index, person (0-based), imgname, part,
                                     normalize
* layout 'json' (HRNet / mmpose):
    D/annot/train.json, D/annot/valid.json
    D/annot/gt_valid.mat             pos_gt_src, jnt_missing, headboxes_src
                                     (same order as valid.json)

Every file is a pure function of its arguments: same bytes for the same data.
"""

import dataclasses
import io
import json
import os
from typing import Any, Dict, List, Sequence, Tuple

import h5py
import numpy as np
import scipy.io

from acnn_jax import mpii
from input_pipeline import mpii_json
from input_pipeline import mpii_official


@dataclasses.dataclass
class Annotation:
  """One person as the release stores it (1-based pixels).

  The .mat, valid.h5 and the JSON files are all written from these, so they
  agree by construction.
  """
  objpos: Tuple[int, int]
  scale: float
  head_box: Tuple[int, int, int, int]      # x1, y1, x2, y2.
  joints: np.ndarray                       # (16, 2) float, as stored.
  annotated: np.ndarray                    # (16,) bool: has a point.
  is_visible: List[Any]                    # Raw .mat values per joint.
  has_points: bool


@dataclasses.dataclass
class ImageRecord:
  """One image: its file name, split and people."""
  name: str
  is_train: bool
  people: List[Annotation]


# ------------------------------------------------------ the .mat writer --


def _mat_number(value) -> np.ndarray:
  """A 1x1 array typed as MATLAB's writer stored MPII's numbers.

  The release stores integral values in the smallest integer class (uint8,
  uint16, int16) and others as double; readers must cope with all of them.
  """
  value = float(value)
  if value == int(value):
    for dtype in (np.uint8, np.uint16, np.int16):
      info = np.iinfo(dtype)
      if info.min <= value <= info.max:
        return np.array([[value]], dtype)
  return np.array([[value]], np.float64)


def _struct_array(rows: Sequence[Dict[str, Any]], fields: Sequence[str],
                  shape: Tuple[int, int]) -> np.ndarray:
  """A MATLAB struct array (savemat writes structured arrays as such)."""
  array = np.empty(len(rows), dtype=[(f, object) for f in fields])
  for i, row in enumerate(rows):
    for f in fields:
      array[f][i] = row[f]
  return array.reshape(shape)


def _empty() -> np.ndarray:
  return np.zeros((0, 0))  # MATLAB's [].


def _points(a: Annotation) -> np.ndarray:
  """The 1xK `annopoints.point` struct array of the annotated joints."""
  rows = [{"id": _mat_number(j), "x": _mat_number(a.joints[j, 0]),
           "y": _mat_number(a.joints[j, 1]), "is_visible": a.is_visible[j]}
          for j in np.flatnonzero(a.annotated)]
  # The release lists points in annotation order, not by id.
  return _struct_array(rows, ("x", "y", "id", "is_visible"), (1, len(rows)))


def _annorect(record: ImageRecord) -> np.ndarray:
  """One image's 1xP `annorect`; test images only carry scale and objpos."""
  rows = []
  for a in record.people:
    row = {"x1": _mat_number(a.head_box[0]), "y1": _mat_number(a.head_box[1]),
           "x2": _mat_number(a.head_box[2]), "y2": _mat_number(a.head_box[3]),
           "annopoints": ({"point": _points(a)} if a.has_points else _empty()),
           "scale": _mat_number(a.scale),
           "objpos": {"x": _mat_number(a.objpos[0]),
                      "y": _mat_number(a.objpos[1])}}
    rows.append(row)
  fields = (("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")
            if record.is_train else ("scale", "objpos"))
  return _struct_array(rows, fields, (1, len(rows)))


def _release(records: Sequence[ImageRecord]) -> Dict[str, Any]:
  """The RELEASE struct's fields that readers use, nested as in
  mpii_human_pose_v1_u12_1.mat."""
  annolist = _struct_array(
      [{"image": {"name": r.name}, "annorect": _annorect(r)}
       for r in records], ("image", "annorect"), (1, len(records)))
  return {"annolist": annolist,
          "img_train": np.array([[r.is_train for r in records]], np.uint8)}


def _savemat(path: str, variables: Dict[str, Any], seed: int) -> None:
  """savemat with a fixed header: scipy stamps the time, which breaks
  byte-for-byte determinism."""
  buffer = io.BytesIO()
  scipy.io.savemat(buffer, variables, do_compression=True, oned_as="column")
  data = bytearray(buffer.getvalue())
  text = (f"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by: acnn-jax "
          f"input_pipeline.synthetic (seed {seed})").encode("ascii")
  data[:116] = text[:116].ljust(116, b" ")
  with open(path, "wb") as f:
    f.write(bytes(data))


# ------------------------------------------------- valid.h5 and the JSON --


def _valid_rows(records, valid_pairs):
  """Per validation person: image name, pair and annotation."""
  return [(records[i].name, i, p, records[i].people[p]) for i, p in
          valid_pairs]


def _write_valid_h5(path: str, rows) -> None:
  """pose-hg-train's annot/valid.h5 for the validation people."""
  n = len(rows)
  part = np.zeros((n, mpii.NUM_JOINTS, 2))
  for k, (_, _, _, a) in enumerate(rows):
    # pose-hg-train stored whole pixels, 0 for joints without a point.
    part[k] = np.where(a.annotated[:, None], np.floor(a.joints), 0)
  boxes = np.array([a.head_box for _, _, _, a in rows], np.float64)
  columns = {
      "imgname": np.array([r[0].encode() for r in rows], dtype="S13"),
      "index": np.array([r[1] for r in rows], np.float64),
      "normalize": mpii.head_size(boxes.reshape(n, 4)),
      "part": part,
      "person": np.array([r[2] for r in rows], np.float64),
  }
  with h5py.File(path, "w", track_order=False) as f:
    for key, value in columns.items():
      # No timestamps in the object headers: same bytes for the same seed.
      f.create_dataset(key, data=value, track_times=False)


def write_official(output_dir: str, records: Sequence[ImageRecord],
                   valid_pairs: Sequence[Tuple[int, int]], seed: int) -> None:
  """The release .mat and valid.h5 (layout 'official')."""
  _savemat(os.path.join(output_dir, mpii_official.RELEASE_FILE),
           {"RELEASE": _release(records)}, seed)
  _write_valid_h5(os.path.join(output_dir, mpii_official.VALID_H5_FILE),
                  _valid_rows(records, valid_pairs))


def _json_entry(name: str, a: Annotation) -> Dict[str, Any]:
  """One HRNet/mmpose entry; unannotated joints are [-1, -1] as in HRNet."""
  joints = [[float(x), float(y)] if ok else [-1.0, -1.0]
            for (x, y), ok in zip(a.joints, a.annotated)]
  return {"joints_vis": [int(v) for v in a.annotated], "joints": joints,
          "image": name, "scale": round(a.scale, 6),
          "center": [float(a.objpos[0]), float(a.objpos[1])]}


def _write_gt_valid(path: str, rows, seed: int) -> None:
  """HRNet's gt_valid.mat: the validation ground truth in valid.json order."""
  n = len(rows)
  pos = np.zeros((mpii.NUM_JOINTS, 2, n))
  missing = np.ones((mpii.NUM_JOINTS, n), np.uint8)
  boxes = np.zeros((2, 2, n))
  for k, (_, _, _, a) in enumerate(rows):
    pos[:, :, k] = np.where(a.annotated[:, None], a.joints, 0)
    missing[:, k] = ~a.annotated
    boxes[:, :, k] = np.reshape(a.head_box, (2, 2))
  _savemat(path, {"jnt_missing": missing, "pos_gt_src": pos,
                  "headboxes_src": boxes}, seed)


def write_json(output_dir: str, records: Sequence[ImageRecord],
               valid_pairs: Sequence[Tuple[int, int]], seed: int) -> None:
  """annot/train.json, annot/valid.json and annot/gt_valid.mat (layout
  'json')."""
  annot = os.path.join(output_dir, mpii_json.ANNOT_DIR)
  os.makedirs(annot, exist_ok=True)
  valid_set = set(valid_pairs)
  train = [_json_entry(r.name, a) for i, r in enumerate(records) if r.is_train
           for p, a in enumerate(r.people)
           if a.has_points and (i, p) not in valid_set]
  rows = _valid_rows(records, valid_pairs)
  valid = [_json_entry(name, a) for name, _, _, a in rows]
  for file_name, entries in ((mpii_json.TRAIN_JSON_FILES[0], train),
                             (mpii_json.VALID_JSON_FILES[0], valid)):
    with open(os.path.join(annot, file_name), "w") as f:
      json.dump(entries, f)
  _write_gt_valid(os.path.join(annot, mpii_json.GT_VALID_FILE), rows, seed)
