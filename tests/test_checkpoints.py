"""Tests of the workdir layout, saving, restoring and phase chaining."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import checkpoints
from acnn_jax import errors
from acnn_jax import phases
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
  checkpoints.save_config(config or tiny_config("a"), str(directory))
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


def test_configs_of_earlier_versions_still_load(tmp_path):
  with pytest.raises(errors.MissingError, match="config.json is missing"):
    checkpoints.load_config(str(tmp_path))
  saved = tiny_config("c").to_dict()
  del saved["attention"]
  saved["dataset"] = "mpii"
  (tmp_path / checkpoints.CONFIG_FILE).write_text(json.dumps(saved))
  config = checkpoints.load_config(str(tmp_path))
  assert config.attention is True and "dataset" not in config
  assert config.phase == "c" and config.num_stacks == 2
