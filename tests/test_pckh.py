"""Tests for acnn_jax.pckh: protocol on hand-made cases, files, CLI, errors."""

import json
import math
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io

from acnn_jax import mpii
from acnn_jax import pckh
from conftest import PROCESS_TIMEOUT

REPO = pathlib.Path(__file__).resolve().parents[1]

# docs/design.md section 4: newell.h5 against gt_valid.mat.
NEWELL_GT_VALID = {
    "Head": 95.94, "Shoulder": 95.19, "Elbow": 89.14, "Wrist": 84.17,
    "Hip": 86.97, "Knee": 83.20, "Ankle": 80.37, "Mean": 88.43,
    "Mean@0.1": 21.59, "OfficialHead": 96.83,
}
# The same predictions against valid.h5, measured. Its `part` coordinates are
# integers (gt_valid.mat has sub-pixel ones), which moves Ankle by +0.03,
# OfficialHead by -0.02 and Mean@0.1 by -0.39; Mean@0.5 is unchanged.
NEWELL_VALID_H5 = dict(NEWELL_GT_VALID, **{
    "Ankle": 80.40, "Mean@0.1": 21.20, "OfficialHead": 96.81})


def _perfect(n=4, head_size=10.0):
  """n people, all joints annotated, predictions equal to ground truth."""
  # Integer positions keep `gt + offset - gt == offset` exact, so the
  # threshold-boundary tests test `<=`, not rounding.
  rng = np.random.default_rng(0)
  gt = rng.integers(100, 500, size=(n, mpii.NUM_JOINTS, 2)).astype(float)
  return (gt.copy(), gt, np.ones((n, mpii.NUM_JOINTS), bool),
          np.full(n, head_size))


def _assert_table(table, expected):
  assert set(table) == set(pckh.TABLE_KEYS)
  for key, value in expected.items():
    assert round(table[key], 2) == pytest.approx(value, abs=1e-9), key


# ------------------------------------------------------------- the protocol


def test_threshold_is_inclusive():
  preds, gt, annotated, head_sizes = _perfect(n=1, head_size=10.0)
  # A 3-4-5 triangle: distance 5 = 0.5 * head size exactly in floating point.
  preds[0, mpii.L_KNEE] += (3.0, 4.0)
  preds[0, mpii.R_KNEE] += (3.0, 4.001)
  pck, counts = pckh.pckh(preds, gt, annotated, head_sizes, threshold=0.5)
  assert pck[mpii.L_KNEE] == 100.0
  assert pck[mpii.R_KNEE] == 0.0
  np.testing.assert_array_equal(counts, np.ones(mpii.NUM_JOINTS))


def test_mean_at_01_is_inclusive_too():
  preds, gt, annotated, head_sizes = _perfect(n=1, head_size=50.0)
  preds[0] += (3.0, 4.0)  # 5 / 50 == 0.1 exactly.
  table = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert table["Mean@0.1"] == 100.0
  preds[0] += (0.0, 0.001)
  assert pckh.pckh_table(preds, gt, annotated, head_sizes)["Mean@0.1"] == 0.0


def test_missing_joints_are_excluded():
  preds, gt, annotated, head_sizes = _perfect(n=4)
  # Person 0's left ankle is far off but not annotated: it must not count,
  # neither as wrong nor in the denominator (NaN ground truth is fine there).
  preds[0, mpii.L_ANKLE] += 1000.0
  gt[0, mpii.L_ANKLE] = np.nan
  annotated[0, mpii.L_ANKLE] = False
  pck, counts = pckh.pckh(preds, gt, annotated, head_sizes)
  assert counts[mpii.L_ANKLE] == 3
  assert pck[mpii.L_ANKLE] == 100.0
  table = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert table["Ankle"] == 100.0 and table["Mean"] == 100.0


def test_never_annotated_joint_is_nan():
  preds, gt, annotated, head_sizes = _perfect(n=2)
  annotated[:, mpii.HEAD_TOP] = False
  pck, counts = pckh.pckh(preds, gt, annotated, head_sizes)
  assert counts[mpii.HEAD_TOP] == 0 and math.isnan(pck[mpii.HEAD_TOP])
  table = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert math.isnan(table["Head"])
  assert table["OfficialHead"] == 100.0  # The upper neck still counts.


def test_pelvis_and_thorax_are_not_in_mean():
  preds, gt, annotated, head_sizes = _perfect(n=2)
  preds[:, mpii.PELVIS] += 100.0
  preds[:, mpii.THORAX] += 100.0
  table = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert table["Mean"] == 100.0 and table["Mean@0.1"] == 100.0
  # A wrong knee, by contrast, does move Mean: 1 wrong of 2 * 14 joints.
  preds[0, mpii.R_KNEE] += 100.0
  table = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert table["Mean"] == pytest.approx(100.0 * 27 / 28)


def test_columns_are_count_weighted():
  preds, gt, annotated, head_sizes = _perfect(n=4)
  # Three annotated left wrists, all right; one right wrist, wrong. Pooled:
  # 3/4 = 75%; a plain left/right average would give 50%.
  annotated[3, mpii.L_WRIST] = False
  annotated[:3, mpii.R_WRIST] = False
  preds[3, mpii.R_WRIST] += 100.0
  table = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert table["Wrist"] == 75.0
  # Mean pools too: 1 wrong out of 4 * 14 - 4 annotated joints.
  assert table["Mean"] == pytest.approx(100.0 * 51 / 52)


def test_official_head_pools_neck_and_head_top():
  preds, gt, annotated, head_sizes = _perfect(n=4)
  preds[0, mpii.UPPER_NECK] += 100.0
  table = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert table["Head"] == 100.0
  assert table["OfficialHead"] == 87.5


def test_format_table():
  table = dict.fromkeys(pckh.TABLE_KEYS, 12.345)
  table["Mean"] = 88.4257
  text = pckh.format_table(table)
  for key in pckh.TABLE_KEYS:
    assert key in text
  assert "88.43" in text and "12.35" in text  # Two decimals.
  with pytest.raises(ValueError, match="Mean"):
    pckh.format_table({"Head": 1.0})


# ------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(predictions=a["predictions"][:3]), "3 people|same"),
    (lambda a: a.update(predictions=a["predictions"][:, :15]), "16, 2"),
    (lambda a: a.update(ground_truth=a["ground_truth"][..., :1]), "16, 2"),
    (lambda a: a.update(head_sizes=a["head_sizes"][:2]), "2 people"),
    (lambda a: a["predictions"].__setitem__((1, 2, 0), np.nan), "NaN or inf"),
    (lambda a: a["predictions"].__setitem__((1, 2, 1), np.inf), "NaN or inf"),
    (lambda a: a["head_sizes"].__setitem__(2, 0.0), "positive"),
    (lambda a: a["head_sizes"].__setitem__(2, -3.0), "positive"),
    (lambda a: a.update(threshold=-0.5), "threshold"),
])
def test_bad_arrays(change, match):
  preds, gt, annotated, head_sizes = _perfect(n=4)
  args = dict(predictions=preds, ground_truth=gt, annotated=annotated,
              head_sizes=head_sizes)
  change(args)
  with pytest.raises(ValueError, match=match):
    pckh.pckh_table(**args)
  with pytest.raises(ValueError, match=match):
    pckh.pckh(**args)


def _write_h5(path, **arrays):
  with h5py.File(path, "w") as f:
    for key, value in arrays.items():
      f[key] = value
  return str(path)


def test_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.mat"):
    pckh.load_ground_truth(str(tmp_path / "nope.mat"))
  with pytest.raises(FileNotFoundError, match="nope.h5"):
    pckh.load_predictions(str(tmp_path / "nope.h5"))


def test_wrong_kind_of_files(tmp_path):
  preds_file = _write_h5(tmp_path / "p.h5", preds=np.zeros((2, 16, 2)))
  with pytest.raises(ValueError, match="not a ground-truth file.*swapped"):
    pckh.load_ground_truth(preds_file)
  text = tmp_path / "notes.txt"
  text.write_text("hello\n")
  with pytest.raises(ValueError, match="neither HDF5 nor a MATLAB"):
    pckh.load_ground_truth(str(text))
  other = _write_h5(tmp_path / "o.h5", joints=np.zeros((2, 16, 2)))
  with pytest.raises(ValueError, match="no 'preds'"):
    pckh.load_predictions(other)
  bad_shape = _write_h5(tmp_path / "b.h5", preds=np.zeros((2, 2, 16)))
  with pytest.raises(ValueError, match=r"\(N, 16, 2\)"):
    pckh.load_predictions(bad_shape)


def test_files_round_trip_and_n_mismatch(tmp_path):
  preds, gt, annotated, head_sizes = _perfect(n=3)
  annotated[0, mpii.L_HIP] = False
  gt[0, mpii.L_HIP] = 0.0
  preds[1, mpii.R_HIP] += 100.0
  # gt_valid.mat layout; head boxes chosen so 0.6 * diagonal = head size.
  side = head_sizes / 0.6 / math.sqrt(2)
  boxes = np.stack([np.zeros((2, 3)), np.stack([side, side])])
  gt_file = str(tmp_path / "gt.mat")
  scipy.io.savemat(gt_file, {"pos_gt_src": gt.transpose(1, 2, 0),
                             "jnt_missing": (~annotated).T.astype(np.uint8),
                             "headboxes_src": boxes})
  loaded = pckh.load_ground_truth(gt_file)
  np.testing.assert_allclose(loaded.joints, gt)
  np.testing.assert_array_equal(loaded.annotated, annotated)
  np.testing.assert_allclose(loaded.head_sizes, head_sizes)
  # valid.h5 layout: unannotated joints are (0, 0); negative ones still count.
  gt_neg = gt.copy()
  gt_neg[2, mpii.L_HIP] = (-5.0, 0.0)
  h5_file = _write_h5(tmp_path / "valid.h5", part=gt_neg, normalize=head_sizes)
  loaded_h5 = pckh.load_ground_truth(h5_file)
  np.testing.assert_array_equal(loaded_h5.annotated, annotated)
  # Predictions as `preds` (.h5) and as MATLAB's `pos_pred_src` (.mat).
  preds_h5 = _write_h5(tmp_path / "p.h5", preds=preds)
  preds_mat = str(tmp_path / "p.mat")
  scipy.io.savemat(preds_mat, {"pos_pred_src": preds.transpose(1, 2, 0)})
  np.testing.assert_allclose(pckh.load_predictions(preds_mat), preds)
  expected = pckh.pckh_table(preds, gt, annotated, head_sizes)
  assert expected["Hip"] == 80.0  # 4 of 5 annotated hips.
  assert pckh.evaluate_files(gt_file, preds_h5) == expected
  assert pckh.evaluate_files(gt_file, preds_mat) == expected
  short = _write_h5(tmp_path / "short.h5", preds=preds[:2])
  with pytest.raises(ValueError, match="2 people.*3"):
    pckh.evaluate_files(gt_file, short)


# ------------------------------------------------------- real MPII files


def test_newell_against_gt_valid(shared_mpii):
  table = pckh.evaluate_files(str(shared_mpii / "gt_valid.mat"),
                              str(shared_mpii / "reference_preds/newell.h5"))
  _assert_table(table, NEWELL_GT_VALID)


def test_newell_against_valid_h5(shared_mpii):
  preds = str(shared_mpii / "reference_preds/newell.h5")
  table = pckh.evaluate_files(str(shared_mpii / "valid.h5"), preds)
  _assert_table(table, NEWELL_VALID_H5)
  reference = pckh.evaluate_files(str(shared_mpii / "gt_valid.mat"), preds)
  # Same people, annotations and head sizes; only integer rounding differs.
  for key in pckh.TABLE_KEYS:
    limit = 0.5 if key == "Mean@0.1" else 0.05
    assert abs(table[key] - reference[key]) < limit, key


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "acnn_jax.pckh", *args],
                        cwd=REPO, capture_output=True, text=True,
                        timeout=PROCESS_TIMEOUT, check=False)


@pytest.mark.slow
def test_cli_json(shared_mpii):
  result = _cli("--ground_truth", str(shared_mpii / "gt_valid.mat"),
                "--predictions", str(shared_mpii / "reference_preds/newell.h5"),
                "--json")
  assert result.returncode == 0, result.stderr
  table = json.loads(result.stdout)
  assert list(table) == list(pckh.TABLE_KEYS)
  _assert_table(table, NEWELL_GT_VALID)


@pytest.mark.slow
def test_cli_table_and_error(tmp_path):
  preds, gt, _, head_sizes = _perfect(n=2)
  gt_file = _write_h5(tmp_path / "valid.h5", part=gt, normalize=head_sizes)
  preds_file = _write_h5(tmp_path / "p.h5", preds=preds)
  result = _cli("--ground_truth", gt_file, "--predictions", preds_file)
  assert result.returncode == 0, result.stderr
  assert "Mean@0.1" in result.stdout and "100.00" in result.stdout
  # Swapped files: one clear line on stderr, non-zero status, no traceback.
  result = _cli("--ground_truth", preds_file, "--predictions", gt_file)
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "not a ground-truth file" in lines[0], lines
