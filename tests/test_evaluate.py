"""Tests of evaluation: its output files and its command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from acnn_jax import checkpoints
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


def test_history_keeps_one_record_per_phase_and_step(tmp_path):
  workdir = tmp_path / "run"
  for phase, steps in (("a", (4, 8)), ("c", (4,))):
    directory = checkpoints.phase_dir(str(workdir), phase)
    os.makedirs(directory)
    path = os.path.join(directory, "eval_history.json")
    for step in reversed(steps):
      evaluate.append_history(path, {"phase": phase, "step": step,
                                     "Mean": float(step)})
  path = os.path.join(checkpoints.phase_dir(str(workdir), "a"),
                      "eval_history.json")
  # A resumed run evaluating step 8 again replaces that record.
  evaluate.append_history(path, {"phase": "a", "step": 8, "Mean": 80.0})
  assert [(r["step"], r["Mean"]) for r in evaluate.read_history(path)] == [
      (4, 4.0), (8, 80.0)]
  # Phase B did not run; A's records come before C's.
  history = evaluate.history_across_phases(str(workdir), "c")
  assert [(r["phase"], r["step"]) for r in history] == [
      ("a", 4), ("a", 8), ("c", 4)]
  assert len(evaluate.history_across_phases(str(workdir), "a")) == 2
  assert evaluate.read_history(str(tmp_path / "none.json")) == []


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
