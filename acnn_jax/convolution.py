"""A convolution whose weight gradient, on CPU, is a few matrix products.

XLA:CPU lowers the weight gradient of a 3x3 convolution (the backward-filter
convolution) to a slow loop: for the paper's network it is most of a
training step, and the programs holding it take several times longer to
compile, and to load from the persistent cache. On CPU the weight gradient
is therefore written as what it is, a product of the input's patches with
the output gradient (docs/design.md section 7),

  dK[i, j, c, o] = sum over (n, y, x) of X[n, y + i, x + j, c] * G[n, y, x, o]

which XLA:CPU runs as GEMMs. On every other platform (cuda, rocm, tpu, ...)
the weight gradient is XLA's own backward-filter convolution, which cuDNN
and the TPU run well, while the GEMM form would copy each layer's input
once per kernel offset. The choice is made when the program is lowered
(`jax.lax.platform_dependent`), so a program holds only its platform's
form, and one traced for several platforms picks it before compiling. The
forward pass and the input gradient are XLA's convolutions everywhere.
`Conv` has flax's `nn.Conv` parameters (the same names, shapes and
initialisers), so checkpoints are unchanged and move between platforms.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _padding(kernel_shape):
  kh, kw = kernel_shape[:2]
  return ((kh // 2, kh // 2), (kw // 2, kw // 2))


def _convolve(x, kernel, stride):
  return jax.lax.conv_general_dilated(
      x, kernel, (stride, stride), _padding(kernel.shape),
      dimension_numbers=_DIMENSIONS)


def weight_gradient(x, g, kernel_shape, stride: int = 1):
  """dK of `conv` for inputs x (N, H, W, C) and output gradient g (N, h, w,
  O): one (C, N h w) x (N h w, O) product per kernel offset (i, j), over
  the input pixels that offset meets (rather than one product of all
  patches at once, im2col, which is slower on CPU; docs/measurements.md)."""
  kh, kw, c, o = kernel_shape
  n, h, w, _ = g.shape
  (top, _), (left, _) = _padding(kernel_shape)
  padded = jnp.pad(x, ((0, 0), (top, top), (left, left), (0, 0)))
  outputs = g.reshape(n * h * w, o)
  rows = []
  for i in range(kh):
    for j in range(kw):
      seen = jax.lax.slice(
          padded, (0, i, j, 0),
          (n, i + stride * (h - 1) + 1, j + stride * (w - 1) + 1, c),
          (1, stride, stride, 1))
      rows.append(jax.lax.dot_general(
          seen.reshape(n * h * w, c), outputs, (((0,), (0,)), ((), ())),
          preferred_element_type=jnp.promote_types(x.dtype, jnp.float32)))
  return jnp.stack(rows).reshape(kh, kw, c, o)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv(x, kernel, stride: int = 1):
  """A convolution zero-padded by half the (odd) kernel on every side, as
  `nn.Conv(..., strides=stride, padding=k // 2)`.

  Args:
    x: (N, H, W, C) inputs.
    kernel: (kh, kw, C, O), kh and kw odd.
    stride: the same along H and W.

  Returns:
    (N, ceil(H / stride), ceil(W / stride), O).
  """
  return _convolve(x, kernel, stride)


def _forward(x, kernel, stride):
  return _convolve(x, kernel, stride), (x, kernel)


def xla_weight_gradient(x, g, kernel, stride: int = 1):
  """dK of `conv` as XLA computes it: the VJP of the convolution with
  respect to the kernel, a backward-filter convolution (only `kernel`'s
  shape and dtype matter: the convolution is linear in it)."""
  _, kernel_vjp = jax.vjp(lambda k: _convolve(x, k, stride), kernel)
  return kernel_vjp(g)[0]


def _backward(stride, residuals, g):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda inputs: _convolve(inputs, kernel, stride), x)
  # Chosen when lowering, by the platform the program is lowered for: the
  # GEMMs where XLA's backward-filter convolution is slow (CPU), XLA's own
  # where it is fast and the GEMMs' nine shifted copies of x are not.
  dk = jax.lax.platform_dependent(
      x, g, kernel,
      cpu=lambda x, g, kernel: weight_gradient(
          x, g, kernel.shape, stride).astype(kernel.dtype),
      default=lambda x, g, kernel: xla_weight_gradient(
          x, g, kernel, stride).astype(kernel.dtype))
  return input_vjp(g)[0], dk


conv.defvjp(_forward, _backward)


class Conv(nn.Module):
  """`nn.Conv(features, (k, k), strides=stride, padding=k // 2)`, computed
  by `conv`: the same parameters ('kernel' (k, k, C, O), 'bias' (O,)), the
  same function and gradients; only the CPU program differs, whose weight
  gradient is GEMMs (`weight_gradient`) instead of XLA:CPU's slow
  backward-filter convolution. Lowered for a GPU or TPU it is nn.Conv's
  program.

  Attributes:
    features: output channels.
    kernel_size: k, odd.
    stride: along H and W.
    dtype: compute dtype; parameters are `param_dtype`.
  """
  features: int
  kernel_size: int = 3
  stride: int = 1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.kernel_size % 2 != 1:
      raise ValueError(f"Conv needs an odd kernel_size, got "
                       f"{self.kernel_size}.")
    k = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,),
                      self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias,
                                              dtype=self.dtype)
    return conv(x, kernel, self.stride) + bias
