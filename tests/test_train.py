"""End-to-end tests of three-phase training on 2 fake CPU devices (tiny config)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import checkpoints
from acnn_jax import errors
from acnn_jax import models
from acnn_jax import parallel
from acnn_jax import train
from conftest import TRAINED
from conftest import tiny_config


def _raw(workdir, phase, best=False):
  sub = "best" if best else "checkpoints"
  manager_dir, step = checkpoints.resolve(
      os.path.join(checkpoints.phase_dir(workdir, phase), sub))
  return checkpoints.restore_raw(manager_dir, step), step


def _leaves_by_task(tree):
  labels = models.task_labels(tree)
  out = {task: [] for task in models.TASKS}
  for (path, leaf), label in zip(jax.tree_util.tree_leaves_with_path(tree),
                                 jax.tree_util.tree_leaves(labels)):
    out[label].append((jax.tree_util.keystr(path), np.asarray(leaf)))
  return out


@TRAINED
@pytest.mark.slow
def test_each_phase_trains_two_steps_and_writes_its_results(trained_workdir):
  path, tables = trained_workdir
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


@TRAINED
@pytest.mark.slow
def test_phase_a_leaves_attention_at_its_initialisation(trained_workdir):
  path, _ = trained_workdir
  state, _ = _raw(path, "a")
  config = tiny_config("a")
  init = models.init_variables(models.create_model(config),
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


@TRAINED
@pytest.mark.slow
def test_phase_b_leaves_the_heatmap_network_bit_for_bit(trained_workdir):
  path, _ = trained_workdir
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


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path,
                                                           monkeypatch):
  workdir = str(tmp_path)
  prefetch = parallel.prefetch

  def interrupted(batches, size=2):
    for i, batch in enumerate(prefetch(batches, size)):
      if i == 3:
        raise KeyboardInterrupt("simulated kill")
      yield batch

  config = tiny_config("a", num_epochs=2)  # 4 steps, a checkpoint each step.
  monkeypatch.setattr(parallel, "prefetch", interrupted)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, workdir)
  state, interrupted_at = _raw(workdir, "a")
  assert 1 <= interrupted_at <= 3
  saved = state["params"]
  monkeypatch.setattr(parallel, "prefetch", prefetch)

  seen = []
  original_restore = checkpoints.restore_latest

  def spy(manager, template):
    restored = original_restore(manager, template)
    seen.append(restored)
    return restored

  monkeypatch.setattr(checkpoints, "restore_latest", spy)
  train.train_and_evaluate(config, workdir)
  assert len(seen) == 1 and int(seen[0]["step"]) == interrupted_at
  for a, b in zip(jax.tree_util.tree_leaves(seen[0]["params"]),
                  jax.tree_util.tree_leaves(saved)):
    np.testing.assert_array_equal(a, b)
  _, step = _raw(workdir, "a")
  assert step == 4


def test_phase_b_without_phase_a_says_what_to_run(tmp_path):
  with pytest.raises(errors.MissingError, match="configs/phase_a.py"):
    train.train_and_evaluate(tiny_config("b"), str(tmp_path))


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path,
                                                           monkeypatch):
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config("a"), workdir)
  before, step = _raw(workdir, "a")
  assert step == 2

  def nan_loss(predictions, targets, weights):
    loss, per_stage = original(predictions, targets, weights)
    return loss * jnp.nan, per_stage * jnp.nan

  original = train.heatmap_loss
  monkeypatch.setattr(train, "heatmap_loss", nan_loss)
  with pytest.raises(train.NonFiniteLossError, match="step 2"):
    train.train_and_evaluate(tiny_config("a", num_epochs=3), workdir)
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
  with pytest.raises(errors.ConfigError, match=match):
    train.train_and_evaluate(tiny_config("a", **overrides), str(tmp_path))
  assert not os.path.exists(os.path.join(str(tmp_path), "phase_a"))
