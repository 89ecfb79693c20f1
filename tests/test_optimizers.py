"""Tests of the phases' optimizers: the frozen task and the schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import phases
from conftest import tiny_config
from conftest import tiny_model

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


def torch7_rmsprop_updates(gradients, lr, alpha=0.99, eps=1e-8):
  """Torch7's `optim.rmsprop` as pose-hg-train calls it, written out from
  its source in float64 numpy: m = alpha m + (1 - alpha) g^2 with m from 0,
  then p -= lr g / (sqrt(m) + eps). Returns each step's change of p."""
  m = np.zeros_like(np.asarray(gradients[0], np.float64))
  updates = []
  for g in gradients:
    g = np.asarray(g, np.float64)
    m = alpha * m + (1 - alpha) * g * g
    updates.append(-lr * g / (np.sqrt(m) + eps))
  return updates


@pytest.mark.parametrize("phase", ["a", "c"])
def test_rmsprop_is_torch7_rmsprop_from_tiny_to_large_gradients(phase):
  """Six steps on gradients from 1e-8 to 1e-2 (a heatmap MSE's are mostly
  below 1e-4). optax's default form, eps inside the root, moves a parameter
  whose gradient is 1e-7 4000 times less in these steps (this test
  fails on it); ours must be Torch7's to float32 rounding, on every trained
  task."""
  magnitudes = 10.0 ** np.arange(-8.0, -1.0)  # 1e-8 ... 1e-2
  rng = np.random.default_rng(0)
  # Signs and sizes change from step to step, as real gradients do.
  gradients = [magnitudes * rng.uniform(0.5, 2.0, magnitudes.size) *
               rng.choice([-1.0, 1.0], magnitudes.size) for _ in range(6)]
  lr = 5e-4
  params = {"stem": {"w": jnp.zeros(magnitudes.size)},
            "attention_0": {"w": jnp.zeros(magnitudes.size)}}
  config = tiny_config(phase, optimizer="rmsprop", learning_rate=lr,
                       rmsprop_decay=0.99, rmsprop_eps=1e-8)
  tx = optimizers.create_optimizer(config, params, lambda step: lr,
                                   phases.PHASES[phase])
  state = tx.init(params)
  expected = torch7_rmsprop_updates(gradients, lr)
  for step, g in enumerate(gradients):
    grads = {name: {"w": jnp.asarray(g, jnp.float32)} for name in params}
    updates, state = tx.update(grads, state, params)
    for name in phases.PHASES[phase].trained:
      top = "stem" if name == models.HEATMAP_TASK else "attention_0"
      np.testing.assert_allclose(np.asarray(updates[top]["w"]),
                                 expected[step], rtol=1e-5,
                                 err_msg=f"step {step + 1}, {top}")


def test_checkpoints_of_the_old_rmsprop_form_fit_the_new_optimizer():
  """The optimizer state before eps moved out of the root (optax's default
  rmsprop in the same multi_transform) has the same tree, shapes and dtypes,
  so a checkpoint written then restores into today's state and resumes."""
  _, variables = tiny_model()
  params = variables["params"]
  config = tiny_config("a", optimizer="rmsprop")
  phase = phases.PHASES["a"]
  schedule = optimizers.create_learning_rate_fn(config, steps_per_epoch=2)
  new = optimizers.create_optimizer(config, params, schedule, phase)
  old = optax.multi_transform(
      {task: optax.rmsprop(schedule, decay=0.99, eps=1e-8)
       if task in phase.trained else optax.set_to_zero()
       for task in models.TASKS}, models.task_labels(params))
  shapes = lambda tree: jax.tree_util.tree_map(  # noqa: E731
      lambda x: (x.shape, x.dtype), tree)
  assert (jax.tree_util.tree_structure(old.init(params)) ==
          jax.tree_util.tree_structure(new.init(params)))
  assert shapes(old.init(params)) == shapes(new.init(params))
