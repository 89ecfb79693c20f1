"""Tests of evaluation: its output files and its command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from acnn_jax import evaluate
from acnn_jax import pckh
from conftest import TRAINED

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pred_mat_is_one_based_and_readable_by_pckh(tmp_path):
  predictions = np.random.default_rng(0).uniform(0, 100, (3, 16, 2))
  result = evaluate.EvalResult(
      table={}, predictions=predictions, confidences=np.ones((3, 16)),
      index=np.arange(3), person=np.zeros(3, int), pictures=[])
  path = str(tmp_path / "pred.mat")
  evaluate.write_pred_mat(path, result)
  np.testing.assert_allclose(pckh.load_predictions(path), predictions + 1.0)


def test_write_results_writes_the_table_and_extras(tmp_path):
  path = str(tmp_path / "eval_results.json")
  evaluate.write_results(path, {"Mean": 50.0}, phase="b", step=7)
  assert json.load(open(path)) == {"Mean": 50.0, "phase": "b", "step": 7}
  assert os.listdir(tmp_path) == ["eval_results.json"]  # No temporary left.


@TRAINED
@pytest.mark.slow
def test_cli_evaluates_a_workdir_and_writes_pred_mat(trained_workdir,
                                                     tmp_path):
  path, _ = trained_workdir
  env = {**os.environ, "XLA_FLAGS": "", "PYTHONPATH": REPO}
  out = subprocess.run(
      [sys.executable, "-m", "acnn_jax.evaluate", f"--workdir={path}",
       "--phase=c", "--config=configs/tiny.py:c",
       f"--pred_mat={tmp_path / 'pred.mat'}"],
      capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "Mean" in out.stdout and "Shoulder" in out.stdout
  assert (tmp_path / "pred.mat").exists()
