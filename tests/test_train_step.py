"""The mapped train step: one compile per run, one device equals several,
the update is the global batch's gradient; the heatmap loss's normalisation.
"""

import contextlib
import functools

import jax
import jax.numpy as jnp
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


# Plain SGD: the step changes each parameter by exactly -LR * its gradient,
# so a gradient summed over the devices instead of averaged (twice too large
# on two devices) shows. RMSProp's first update, about lr * sign(g), hides it.
LR = 1.0


def _problem(phase_name, num_devices=None, dtype=jnp.float32,
             cross_device_batch_norm=True):
  """The tiny network's state, its SGD step and a batch of 4, in `dtype`
  (float64: call it, and the step, under `jax.enable_x64`)."""
  model, variables = tiny_model(num_stacks=2)
  model = model.clone(dtype=dtype)
  variables = jax.tree_util.tree_map(lambda x: x.astype(dtype), variables)
  tx = optax.sgd(LR)
  state = train_step.create_state(variables, tx)
  step = train_step.make(model, tx, phases.PHASES[phase_name],
                         lambda s: LR, num_devices=num_devices,
                         cross_device_batch_norm=cross_device_batch_norm)
  rng = np.random.default_rng(0)
  size = TINY_INPUT // 4
  batch = {"image": rng.uniform(0, 1, (4, TINY_INPUT, TINY_INPUT, 3)),
           "heatmaps": rng.uniform(0, 0.1, (4, size, size, 16)),
           "target_weight": np.ones((4, 16))}
  batch = {key: value.astype(dtype) for key, value in batch.items()}
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


# The step-against-step checks run in float64 (JAX's x64 mode): in float32,
# rounding moves single gradient leaves of this network by up to 2% between
# two devices and one (0.3% between one device and a whole-batch jax.grad),
# a noise that tolerances wide enough for it would have to share with the
# errors sought. In float64 the worst leaf agrees to 6e-10.
RTOL = 1e-7


def _assert_close_changes(got, expected, rtol=RTOL):
  """Each leaf's |got - expected| <= rtol |expected| (Euclidean norms), plus
  rtol times the whole tree's |expected| for the leaves whose gradient is
  zero but for rounding (biases that a BatchNorm follows). A factor 2 (or
  0.5) is 100% (50%) off."""
  leaves = jax.tree_util.tree_leaves_with_path(expected)
  floor = rtol * np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64)))
                             for _, x in leaves))
  for (path, want), have in zip(leaves, jax.tree_util.tree_leaves(got)):
    want = np.asarray(want, np.float64)
    error = np.linalg.norm(np.asarray(have, np.float64) - want)
    assert error <= rtol * np.linalg.norm(want) + floor, (
        jax.tree_util.keystr(path), error, np.linalg.norm(want))


def _changes(new_state, state):
  """new - old parameters, in numpy (float64 stays float64 outside x64)."""
  return jax.tree_util.tree_map(lambda a, b: np.asarray(a) - np.asarray(b),
                                new_state.params, state.params)


def test_one_device_equals_two():
  """Plain jit on one device (no collectives) and pmap over two (gradient
  and BatchNorm statistics averaged) give the same SGD step; phase C, where
  both tasks and every BatchNorm layer learn."""
  assert jax.local_device_count() == 2
  with jax.enable_x64(True):
    state, one, batch = _problem("c", num_devices=1, dtype=jnp.float64)
    _, two, _ = _problem("c", dtype=jnp.float64)
    new_one, metrics_one = one(state, parallel.shard(batch, 1))
    new_two, metrics_two = two(state, parallel.shard(batch, 2))
  np.testing.assert_allclose(metrics_one["loss"], metrics_two["loss"],
                             rtol=RTOL)
  _assert_close_changes(_changes(new_two, state), _changes(new_one, state))
  for a, b in zip(jax.tree_util.tree_leaves(new_one.batch_stats),
                  jax.tree_util.tree_leaves(new_two.batch_stats)):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12)


def test_two_devices_apply_sgd_with_the_global_batch_gradient():
  """The pmapped step on 2 devices of 2 images each against jax.grad of the
  loss of docs/design.md section 2 (each stage's weighted squared error
  averaged over B x h x w x K, summed over stages), written here, on the
  whole batch of 4 in one apply: the parameters become p - LR * g, the
  BatchNorm statistics and the loss are the whole batch's. Fails if the
  gradients are summed over the devices (psum) instead of averaged, or left
  per device."""
  assert jax.local_device_count() == 2
  with jax.enable_x64(True):
    state, step, batch = _problem("c", dtype=jnp.float64)
    model = tiny_model(num_stacks=2)[0].clone(dtype=jnp.float64)
    # Different weights per image, so each device's half of the batch has
    # its own gradient and one left unaveraged is off.
    batch["target_weight"][1, :5] = 0.0
    batch["target_weight"][3, 8:] = 0.0

    def global_loss(params):
      out, new_vars = model.apply(
          {"params": params, "batch_stats": state.batch_stats},
          batch["image"], train=True, mutable=["batch_stats"])
      squared = (out.predictions - batch["heatmaps"][None]) ** 2
      weighted = squared * batch["target_weight"][None, :, None, None, :]
      return jnp.sum(jnp.mean(weighted, axis=(1, 2, 3, 4))), new_vars

    (loss, new_vars), grads = jax.jit(jax.value_and_grad(
        global_loss, has_aux=True))(state.params)
    new_state, metrics = step(state, parallel.shard(batch, 2))
  np.testing.assert_allclose(metrics["loss"], loss, rtol=RTOL)
  assert int(new_state.step) == 1
  _assert_close_changes(_changes(new_state, state),
                        jax.tree_util.tree_map(lambda g: -LR * np.asarray(g),
                                               grads))
  for (path, expected), got in zip(
      jax.tree_util.tree_leaves_with_path(new_vars["batch_stats"]),
      jax.tree_util.tree_leaves(new_state.batch_stats)):
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-12,
                               err_msg=jax.tree_util.keystr(path))


def all_reduces(step, state, batch) -> int:
  """The all-reduces of the step's lowered (not compiled) program."""
  return step.lower(state, batch).as_text().count("all_reduce")


def test_per_device_batch_norm_drops_the_statistics_all_reduces():
  """Across devices, every BatchNorm layer all-reduces its batch statistics
  in the forward pass (and most again in the backward pass); per device,
  the step all-reduces only the gradients, the metrics and, once, the
  running statistics."""
  assert jax.local_device_count() == 2
  state, cross, batch = _problem("c")
  per_device = _problem("c", cross_device_batch_norm=False)[1]
  batch = parallel.shard(batch)
  counts = all_reduces(cross, state, batch), all_reduces(per_device, state,
                                                         batch)
  # Lowered, one all-reduce per leaf: gradients, metrics.
  gradients = len(jax.tree_util.tree_leaves(state.params))
  metrics = len(jax.eval_shape(cross, state, batch)[1])
  layers = len(jax.tree_util.tree_leaves(state.batch_stats)) // 2
  assert counts[1] <= gradients + metrics + 1, counts
  assert counts[0] >= counts[1] - 1 + 2 * layers, (counts, layers)


def test_per_device_batch_norm_normalises_each_share_alone():
  """Per device, the 2-device step's loss is the mean of the losses of
  each device's 2 images on their own (their own BatchNorm statistics), and
  the returned running statistics are the mean of what each share's
  forward pass makes of them; both differ from the whole batch's."""
  assert jax.local_device_count() == 2
  state, step, batch = _problem("c", cross_device_batch_norm=False)
  # The loss then measures the predictions alone, and the second share is
  # brighter, so its own statistics differ from the whole batch's.
  batch["heatmaps"] = np.zeros_like(batch["heatmaps"])
  batch["image"][2:] = 0.5 + batch["image"][2:]
  model = tiny_model(num_stacks=2)[0]
  variables = {"params": state.params, "batch_stats": state.batch_stats}

  def forward(rows):
    out, new_vars = model.apply(variables, batch["image"][rows], train=True,
                                mutable=["batch_stats"])
    loss, _ = train_step.heatmap_loss(out.predictions,
                                      batch["heatmaps"][rows],
                                      batch["target_weight"][rows])
    return float(loss), new_vars["batch_stats"]

  (loss_0, stats_0), (loss_1, stats_1) = forward(slice(0, 2)), forward(
      slice(2, 4))
  whole_loss, whole_stats = forward(slice(0, 4))
  new_state, metrics = step(state, parallel.shard(batch))
  np.testing.assert_allclose(metrics["loss"], (loss_0 + loss_1) / 2,
                             rtol=1e-5)
  assert abs(whole_loss - (loss_0 + loss_1) / 2) > 1e-3 * whole_loss
  expected = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, stats_0,
                                    stats_1)
  jax.tree_util.tree_map(
      functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6),
      new_state.batch_stats, expected)
  gaps = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(
      jax.tree_util.tree_leaves(whole_stats),
      jax.tree_util.tree_leaves(expected))]
  assert max(gaps) > 1e-3, gaps


def test_heatmap_loss_averages_over_every_value_and_sums_the_stages():
  """Worked by hand: 2 stages, 2 images of 2 x 2 pixels, 2 joints, so each
  stage's mean runs over 16 values, unannotated ones included (docs/design.md
  section 2: a mean squared error with weight 0 for unannotated joints,
  summed over the stages). One target pixel is 1 (image 0, pixel (0, 0),
  joint 0); image 0's joint 1 is unannotated.

  Stage 0 predicts 0 everywhere: one squared error of 1 -> 1 / 16.
  Stage 1 predicts 0.5 everywhere: 0.25 at each of the 12 annotated values
  (the target's 1 included: (0.5 - 1)^2 = 0.25) -> 3 / 16.
  Total 4 / 16. Dividing by the 12 annotated values instead gives 1 / 3,
  by the batch 2, by the pixels 1, and averaging the stages 1 / 8.
  """
  targets = np.zeros((2, 2, 2, 2), np.float32)  # (B, h, w, K)
  targets[0, 0, 0, 0] = 1.0
  weights = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
  predictions = np.stack([np.zeros_like(targets),
                          np.full_like(targets, 0.5)])
  total, per_stage = train_step.heatmap_loss(predictions, targets, weights)
  np.testing.assert_allclose(per_stage, [1 / 16, 3 / 16], rtol=1e-6)
  np.testing.assert_allclose(total, 4 / 16, rtol=1e-6)
