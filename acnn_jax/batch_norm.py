"""BatchNorm as Torch7 and PyTorch keep it: the running variance is unbiased.

pose-hg-train's `nn.SpatialBatchNormalization` (and PyTorch's `BatchNorm2d`,
which the hourglass ports use) normalise a training batch with its biased
variance, but update the running variance, which inference uses, with the
unbiased one, var * n / (n - 1) over the n values per channel. flax's
`nn.BatchNorm` keeps the biased one. The two differ by a factor of up to
n / (n - 1) = 1.07 at the deepest hourglass level of small batches (n = 16
for one 64x64 heatmap image), so a network trained the flax way infers with
other statistics than the paper's would. `BatchNorm` here is flax's layer
with that one change: the same variables ('scale', 'bias'; 'mean', 'var'),
the same arithmetic for the output, so checkpoints are unchanged.
"""

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchNorm(nn.Module):
  """Batch normalisation over every axis but the last (channels).

  Attributes:
    use_running_average: normalise with the running statistics (inference,
      and the frozen task in training) instead of the batch's, and leave them
      unchanged.
    momentum: flax's convention, the running statistics' decay: 0.9 is
      Torch7's and PyTorch's momentum 0.1.
    epsilon: added to the variance, as Torch7 and PyTorch (1e-5) do.
    dtype: the output's dtype; statistics are computed in float32 at least.
    param_dtype: the dtype of 'scale' and 'bias'.
    axis_name: a pmap axis over which the batch statistics are averaged
      (None: this device's batch is the whole batch).
  """
  use_running_average: bool
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  axis_name: Optional[str] = None

  @nn.compact
  def __call__(self, x):
    features = (x.shape[-1],)
    axes = tuple(range(x.ndim - 1))
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, features,
                                 jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, features,
                                jnp.float32)
    scale = self.param("scale", nn.initializers.ones, features,
                       self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, features,
                      self.param_dtype)

    if self.use_running_average:
      mean, var = running_mean.value, running_var.value
    else:
      stats = x.astype(jnp.promote_types(self.dtype, jnp.float32))
      # As flax's BatchNorm writes it: lax.square (its gradient is one
      # product, stats * stats's two and a sum), squared before either mean
      # is taken. In the other order XLA:CPU ran the paper's train step 1.4x
      # slower, from the same operations.
      square = jax.lax.square(stats)
      mean, mean_square = stats.mean(axes), square.mean(axes)
      count = math.prod(x.shape[:-1])
      # Initialisation runs outside pmap, where the axis does not exist.
      distributed = self.axis_name is not None and not self.is_initializing()
      if distributed:
        mean, mean_square = jax.lax.pmean((mean, mean_square), self.axis_name)
        count = count * jax.lax.psum(1, self.axis_name)
      # E[x^2] - E[x]^2 in one pass, as flax computes it; rounding can make
      # it slightly negative.
      var = jnp.maximum(0.0, mean_square - jax.lax.square(mean))
      if not self.is_initializing():
        unbiased = var * (count / jnp.maximum(count - 1, 1))
        running_mean.value = (self.momentum * running_mean.value +
                              (1 - self.momentum) * mean)
        running_var.value = (self.momentum * running_var.value +
                             (1 - self.momentum) * unbiased)

    y = (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
    return y.astype(self.dtype)
