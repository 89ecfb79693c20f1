"""End-to-end tests of three-phase training on 2 fake CPU devices (tiny config)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import checkpoints
from acnn_jax import models
from acnn_jax import predict
from acnn_jax import train
from configs import tiny
import input_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(phase_name, **overrides):
  config = tiny.get_config(phase_name)
  config.update(overrides)
  return config


def _raw(workdir, phase, best=False):
  sub = "best" if best else "checkpoints"
  manager_dir, step = checkpoints.resolve(
      os.path.join(checkpoints.phase_dir(workdir, phase), sub))
  return checkpoints.restore_raw(manager_dir, step), step


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """One workdir trained through phases A, B and C (2 steps each)."""
  assert jax.local_device_count() == 2, "conftest sets 2 fake CPU devices"
  path = str(tmp_path_factory.mktemp("acnn"))
  tables = {p: train.train_and_evaluate(_config(p), path) for p in "abc"}
  return path, tables


def _leaves_by_task(tree):
  labels = models.task_labels(tree)
  out = {task: [] for task in models.TASKS}
  for (path, leaf), label in zip(jax.tree_util.tree_leaves_with_path(tree),
                                 jax.tree_util.tree_leaves(labels)):
    out[label].append((jax.tree_util.keystr(path), np.asarray(leaf)))
  return out


def test_each_phase_trains_two_steps_and_writes_its_results(workdir):
  path, tables = workdir
  for phase in "abc":
    out = checkpoints.phase_dir(path, phase)
    results = json.load(open(os.path.join(out, "eval_results.json")))
    assert results["step"] == 2 and results["phase"] == phase
    for key in ("Head", "Mean", "Mean@0.1", "OfficialHead"):
      assert 0.0 <= results[key] <= 100.0
    assert tables[phase]["Mean"] == results["Mean"]
    assert os.path.exists(os.path.join(out, "config.json"))
    assert os.listdir(os.path.join(out, "pictures"))
    assert any(f.startswith("events.out") for f in os.listdir(out))
    state, step = _raw(path, phase)
    assert step == 2 and int(state["step"]) == 2


def test_phase_a_leaves_attention_at_its_initialisation(workdir):
  path, _ = workdir
  state, _ = _raw(path, "a")
  config = _config("a")
  init = models.init_variables(train.create_model(config),
                               jax.random.PRNGKey(config.seed),
                               config.input_size)
  for collection in ("params", "batch_stats"):
    got = _leaves_by_task(state[collection])
    want = _leaves_by_task(init[collection])
    for (name, a), (_, b) in zip(got[models.ATTENTION_TASK],
                                 want[models.ATTENTION_TASK]):
      np.testing.assert_array_equal(a, b, err_msg=name)
    # And the heatmap network did learn.
    changed = [not np.array_equal(a, b) for (_, a), (_, b) in
               zip(got[models.HEATMAP_TASK], want[models.HEATMAP_TASK])]
    assert any(changed)


def test_phase_b_leaves_the_heatmap_network_bit_for_bit(workdir):
  path, _ = workdir
  a, _ = _raw(path, "a")
  b, _ = _raw(path, "b")
  for collection in ("params", "batch_stats"):
    got = _leaves_by_task(b[collection])
    want = _leaves_by_task(a[collection])
    for (name, x), (_, y) in zip(got[models.HEATMAP_TASK],
                                 want[models.HEATMAP_TASK]):
      assert x.tobytes() == y.tobytes(), f"{collection}{name} moved"
  moved = [not np.array_equal(x, y) for (_, x), (_, y) in
           zip(_leaves_by_task(b["params"])[models.ATTENTION_TASK],
               _leaves_by_task(a["params"])[models.ATTENTION_TASK])]
  assert any(moved)
  # Phase C trains both.
  c, _ = _raw(path, "c")
  for task in models.TASKS:
    assert any(not np.array_equal(x, y) for (_, x), (_, y) in
               zip(_leaves_by_task(c["params"])[task],
                   _leaves_by_task(b["params"])[task]))


def test_predictor_and_evaluate_cli_load_the_checkpoints(workdir, tmp_path):
  path, tables = workdir
  predictor = predict.Predictor.from_checkpoint(path)
  image = (np.random.default_rng(0).random((90, 70, 3)) * 255).astype(
      np.uint8)
  result = predictor(image)
  assert result.keypoints.shape == (16, 2)
  assert np.all(np.isfinite(result.keypoints))
  assert result.masks.shape[0] == 2
  env = {**os.environ, "XLA_FLAGS": "", "PYTHONPATH": REPO}
  out = subprocess.run(
      [sys.executable, "-m", "acnn_jax.evaluate", f"--workdir={path}",
       "--phase=c", "--config=configs/tiny.py:c",
       f"--pred_mat={tmp_path / 'pred.mat'}"],
      capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "Mean" in out.stdout and "Shoulder" in out.stdout
  assert (tmp_path / "pred.mat").exists()


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path,
                                                           monkeypatch):
  workdir = str(tmp_path)
  batches = input_pipeline.sharded_batches

  def interrupted(ds, num_devices=None):
    for i, batch in enumerate(batches(ds, num_devices)):
      if i == 3:
        raise KeyboardInterrupt("simulated kill")
      yield batch

  config = _config("a", num_epochs=2)  # 4 steps, a checkpoint each step.
  monkeypatch.setattr(input_pipeline, "sharded_batches", interrupted)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, workdir)
  state, interrupted_at = _raw(workdir, "a")
  # Batches are prefetched, so the run stops a step or two before batch 3.
  assert 1 <= interrupted_at <= 3
  saved = state["params"]
  monkeypatch.setattr(input_pipeline, "sharded_batches", batches)

  seen = []
  original_restore = train.restore_state

  def spy(manager, state):
    restored = original_restore(manager, state)
    seen.append(restored)
    return restored

  monkeypatch.setattr(train, "restore_state", spy)
  train.train_and_evaluate(config, workdir)
  assert len(seen) == 1 and int(seen[0].step) == interrupted_at
  for a, b in zip(jax.tree_util.tree_leaves(seen[0].params),
                  jax.tree_util.tree_leaves(saved)):
    np.testing.assert_array_equal(a, b)
  _, step = _raw(workdir, "a")
  assert step == 4


def test_phase_b_without_phase_a_says_what_to_run(tmp_path):
  with pytest.raises(FileNotFoundError, match="configs/phase_a.py"):
    train.train_and_evaluate(_config("b"), str(tmp_path))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path,
                                                           monkeypatch):
  workdir = str(tmp_path)
  train.train_and_evaluate(_config("a"), workdir)
  before, step = _raw(workdir, "a")
  assert step == 2

  def nan_loss(predictions, targets, weights):
    loss, per_stage = original(predictions, targets, weights)
    return loss * jnp.nan, per_stage * jnp.nan

  original = train.heatmap_loss
  monkeypatch.setattr(train, "heatmap_loss", nan_loss)
  with pytest.raises(train.NonFiniteLossError, match="step 2"):
    train.train_and_evaluate(_config("a", num_epochs=3), workdir)
  after, step = _raw(workdir, "a")
  assert step == 2
  for a, b in zip(jax.tree_util.tree_leaves(after),
                  jax.tree_util.tree_leaves(before)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("overrides,match", [
    (dict(batch_size=3), "batch_size=3 is not divisible"),
    (dict(phase="d"), "config.phase"),
    (dict(dtype="float16"), "config.dtype"),
    (dict(input_size=72), "input_size=72"),
    (dict(learning_rate=0.0), "config.learning_rate"),
    (dict(mask_mode="hard"), "mask_mode"),
    (dict(lr_boundaries=(3, 1)), "lr_boundaries"),
])
def test_bad_config_values_are_named(tmp_path, overrides, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(_config("a", **overrides), str(tmp_path))
  assert not os.path.exists(os.path.join(str(tmp_path), "phase_a"))
