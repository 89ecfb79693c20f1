"""Tests of the phases' optimizers: the frozen task, Torch7's RMSProp and
the schedule, across a boundary and a resume from a checkpoint."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from acnn_jax import checkpoints
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import phases
from acnn_jax import train_step
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


@pytest.mark.parametrize("optimizer", optimizers.OPTIMIZERS)
def test_the_real_optimizer_drops_the_rate_at_the_boundary_across_a_resume(
    optimizer, tmp_path):
  """The phase's optimizer (`create_optimizer` with `create_learning_rate_fn`)
  with lr 0.01, x0.1 after epoch 2 of 3 steps: updates 0 to 5 use 0.01,
  update 6 on 0.001. The state is saved after 5 updates with the
  checkpoint code of a training run (`save_state`, `restore_latest` onto a
  fresh optimizer's state, as `train.py` resumes) and the run goes on from
  it: update 5 still uses 0.01 and update 6 on 0.001, with RMSProp's mean
  square carried over.

  With a constant gradient g the updates are known in closed form:
    RMSProp (alpha 0.99, m from 0): m_t = (1 - 0.99^t) g^2, so update t is
      -lr g / (|g| sqrt(1 - 0.99^t) + 1e-8) ~ -lr sign(g) / sqrt(1 - 0.99^t)
    Adam (bias-corrected): -lr g / (|g| + 1e-8) ~ -lr sign(g).
  A schedule restarted by the resume would use 0.01 again at update 6, a
  lost mean square would give 1 / sqrt(0.01) instead of 1 / sqrt(1 - 0.99^7).
  """
  lr, steps_per_epoch = 0.01, 3
  config = tiny_config("a", optimizer=optimizer, learning_rate=lr,
                       lr_boundaries=(2,), lr_decay=0.1,
                       rmsprop_decay=0.99, rmsprop_eps=1e-8)
  params = {"stem": {"w": jnp.zeros(2)}, "attention_0": {"w": jnp.zeros(2)}}
  grads = {"stem": {"w": jnp.array([1.0, -2.0])},
           "attention_0": {"w": jnp.ones(2)}}

  def fresh_state():
    tx = optimizers.create_optimizer(
        config, params,
        optimizers.create_learning_rate_fn(config, steps_per_epoch),
        phases.PHASES["a"])
    return tx, train_step.TrainState(
        step=jnp.asarray(0, jnp.int32), params=params,
        batch_stats={"stem": {"mean": jnp.zeros(2)}},
        opt_state=tx.init(params))

  def expected(index):  # Update `index` (0-based), by hand.
    rate = lr if index < 2 * steps_per_epoch else lr * 0.1
    if optimizer == "rmsprop":
      rate /= np.sqrt(1 - 0.99 ** (index + 1))
    return -rate * np.array([1.0, -1.0])

  def run(tx, state, count):
    for _ in range(count):
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      np.testing.assert_allclose(updates["stem"]["w"],
                                 expected(int(state.step)), rtol=1e-4,
                                 err_msg=f"update {int(state.step)}")
      assert not np.any(updates["attention_0"]["w"])  # Frozen in phase A.
      state = state.replace(step=state.step + 1,
                            params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state)
    return state

  tx, state = fresh_state()
  state = run(tx, state, 5)
  manager, best = checkpoints.make_managers(str(tmp_path), keep=2)
  checkpoints.save_state(manager, 5, state.as_dict())
  manager.wait_until_finished()
  manager.close()
  best.close()

  tx, template = fresh_state()
  manager, best = checkpoints.make_managers(str(tmp_path), keep=2)
  resumed = train_step.TrainState(**checkpoints.restore_latest(
      manager, template.as_dict()))
  manager.close()
  best.close()
  assert int(resumed.step) == 5
  run(tx, resumed, 4)  # Updates 5 (the last at lr), 6, 7 and 8.
