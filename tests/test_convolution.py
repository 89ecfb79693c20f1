"""`convolution.Conv`: flax's nn.Conv, with a GEMM for the weight gradient."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import convolution


@pytest.mark.parametrize("kernel_size,stride,dtype,tolerance", [
    (3, 1, jnp.float32, 1e-4), (1, 1, jnp.float32, 1e-4),
    (5, 1, jnp.float32, 1e-4), (7, 2, jnp.float32, 1e-4),
    (3, 2, jnp.float32, 1e-4), (3, 1, jnp.bfloat16, 3e-2)])
def test_same_function_and_gradients_as_flax_conv(kernel_size, stride, dtype,
                                                  tolerance):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 8, 6, 5)), jnp.float32)
  ours = convolution.Conv(7, kernel_size, stride, dtype=dtype)
  flax_conv = nn.Conv(7, (kernel_size, kernel_size), strides=stride,
                      padding=kernel_size // 2, dtype=dtype)
  variables = ours.init(jax.random.PRNGKey(0), x)
  flax_variables = flax_conv.init(jax.random.PRNGKey(0), x)
  # The same parameters: names, shapes, dtypes and initial values.
  assert (jax.tree_util.tree_structure(variables) ==
          jax.tree_util.tree_structure(flax_variables))
  for a, b in zip(jax.tree_util.tree_leaves(variables),
                  jax.tree_util.tree_leaves(flax_variables)):
    np.testing.assert_array_equal(a, b)
  variables = jax.tree_util.tree_map(
      lambda v: v + 0.1 * rng.normal(size=v.shape).astype(np.float32),
      variables)  # A non-zero bias too.
  out_shape = flax_conv.apply(variables, x).shape
  assert ours.apply(variables, x).shape == out_shape
  weights = jnp.asarray(rng.normal(size=out_shape), jnp.float32)

  def loss(module, variables, x):
    return jnp.sum(module.apply(variables, x).astype(jnp.float32) * weights)

  value, grads = jax.value_and_grad(loss, argnums=(1, 2))(ours, variables, x)
  want, want_grads = jax.value_and_grad(loss, argnums=(1, 2))(
      flax_conv, variables, x)
  scale = float(jnp.abs(want)) + 1.0
  assert abs(float(value) - float(want)) <= tolerance * scale
  for a, b in zip(jax.tree_util.tree_leaves(grads),
                  jax.tree_util.tree_leaves(want_grads)):
    np.testing.assert_allclose(a, b, rtol=tolerance,
                               atol=tolerance * float(jnp.abs(b).max()))


def test_even_kernels_are_refused():
  with pytest.raises(ValueError, match="odd kernel_size"):
    convolution.Conv(4, 2).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 3)))
