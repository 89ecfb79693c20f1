"""Tests of `batch_norm.BatchNorm`: Torch7's running statistics, flax's output.

The expected running statistics are Torch7's/PyTorch's update written out
in numpy (running = 0.9 running + 0.1 batch, the variance unbiased), not
taken from the layer under test.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import batch_norm
from acnn_jax import hourglass


def _batch(shape, seed=0):
  rng = np.random.default_rng(seed)
  # Channels with their own offsets and scales, as features have.
  return (rng.normal(size=shape) * rng.uniform(0.5, 3.0, shape[-1]) +
          rng.normal(size=shape[-1])).astype(np.float32)


def _torch_running_stats(x, mean=0.0, var=1.0, momentum=0.1):
  """PyTorch's BatchNorm2d update in float64 over all but the last axis."""
  x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
  return ((1 - momentum) * mean + momentum * x.mean(0),
          (1 - momentum) * var + momentum * x.var(0, ddof=1))


def test_running_variance_is_unbiased_and_the_output_is_flax_batch_norm():
  x = _batch((2, 4, 4, 5))  # n = 32 values per channel: n / (n - 1) = 1.03.
  ours = batch_norm.BatchNorm(use_running_average=False)
  flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.9,
                         epsilon=1e-5)
  variables = ours.init(jax.random.PRNGKey(0), x)
  assert jax.tree_util.tree_structure(variables) == (
      jax.tree_util.tree_structure(flax_bn.init(jax.random.PRNGKey(0), x)))
  y, updated = ours.apply(variables, x, mutable=["batch_stats"])
  y_flax, _ = flax_bn.apply(variables, x, mutable=["batch_stats"])
  np.testing.assert_array_equal(np.asarray(y), np.asarray(y_flax))
  mean, var = _torch_running_stats(x)
  np.testing.assert_allclose(updated["batch_stats"]["mean"], mean,
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(updated["batch_stats"]["var"], var, rtol=1e-5)


def test_running_statistics_are_used_and_kept_in_inference():
  x = _batch((2, 4, 4, 3))
  layer = batch_norm.BatchNorm(use_running_average=True)
  variables = {"params": {"scale": jnp.array([1.0, 2.0, 0.5]),
                          "bias": jnp.array([0.0, 1.0, -1.0])},
               "batch_stats": {"mean": jnp.array([0.5, -1.0, 2.0]),
                               "var": jnp.array([4.0, 1.0, 0.25])}}
  y, updated = layer.apply(variables, x, mutable=["batch_stats"])
  stats = variables["batch_stats"]
  expected = ((x - np.asarray(stats["mean"])) /
              np.sqrt(np.asarray(stats["var"]) + 1e-5) *
              np.asarray(variables["params"]["scale"]) +
              np.asarray(variables["params"]["bias"]))
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
  for name in ("mean", "var"):
    np.testing.assert_array_equal(updated["batch_stats"][name], stats[name])


@pytest.mark.skipif(jax.device_count() < 2, reason="needs 2 devices")
def test_statistics_span_every_device_of_the_pmap_axis():
  """Two devices of 2 x 2 x 2 pixels each: the unbiased factor is the whole
  batch's 16 / 15, not one device's 8 / 7."""
  x = _batch((4, 2, 2, 3), seed=1)
  layer = batch_norm.BatchNorm(use_running_average=False, axis_name="d")
  variables = layer.init(jax.random.PRNGKey(0), x[:2])
  step = jax.pmap(lambda v, b: layer.apply(v, b, mutable=["batch_stats"]),
                  axis_name="d", in_axes=(None, 0))
  _, updated = step(variables, x.reshape(2, 2, 2, 2, 3))
  mean, var = _torch_running_stats(x)
  for device in range(2):
    np.testing.assert_allclose(updated["batch_stats"]["mean"][device], mean,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(updated["batch_stats"]["var"][device], var,
                               rtol=1e-5)


def test_the_network_s_batch_norm_has_torch7_momentum_and_eps():
  """The first BatchNorm of a `hourglass.Residual`, as every BatchNorm of
  the network is made (`Block.norm`), after one training-mode apply,
  worked by hand. Its input is mean_c + s_c * a per channel, where a is +1
  and -1 in equal numbers, so the batch mean is mean_c and the biased
  variance s_c^2 exactly, over n = 32 values.

  Torch7's SpatialBatchNormalization (pose-hg-train; docs/design.md section
  5), momentum 0.1 (flax's 0.9) and eps 1e-5:
    running mean = 0.9 * 0 + 0.1 * mean_c
    running var  = 0.9 * 1 + 0.1 * s_c^2 * 32 / 31
    output       = a * s_c / sqrt(s_c^2 + 1e-5)   (scale 1, bias 0)
  Channel 0 has s^2 = 1e-5 = eps, so its output is a / sqrt(2): eps 1e-3
  would give 0.1, eps 1e-6 0.95.
  """
  a = np.where(np.arange(32).reshape(2, 4, 4, 1) % 2 == 0, 1.0, -1.0)
  a = a * np.where(np.arange(32).reshape(2, 4, 4, 1) // 16 == 0, 1.0, -1.0)
  assert a.sum() == 0 and np.all(a ** 2 == 1)
  mean = np.array([0.0, -0.5, 3.0])
  s = np.array([np.sqrt(1e-5), 1.0, 2.0])
  x = jnp.asarray(mean + s * a, jnp.float32)
  block = hourglass.Residual(3)
  variables = block.init(jax.random.PRNGKey(0), x, True)
  _, updated = block.apply(variables, x, True, mutable=["batch_stats",
                                                        "intermediates"],
                           capture_intermediates=True)
  stats = updated["batch_stats"]["bn1"]
  np.testing.assert_allclose(stats["mean"], [0.0, -0.05, 0.3], atol=1e-7)
  np.testing.assert_allclose(
      stats["var"], [0.9 + 0.1 * 1e-5 * 32 / 31, 0.9 + 0.1 * 32 / 31,
                     0.9 + 0.1 * 4.0 * 32 / 31], rtol=1e-6)
  (y,) = updated["intermediates"]["bn1"]["__call__"]
  expected = a * np.array([1 / np.sqrt(2.0), 1 / np.sqrt(1.00001),
                           2 / np.sqrt(4.00001)])
  np.testing.assert_allclose(y, expected, rtol=1e-4)
