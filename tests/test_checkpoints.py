"""Tests of the workdir layout, saving, restoring and phase chaining."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import checkpoints
from acnn_jax import errors
from acnn_jax import phases
from acnn_jax import saved_config
from conftest import tiny_config


def _state(value, width=3):
  return {"step": jnp.asarray(value, jnp.int32),
          "params": {"stem": {"w": jnp.full((width,), value, jnp.float32)}},
          "batch_stats": {"stem": {"mean": jnp.zeros((width,))}},
          "opt_state": {}}


def _save(directory, steps, keep=3, width=3, config=None):
  """Saves states for `steps` into a phase directory's last-checkpoints."""
  last, best = checkpoints.make_managers(str(directory), keep)
  for step in steps:
    checkpoints.save_state(last, step, _state(step, width))
  checkpoints.save_state(best, steps[0], _state(steps[0], width),
                         metrics={"Mean": 1.0})
  last.wait_until_finished()
  best.wait_until_finished()
  saved_config.save_config(config or tiny_config("a"), str(directory))
  return last


def test_resolve_finds_the_latest_phase_and_step(tmp_path):
  _save(checkpoints.phase_dir(str(tmp_path), "a"), [1, 2])
  _save(checkpoints.phase_dir(str(tmp_path), "b"), [3, 4],
        config=tiny_config("b"))
  b = checkpoints.phase_dir(str(tmp_path), "b")
  assert checkpoints.resolve(str(tmp_path)) == (
      os.path.join(b, "checkpoints"), 4)
  assert checkpoints.resolve(str(tmp_path), prefer_best=True) == (
      os.path.join(b, "best"), 3)
  a_step = os.path.join(checkpoints.phase_dir(str(tmp_path), "a"),
                        "checkpoints", "1")
  assert checkpoints.resolve(a_step) == (os.path.dirname(a_step), 1)
  assert checkpoints.root_workdir(b) == str(tmp_path)
  assert checkpoints.root_workdir(str(tmp_path)) == str(tmp_path)


def test_resolve_says_how_to_train_when_nothing_is_there(tmp_path):
  with pytest.raises(errors.MissingError, match="Train first"):
    checkpoints.resolve(str(tmp_path))


def test_saved_state_restores_exactly(tmp_path):
  last = _save(tmp_path, [5, 6])
  restored = checkpoints.restore_latest(last, _state(0))
  assert int(restored["step"]) == 6
  np.testing.assert_array_equal(restored["params"]["stem"]["w"], 6.0)
  raw = checkpoints.restore_raw(str(tmp_path / "checkpoints"), 5)
  np.testing.assert_array_equal(raw["params"]["stem"]["w"], 5.0)
  assert set(raw) == {"step", "params", "batch_stats", "opt_state"}
  # Inference reads only what it needs (of what the state has).
  part = checkpoints.restore_raw(str(tmp_path / "checkpoints"), 5,
                                 keys=("params", "batch_stats", "absent"))
  assert set(part) == {"params", "batch_stats"}
  np.testing.assert_array_equal(part["params"]["stem"]["w"], 5.0)
  np.testing.assert_array_equal(part["batch_stats"]["stem"]["mean"], 0.0)
  variables, step, _ = checkpoints.restore_variables(str(tmp_path))
  assert step == 6 and set(variables) == {"params", "batch_stats"}


def test_phase_chaining(tmp_path):
  workdir = str(tmp_path)
  template = {k: v for k, v in _state(0).items()
              if k in ("params", "batch_stats")}
  a, b = phases.PHASES["a"], phases.PHASES["b"]
  assert checkpoints.start_variables(tiny_config("a"), workdir, a,
                                     template) is None
  with pytest.raises(errors.MissingError, match="configs/phase_a.py"):
    checkpoints.start_variables(tiny_config("b"), workdir, b, template)
  _save(checkpoints.phase_dir(workdir, "a"), [2])
  start = checkpoints.start_variables(tiny_config("b"), workdir, b, template)
  np.testing.assert_array_equal(start["params"]["stem"]["w"], 2.0)
  # Another model's checkpoint (here: other widths) is refused by name.
  other = str(tmp_path / "other")
  _save(checkpoints.phase_dir(other, "a"), [1], width=5)
  with pytest.raises(errors.ConfigError, match="do not match"):
    checkpoints.start_variables(
        tiny_config("b", init_from=checkpoints.phase_dir(other, "a")),
        workdir, b, template)



def _damage(step_dir):
  """Truncates the array files of a saved step (a copy cut short)."""
  for root, _, files in os.walk(step_dir):
    for name in files:
      if "ocdbt" in root or name.endswith(".ocdbt"):
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(8)


def test_resuming_sets_a_damaged_or_diverged_newest_step_aside(tmp_path,
                                                               caplog):
  last = _save(tmp_path, [5, 6])
  checkpoints.save_state(last, 7, {**_state(7), "params": {
      "stem": {"w": jnp.full((3,), jnp.nan)}}})
  last.wait_until_finished()
  _damage(tmp_path / "checkpoints" / "6")
  restored = checkpoints.restore_latest(last, _state(0))
  assert int(restored["step"]) == 5
  assert last.all_steps() == [5]
  assert sorted(os.listdir(tmp_path / "damaged")) == ["checkpoints_6",
                                                      "checkpoints_7"]
  assert "checkpoints/7 cannot be used (it holds NaN" in caplog.text
  checkpoints.save_state(last, 6, _state(6))  # Saving goes on from there.
  last.wait_until_finished()
  assert last.all_steps() == [5, 6]


def test_a_damaged_checkpoint_is_skipped_and_left_in_place(tmp_path, caplog):
  _save(tmp_path, [5, 6])
  _damage(tmp_path / "checkpoints" / "6")
  variables, step, _ = checkpoints.restore_variables(str(tmp_path))
  assert step == 5 and "checkpoints/6 cannot be used" in caplog.text
  np.testing.assert_array_equal(variables["params"]["stem"]["w"], 5.0)
  assert (tmp_path / "checkpoints" / "6").is_dir()
  # Named by its step, it is not swapped for another.
  with pytest.raises(errors.InputError, match=r"step 6: "):
    checkpoints.restore_variables(str(tmp_path / "checkpoints" / "6"))
  _damage(tmp_path / "checkpoints" / "5")
  # best/5 holds the same state (`_save`): it is read instead.
  variables, step, manager_dir = checkpoints.restore_variables(str(tmp_path))
  assert step == 5 and manager_dir == str(tmp_path / "best")
  assert "using its copy" in caplog.text
  _damage(tmp_path / "best" / "5")
  with pytest.raises(errors.InputError,
                     match=r"No checkpoint in .* can be used \(step 6: .*; "
                     r"step 5: .*; its copy .*best/5 cannot be used either"):
    checkpoints.restore_variables(str(tmp_path))
