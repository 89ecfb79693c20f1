"""Tests of the HRNet/mmpose JSON reader and gt_valid.mat.

The real-data tests use ../shared/mpii (the `shared_mpii` fixture skips
without it).
"""

import json

import numpy as np
import pytest
import scipy.io

from acnn_jax import errors
from acnn_jax import mpii
from input_pipeline import mpii_json
from input_pipeline import mpii_official


def test_json_reader_agrees_with_official_annotations(shared_mpii,
                                                      valid_annolist):
  _, official = valid_annolist
  records = mpii_json.read_json(
      str(shared_mpii / "valid_sample_hrnet_format.json"))
  names = mpii_official.read_valid_h5_image_names(
      str(shared_mpii / "valid.h5"))
  assert len(records) == 5
  for record, reference, name in zip(records, official[:5], names):
    assert record["image"] == name
    np.testing.assert_array_equal(record["annotated"], reference["annotated"])
    np.testing.assert_allclose(record["joints"], reference["joints"],
                               atol=1e-3)
    np.testing.assert_allclose(record["center"], reference["center"])
    np.testing.assert_allclose(record["scale"], reference["scale"], rtol=1e-6)
    assert (record["visible"] == -1).all()
    assert record["index"] == record["person"] == -1
    assert (record["head_box"] == 0).all()


def test_json_validation_takes_head_boxes_from_gt_valid(shared_mpii, tmp_path):
  mat = scipy.io.loadmat(str(shared_mpii / "gt_valid.mat"))
  small = str(tmp_path / "gt_valid.mat")
  scipy.io.savemat(small, {k: mat[k][..., :5] for k in (
      "pos_gt_src", "jnt_missing", "headboxes_src")})
  records = mpii_json.read_validation(
      str(shared_mpii / "valid_sample_hrnet_format.json"), small)
  expected = mpii_json.read_gt_valid(small).head_boxes - 1.0
  np.testing.assert_allclose(np.stack([r["head_box"] for r in records]),
                             expected, atol=1e-4)


def test_json_validation_rejects_mismatched_gt_valid(shared_mpii, tmp_path):
  sample = str(shared_mpii / "valid_sample_hrnet_format.json")
  # Count mismatch: 5 people, 2958 head boxes.
  with pytest.raises(errors.InputError, match="do not match"):
    mpii_json.read_validation(sample, str(shared_mpii / "gt_valid.mat"))
  # Same count, other people.
  mat = scipy.io.loadmat(str(shared_mpii / "gt_valid.mat"))
  other = str(tmp_path / "gt_valid.mat")
  scipy.io.savemat(other, {k: mat[k][..., 5:10] for k in (
      "pos_gt_src", "jnt_missing", "headboxes_src")})
  with pytest.raises(errors.InputError, match="same order"):
    mpii_json.read_validation(sample, other)


def test_json_entry_variants(tmp_path):
  entry = {"image": "x.jpg", "center": [11, 21], "scale": [1.5],
           "joints": [[j + 1, j + 2] for j in range(16)],
           "joints_vis": [[1, 1]] * 8 + [[0, 0]] * 8}
  path = tmp_path / "train.json"
  path.write_text(json.dumps([entry, {k: v for k, v in entry.items()
                                      if k != "joints_vis"}]))
  with_flags, without = mpii_json.read_json(str(path))
  assert with_flags["annotated"].sum() == 8
  assert without["annotated"].all()
  np.testing.assert_array_equal(without["joints"][3], [3, 4])
  np.testing.assert_array_equal(with_flags["joints"][12], [0, 0])
  np.testing.assert_array_equal(with_flags["center"], [10, 20])
  assert with_flags["scale"] == np.float32(1.5)


def _gt_arrays(n=2):
  rows = np.array([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 6.0, 8.0]])[:n]
  joints = np.arange(n * 16 * 2, dtype=np.float64).reshape(n, 16, 2)
  missing = np.zeros((16, n), np.uint8)
  missing[mpii.PELVIS, 0] = 1
  return rows, joints, {
      "pos_gt_src": joints.transpose(1, 2, 0), "jnt_missing": missing,
      # (2, 2, N): [0] = (x1, y1), [1] = (x2, y2) for each person.
      "headboxes_src": np.stack([rows[:, :2].T, rows[:, 2:].T])}


def test_parse_gt_valid_puts_people_first():
  rows, joints, arrays = _gt_arrays()
  gt = mpii_json.parse_gt_valid(arrays, "gt_valid.mat")
  np.testing.assert_array_equal(gt.joints, joints)  # 1-based, as stored.
  np.testing.assert_array_equal(gt.head_boxes, rows)
  assert not gt.annotated[0, mpii.PELVIS] and gt.annotated.sum() == 31
  # The head size of the (2, 2, N) layout is that of the x1, y1, x2, y2 rows.
  np.testing.assert_allclose(mpii.head_size(gt.head_boxes),
                             0.6 * np.array([50.0, 10.0]))


@pytest.mark.parametrize("key,value,match", [
    ("headboxes_src", np.zeros((3, 3)), "headboxes_src must be"),
    ("pos_gt_src", np.zeros((16, 3, 2)), "pos_gt_src must be"),
    ("jnt_missing", np.zeros((16, 3)), "jnt_missing must be"),
    ("pos_gt_src", None, "lacks"),
])
def test_parse_gt_valid_names_the_bad_array(key, value, match):
  _, _, arrays = _gt_arrays()
  if value is None:
    del arrays[key]
  else:
    arrays[key] = value
  with pytest.raises(errors.InputError, match=match):
    mpii_json.parse_gt_valid(arrays, "gt_valid.mat")
