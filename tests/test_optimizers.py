"""Tests of the phases' optimizers: the frozen task and the schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import optimizers
from acnn_jax import phases
from conftest import tiny_config

# Top-level names decide the task: `attention_<i>` heads, the rest heatmaps.
PARAMS = {"stem": {"w": jnp.ones(3)}, "stage_0": {"w": jnp.ones(2)},
          "attention_0": {"w": jnp.ones(4)}}


@pytest.mark.parametrize("optimizer", optimizers.OPTIMIZERS)
@pytest.mark.parametrize("phase,moves", [
    ("a", {"stem", "stage_0"}), ("b", {"attention_0"}),
    ("c", {"stem", "stage_0", "attention_0"})])
def test_only_the_phase_tasks_move(optimizer, phase, moves):
  config = tiny_config(phase, optimizer=optimizer)
  tx = optimizers.create_optimizer(config, PARAMS, lambda step: 0.1,
                                   phases.PHASES[phase])
  grads = jax.tree_util.tree_map(jnp.ones_like, PARAMS)
  updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
  for name, update in updates.items():
    assert bool(jnp.any(update["w"] != 0)) == (name in moves), name


def test_learning_rate_drops_at_each_boundary_epoch():
  config = tiny_config("a", learning_rate=1.0, lr_boundaries=(2, 3),
                       lr_decay=0.1)
  schedule = optimizers.create_learning_rate_fn(config, steps_per_epoch=10)
  rates = [float(schedule(step)) for step in (0, 19, 20, 29, 30, 100)]
  np.testing.assert_allclose(rates, [1.0, 1.0, 0.1, 0.1, 0.01, 0.01],
                             rtol=1e-6)
