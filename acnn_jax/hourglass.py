"""Newell's stacked-hourglass building blocks (pose-hg-train), as Flax modules.

`models.ACNN` assembles these into stages and adds the attention heads;
docs/design.md section 1 is the specification.

Every 1x1 convolution is a Dense layer over the channel axis: the same
parameters and function, but on CPU XLA runs it faster than `nn.Conv`
with a 1x1 kernel (docs/design.md section 7).
"""

import dataclasses
import functools
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from acnn_jax import batch_norm
from acnn_jax import convolution


class Block(nn.Module):
  """Base of the network's modules: the compute dtype and BatchNorm's axis.

  Both are keyword-only, so each module lists its own fields first.

  Attributes:
    dtype: compute dtype (float32 or bfloat16); parameters stay float32.
    bn_axis_name: pmap axis over which BatchNorm averages batch statistics
      during training (None outside pmap).
  """
  _: dataclasses.KW_ONLY
  dtype: Any = jnp.float32
  bn_axis_name: Optional[str] = None

  @property
  def common(self) -> dict:
    """The dtype and BatchNorm axis, for child modules."""
    return dict(dtype=self.dtype, bn_axis_name=self.bn_axis_name)

  def dense(self, features, name=None, **kwargs):
    """A 1x1 convolution as a Dense over the channel axis."""
    return nn.Dense(features, dtype=self.dtype, param_dtype=jnp.float32,
                    name=name, **kwargs)

  def conv(self, features, kernel, strides=1, name=None):
    """A k x k convolution, zero-padded by k // 2, with nn.Conv's parameters
    (`convolution.Conv`: its weight gradient is GEMMs, several times faster
    on CPU than XLA's own)."""
    return convolution.Conv(features, kernel, strides, dtype=self.dtype,
                            param_dtype=jnp.float32, name=name)

  def norm(self, train: bool, name=None):
    """Torch7's BatchNorm (`batch_norm.BatchNorm`: momentum 0.1, which is
    flax's 0.9, eps 1e-5, unbiased running variance)."""
    return batch_norm.BatchNorm(use_running_average=not train, momentum=0.9,
                                epsilon=1e-5, dtype=self.dtype,
                                param_dtype=jnp.float32,
                                axis_name=self.bn_axis_name if train else None,
                                name=name)


class Residual(Block):
  """Newell's pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1.

  Attributes:
    features: output channels (the bottleneck has half as many).
  """
  features: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    half = self.features // 2
    y = self.dense(half, name="conv1")(nn.relu(self.norm(train, "bn1")(x)))
    y = self.conv(half, 3, name="conv2")(nn.relu(self.norm(train, "bn2")(y)))
    y = self.dense(self.features, name="conv3")(
        nn.relu(self.norm(train, "bn3")(y)))
    if x.shape[-1] != self.features:
      x = self.dense(self.features, name="skip")(x)
    return x + y


def max_pool(x):
  """2x2 max-pooling with stride 2 (sides are even by construction).

  A reshape and a max, not `nn.max_pool`: the same values, but its gradient
  avoids XLA's select-and-scatter, slow on CPU (docs/measurements.md).
  """
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def upsample_nearest(x):
  """Doubles height and width by repeating each pixel (Torch7's nn.UpSampling)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


class Hourglass(Block):
  """Newell's recursive hourglass of `depth` levels (one residual per module).

  up = Res(x); low = Res(pool(x)); low = Hourglass(depth - 1)(low) (or Res at
  depth 1); low = Res(low); out = up + upsample(low).
  """
  depth: int
  features: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    res = functools.partial(Residual, self.features, **self.common)
    up = res(name="up")(x, train)
    low = res(name="low1")(max_pool(x), train)
    if self.depth > 1:
      low = Hourglass(self.depth - 1, self.features, **self.common,
                      name="inner")(low, train)
    else:
      low = res(name="low2")(low, train)
    low = res(name="low3")(low, train)
    return up + upsample_nearest(low)


class Stem(Block):
  """Newell's stem: conv7x7/2 + BN + ReLU, Res, max-pool, Res, Res.

  Widths are F/4 -> F/2 -> F/2 -> F, i.e. 64 -> 128 -> 128 -> 256 for F=256
  as in pose-hg-train; tiny test networks shrink with F. Output: (B, H/4,
  W/4, F).
  """
  features: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    res = functools.partial(Residual, **self.common)
    quarter, half = self.features // 4, self.features // 2
    x = self.conv(quarter, 7, strides=2, name="conv")(x)
    x = nn.relu(self.norm(train, "bn")(x))
    x = res(half, name="res1")(x, train)
    x = max_pool(x)
    x = res(half, name="res2")(x, train)
    return res(self.features, name="res3")(x, train)


class Stage(Block):
  """One hourglass stage: Hourglass, Res, conv1x1+BN+ReLU -> ll, conv1x1 -> H.

  Returns:
    (ll, heatmaps): the stage's last features (B, h, w, F) and its heatmaps
    (B, h, w, K) with no BN or ReLU on them.
  """
  depth: int
  features: int
  num_joints: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = Hourglass(self.depth, self.features, **self.common,
                  name="hourglass")(x, train)
    y = Residual(self.features, **self.common, name="res")(y, train)
    ll = self.dense(self.features, name="lin")(y)
    ll = nn.relu(self.norm(train, "lin_bn")(ll))
    # HRNet/mmpose's init for the last layer: heatmaps start near zero, so
    # training does not first spend steps erasing random maps.
    heatmaps = self.dense(
        self.num_joints, name="heatmaps",
        kernel_init=nn.initializers.normal(stddev=0.001))(ll)
    return ll, heatmaps


class Merge(Block):
  """Newell's inter-stage connection: X + conv1x1(ll) + conv1x1(H)."""
  features: int

  @nn.compact
  def __call__(self, x, ll, heatmaps):
    return (x + self.dense(self.features, name="features")(ll) +
            self.dense(self.features, name="heatmaps")(heatmaps))
