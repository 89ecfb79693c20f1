"""`convolution.Conv`: flax's nn.Conv, with a GEMM for the weight gradient
on CPU and XLA's own elsewhere (checked on programs lowered for cuda and
tpu by benchmarks/lowered_ops.py's counts)."""

import importlib.util
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import convolution
from acnn_jax import models
from conftest import TINY
from conftest import TINY_INPUT

_PATH = (pathlib.Path(__file__).resolve().parents[1] / "benchmarks" /
         "lowered_ops.py")
_SPEC = importlib.util.spec_from_file_location("lowered_ops", _PATH)
lowered_ops = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(lowered_ops)


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


# Lowered programs of a small network's phase C train step, per convolution
# ('ours': convolution.Conv, 'flax': nn.Conv) and lowering platform: lowering
# needs no accelerator, so a CPU checks the GPU's and the TPU's programs.
_PLATFORMS = ("cpu", "cuda", "tpu")


@pytest.fixture(scope="module")
def lowered_counts():
  model = models.ACNN(**{**TINY, "num_stacks": 2}, dtype=jnp.bfloat16)
  return {conv: lowered_ops.lowered_counts(model, "c", 2, TINY_INPUT,
                                           _PLATFORMS, conv)
          for conv in ("ours", "flax")}


def _ops(counts):
  return {op: counts[op] for op in lowered_ops.COUNTED + ("slice_bytes",)}


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_lowered_for_gpu_or_tpu_the_weight_gradient_is_xlas(lowered_counts,
                                                            platform):
  """The GEMM weight gradient is for XLA:CPU only: on a GPU or TPU it would
  copy each 3x3 layer's input nine times and bypass cuDNN's or the TPU's
  backward-filter convolution. There the step is nn.Conv's program."""
  ours = _ops(lowered_counts["ours"][platform])
  flax_ops = _ops(lowered_counts["flax"][platform])
  assert ours["slice"] <= flax_ops["slice"], (ours, flax_ops)
  assert ours["dot_general"] <= flax_ops["dot_general"], (ours, flax_ops)
  assert ours == flax_ops


def test_lowered_for_cpu_the_weight_gradient_is_gemms(lowered_counts):
  ours = _ops(lowered_counts["ours"]["cpu"])
  flax_ops = _ops(lowered_counts["flax"]["cpu"])
  # One backward-filter convolution fewer per k x k layer, nine (k * k)
  # products and slices more for a 3x3 one.
  assert ours["convolution"] < flax_ops["convolution"], (ours, flax_ops)
  assert ours["dot_general"] > flax_ops["dot_general"], (ours, flax_ops)
  assert ours["slice"] > flax_ops["slice"], (ours, flax_ops)


def test_count_ops_reads_ops_and_slice_sizes():
  text = "\n".join([
      "%1 = stablehlo.slice %0 [0:2, 1:9:2] : (tensor<2x10xbf16>) -> "
      "tensor<2x4xbf16>",
      '%2 = "stablehlo.slice"(%0) {x} : (tensor<8xf32>) -> tensor<3xf32>',
      "%3 = stablehlo.dot_general %1, %1, contracting_dims = [0] x [0] : "
      "(tensor<2x4xbf16>, tensor<2x4xbf16>) -> tensor<4x4xf32>",
      "%4 = stablehlo.convolution(%a, %b) dim_numbers = [b, 0, 1, f]",
      "%5 = stablehlo.dynamic_slice %0, %c, sizes = [1] : (tensor<8xf32>, "
      "tensor<i32>) -> tensor<1xf32>"])
  assert lowered_ops.count_ops(text) == {
      "convolution": 1, "dot_general": 1, "slice": 2,
      "slice_bytes": 2 * 4 * 2 + 3 * 4}


@pytest.mark.parametrize("kernel_size,stride,dtype,tolerance", [
    (3, 1, jnp.float32, 1e-5), (3, 2, jnp.float32, 1e-5),
    (5, 1, jnp.float32, 1e-5), (7, 2, jnp.float32, 1e-5),
    (1, 1, jnp.float32, 1e-5), (3, 1, jnp.bfloat16, 2e-2)])
def test_gemm_and_xla_weight_gradients_agree(kernel_size, stride, dtype,
                                             tolerance):
  """The two forms `_backward` chooses between, run side by side on CPU."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, 5)), dtype)
  kernel = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, 5, 6)),
                       dtype)
  out_shape = convolution.conv(x, kernel, stride).shape
  g = jnp.asarray(rng.normal(size=out_shape), dtype)
  gemm = convolution.weight_gradient(x, g, kernel.shape, stride)
  xla = convolution.xla_weight_gradient(x, g, kernel, stride)
  assert xla.shape == gemm.shape == kernel.shape
  want = np.asarray(gemm, np.float32)
  np.testing.assert_allclose(np.asarray(xla, np.float32), want,
                             rtol=tolerance,
                             atol=tolerance * np.abs(want).max())


def test_the_cpu_program_has_the_gemms_and_no_conditional():
  """platform_dependent leaves a one-branch conditional in the lowered
  program, which XLA:CPU inlines: the compiled program is the GEMMs'."""
  x = jnp.ones((2, 8, 6, 5))
  kernel = jnp.ones((3, 3, 5, 7))
  grad = jax.jit(jax.grad(
      lambda x, k: jnp.sum(convolution.conv(x, k)), argnums=(0, 1)))
  hlo = grad.lower(x, kernel).compile().as_text()
  assert " conditional(" not in hlo
  assert hlo.count(" dot(") == 9
  assert hlo.count(" convolution(") == 1
