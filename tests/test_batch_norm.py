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
