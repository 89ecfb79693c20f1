"""The mapped train step: one compile per run, one device equals several."""

import contextlib

import jax
import numpy as np
import optax

from acnn_jax import parallel
from acnn_jax import phases
from acnn_jax import train_step
from conftest import TINY_INPUT
from conftest import tiny_model


@contextlib.contextmanager
def counting_compiles():
  """Counts XLA compilations (cache loads included) inside the block."""
  count = [0]

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      count[0] += 1
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield count
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def _problem(phase_name, num_devices=None):
  model, variables = tiny_model(num_stacks=2)
  tx = optax.rmsprop(1e-3)
  state = train_step.create_state(variables, tx)
  step = train_step.make(model, tx, phases.PHASES[phase_name],
                         lambda s: 1e-3, num_devices=num_devices)
  rng = np.random.default_rng(0)
  size = TINY_INPUT // 4
  batch = {"image": rng.uniform(0, 1, (4, TINY_INPUT, TINY_INPUT, 3)
                                ).astype(np.float32),
           "heatmaps": rng.uniform(0, 0.1, (4, size, size, 16)
                                   ).astype(np.float32),
           "target_weight": np.ones((4, 16), np.float32)}
  return state, step, batch


def test_the_step_compiles_once_over_steps():
  """A state placed by `put_state` and batches from `prefetch` have the
  placement the step returns, so the second step reuses the first's
  program (before, it compiled again: 30 s for the paper's network)."""
  state, step, batch = _problem("c")
  state = parallel.put_state(state)
  batches = parallel.prefetch([batch] * 3)
  state, metrics = step(state, next(batches))
  jax.block_until_ready(metrics)
  with counting_compiles() as count:
    for device_batch in batches:
      state, metrics = step(state, device_batch)
      jax.block_until_ready(metrics)
  assert count[0] == 0


def test_one_device_equals_two():
  """Plain jit on one device (no collectives) and pmap over two (gradient
  and BatchNorm statistics averaged) give the same step; phase C, where
  both tasks and every BatchNorm layer learn."""
  state, one, batch = _problem("c", num_devices=1)
  _, two, _ = _problem("c")
  assert jax.local_device_count() == 2
  new_one, metrics_one = one(state, parallel.shard(batch, 1))
  new_two, metrics_two = two(state, parallel.shard(batch, 2))
  np.testing.assert_allclose(metrics_one["loss"], metrics_two["loss"],
                             rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(new_one),
                  jax.tree_util.tree_leaves(new_two)):
    # RMSProp's first update is about lr * sign(g) = 1e-3 per parameter.
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)
