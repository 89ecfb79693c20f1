"""ACNN: a stacked hourglass whose every stage also predicts an attention mask.

The network follows Newell et al. 2016 (pose-hg-train) with ACNN's additions
(arXiv 1809.08371); docs/design.md section 1 is the specification.

Stage i (1-based) maps its input features X_i to heatmaps H_i and, through the
attention head f_c, to a one-channel mask M_i in [0, 1]:

  X_{i+1} = (X_i + conv1x1(ll_i) + conv1x1(H_i)) * M_i
  P_1 = H_1,  P_i = M_{i-1} * H_i + (1 - M_{i-1}) * P_{i-1}       ('gated')
          or  P_i = H_i + (1 - M_{i-1}) * P_{i-1}                 ('additive')

With every mask at 1 (`masks_to_one=True`) ACNN is exactly the stacked
hourglass with intermediate supervision.

The hourglass building blocks are in `hourglass`; this file adds the
attention heads and assembles the network.

Parameters are split into two tasks by their top-level names: the attention
heads are `attention_<i>`, everything else (stem, stages, inter-stage merges)
makes heatmaps. `task_labels` turns that into an optax label tree.
"""

from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from acnn_jax.hourglass import Block
from acnn_jax.hourglass import Merge
from acnn_jax.hourglass import Stage
from acnn_jax.hourglass import Stem

HEATMAP_TASK = "heatmap"
ATTENTION_TASK = "attention"
TASKS = (HEATMAP_TASK, ATTENTION_TASK)
ATTENTION_PREFIX = "attention_"

MASK_MODES = ("soft", "binary")
COMBINE_MODES = ("gated", "additive")
# Compute dtypes by their config names; parameters are always float32.
# (`ACNN(dtype=jnp.float64)` also works, under JAX's x64 mode: the parity
# tests compare gradients in float64.)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def output_dtype(dtype):
  """The dtype of the network's outputs and loss: float32, or float64 when
  computing in float64."""
  return jnp.promote_types(dtype, jnp.float32)


class ACNNOutput(NamedTuple):
  """What `ACNN.apply` returns; every field has the stage axis first.

  Attributes:
    heatmaps: (S, B, H/4, W/4, K) float32, each stage's own heatmaps H_i.
    masks: (S, B, H/4, W/4, 1) float32, each stage's attention mask. `masks[i]`
      is M_{i+1} in the paper's 1-based notation: it gates stage i+2's input
      and prediction. `masks[S-1]` is produced but used by no later stage.
    predictions: (S, B, H/4, W/4, K) float32, the combined predictions P_i; the
      network's answer is `predictions[-1]`.
  """
  heatmaps: jax.Array
  masks: jax.Array
  predictions: jax.Array


def binarize_straight_through(mask):
  """Forward: exactly `mask > 0.5` as 0/1; backward: the identity (so the
  gradient reaching the mask is the sigmoid's, as in a straight-through
  estimator). `b + (m - stop_gradient(m))` is exact because `m - m == 0`."""
  hard = (mask > 0.5).astype(mask.dtype)
  return hard + (mask - jax.lax.stop_gradient(mask))


class AttentionHead(Block):
  """ACNN's f_c: conv3x3+BN+ReLU twice, conv1x1 to one channel, sigmoid.

  The last layer's kernel starts at zero and its bias at `bias_init`, so every
  mask starts at sigmoid(bias_init) (0.982 for 4.0): phase B then begins from
  phase A's behaviour, exactly so with binary masks.

  Returns:
    (B, h, w, 1) float32 mask in [0, 1] ('soft') or in {0, 1} ('binary').
  """
  features: int
  mask_mode: str = "soft"
  bias_init: float = 4.0

  @nn.compact
  def __call__(self, ll, train: bool = False):
    y = ll
    for i in (1, 2):
      y = self.conv(self.features, 3, name=f"conv{i}")(y)
      y = nn.relu(self.norm(train, f"bn{i}")(y))
    logits = self.dense(
        1, name="logits", kernel_init=nn.initializers.zeros,
        bias_init=nn.initializers.constant(self.bias_init))(y)
    mask = nn.sigmoid(logits.astype(output_dtype(self.dtype)))
    if self.mask_mode == "binary":
      mask = binarize_straight_through(mask)
    return mask


class ACNN(Block):
  """The attention stacked hourglass (ACNN).

  The stem is Newell's (conv7x7/2 to 64, Res 64->128, pool, Res 128->128,
  Res 128->256), not pytorch-pose's. For num_stacks=4, features=256,
  num_joints=16, hourglass_depth=4 the heatmap network has 12,858,304
  parameters (pytorch-pose `hg(4, 1)`: 13,018,816, its stem differs) and the
  four attention heads with attention_features=64 add 4 x 184,769 = 739,076.

  Attributes:
    num_stacks: S, the number of hourglass stages.
    features: F, the feature width of the hourglasses.
    num_joints: K, heatmaps per stage.
    hourglass_depth: levels of each hourglass (input side must be divisible by
      4 * 2**hourglass_depth).
    attention: whether to build the attention heads. Off gives the plain
      stacked hourglass (masks are then exactly one).
    attention_features: width of the attention heads' 3x3 convolutions.
    attention_bias_init: the heads' initial logit, so masks start near 1.
    mask_mode: 'soft' (sigmoid) or 'binary' (straight-through m > 0.5).
    combine: 'gated' (P_i = M H_i + (1 - M) P_{i-1}) or 'additive'
      (P_i = H_i + (1 - M) P_{i-1}, the paper's literal Eq. 4).
    dtype: (keyword-only) compute dtype, float32 or bfloat16 (or float64
      under JAX's x64 mode); parameters stay float32 and outputs are
      float32 (float64 in float64).
    bn_axis_name: (keyword-only) pmap axis name over which BatchNorm averages
      batch statistics during training (None outside pmap).
  """
  num_stacks: int = 4
  features: int = 256
  num_joints: int = 16
  hourglass_depth: int = 4
  attention: bool = True
  attention_features: int = 64
  attention_bias_init: float = 4.0
  mask_mode: str = "soft"
  combine: str = "gated"

  def check_fields(self, owner: str = "ACNN", error=ValueError):
    """Raises `error` naming the first field with a bad value.

    Args:
      owner: how the message names the fields ('ACNN.mask_mode'; the config
        validation passes 'config', whose fields have the same names).
      error: the exception type to raise.
    """
    if self.mask_mode not in MASK_MODES:
      raise error(f"{owner}.mask_mode must be one of {MASK_MODES}, "
                  f"got {self.mask_mode!r}.")
    if self.combine not in COMBINE_MODES:
      raise error(f"{owner}.combine must be one of {COMBINE_MODES}, "
                  f"got {self.combine!r}.")
    for name in ("num_stacks", "features", "num_joints", "hourglass_depth",
                 "attention_features"):
      if getattr(self, name) < 1:
        raise error(f"{owner}.{name} must be positive, got "
                    f"{getattr(self, name)}.")
    if self.features % 4:
      raise error(f"{owner}.features must be divisible by 4, got "
                  f"{self.features}.")

  def _check(self, images):
    self.check_fields()
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError("ACNN expects images of shape (batch, height, width, 3),"
                       f" got {images.shape}.")
    multiple = 4 * 2 ** self.hourglass_depth
    if images.shape[1] % multiple or images.shape[2] % multiple:
      raise ValueError(
          f"ACNN with hourglass_depth={self.hourglass_depth} needs image "
          f"height and width divisible by {multiple}, got "
          f"{images.shape[1]}x{images.shape[2]}.")

  @nn.compact
  def __call__(self, images, train: bool = False, masks_to_one: bool = False,
               frozen_task: Optional[str] = None) -> ACNNOutput:
    """Runs the network.

    Args:
      images: (B, H, W, 3) float images (the project feeds [0, 1]).
      train: use batch statistics in BatchNorm and update the running ones
        (pass `mutable=['batch_stats']`).
      masks_to_one: phase A: every mask is exactly 1 and the attention heads
        are not run, so the network is the plain stacked hourglass.
      frozen_task: None, 'heatmap' or 'attention'. The frozen task's BatchNorm
        layers use (and keep) their running statistics even when `train`.

    Returns:
      An `ACNNOutput` of per-stage heatmaps, masks and predictions.
    """
    self._check(images)
    if frozen_task not in (None,) + TASKS:
      raise ValueError(f"frozen_task must be None or one of {TASKS}, got "
                       f"{frozen_task!r}.")
    train_heatmap = train and frozen_task != HEATMAP_TASK
    train_attention = train and frozen_task != ATTENTION_TASK
    use_attention = self.attention and not masks_to_one
    common = self.common

    x = Stem(self.features, name="stem", **common)(
        images.astype(self.dtype), train_heatmap)
    heatmaps, masks, predictions = [], [], []
    gate = None  # M_{i-1}; None stands for M_0 = 1.
    for i in range(self.num_stacks):
      ll, h = Stage(self.hourglass_depth, self.features, self.num_joints,
                    name=f"stage_{i}", **common)(x, train_heatmap)
      h = h.astype(output_dtype(self.dtype))
      if use_attention:
        m = AttentionHead(self.attention_features, self.mask_mode,
                          self.attention_bias_init,
                          name=f"{ATTENTION_PREFIX}{i}",
                          **common)(ll, train_attention)
      else:
        m = jnp.ones(h.shape[:-1] + (1,), h.dtype)

      if gate is None:
        p = h
      elif self.combine == "gated":
        p = gate * h + (1.0 - gate) * predictions[-1]
      else:
        p = h + (1.0 - gate) * predictions[-1]
      heatmaps.append(h)
      masks.append(m)
      predictions.append(p)
      gate = m if use_attention else None

      if i < self.num_stacks - 1:
        x = Merge(self.features, dtype=self.dtype, name=f"merge_{i}")(
            x, ll, h.astype(self.dtype))
        if use_attention:
          # The one-channel mask broadcasts over all F feature channels.
          x = x * m.astype(self.dtype)

    return ACNNOutput(heatmaps=jnp.stack(heatmaps), masks=jnp.stack(masks),
                      predictions=jnp.stack(predictions))


def task_of_path(path) -> str:
  """The task ('heatmap' or 'attention') of a parameter given its key path."""
  top = path[0]
  name = getattr(top, "key", getattr(top, "name", top))
  if str(name).startswith(ATTENTION_PREFIX):
    return ATTENTION_TASK
  return HEATMAP_TASK


def task_labels(tree):
  """Labels every leaf of a params or batch_stats tree with its task.

  Args:
    tree: a pytree keyed by the model's top-level module names, e.g.
      `variables['params']` or `variables['batch_stats']`.

  Returns:
    A pytree of the same structure whose leaves are 'heatmap' (task A: stem,
    stages, merges) or 'attention' (task B: the `attention_<i>` heads), ready
    for `optax.multi_transform`.
  """
  return jax.tree_util.tree_map_with_path(lambda p, _: task_of_path(p), tree)


def count_params(tree, task: Optional[str] = None) -> int:
  """Number of scalars in `tree`, optionally only those of one task."""
  total = 0
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    if task is None or task_of_path(path) == task:
      total += int(leaf.size)
  return total


def variable_shapes(model: ACNN, image_size, batch_size: int = 1):
  """The variables' shapes and dtypes (`jax.eval_shape`: no compute).

  Args:
    model: the module.
    image_size: an int (square) or an (height, width) pair.
    batch_size: batch of the dummy input.
  """
  if isinstance(image_size, int):
    image_size = (image_size, image_size)
  dummy = jax.ShapeDtypeStruct((batch_size, *image_size, 3), jnp.float32)
  model = model.clone(bn_axis_name=None)
  return jax.eval_shape(lambda r, x: model.init(r, x, train=False),
                        jax.random.PRNGKey(0), dummy)


def init_variables(model: ACNN, rng, image_size, batch_size: int = 1):
  """Initialises all variables under `jax.jit` (one compiled program instead
  of one eager dispatch per layer).

  Args:
    model: the module (its `bn_axis_name` is irrelevant for init).
    rng: a PRNG key.
    image_size: an int (square) or an (height, width) pair.
    batch_size: batch of the dummy input.

  Returns:
    {'params': ..., 'batch_stats': ...} with float32 leaves.
  """
  if isinstance(image_size, int):
    image_size = (image_size, image_size)
  dummy = jnp.zeros((batch_size, *image_size, 3), jnp.float32)
  model = model.clone(bn_axis_name=None)
  return jax.jit(lambda r: model.init(r, dummy, train=False))(rng)


def split_by_task(params, tasks):
  """The top-level entries of `params` that belong to `tasks`, and the rest.

  Args:
    params: a params (or gradient, or update) tree of the ACNN.
    tasks: task names (`TASKS`).

  Returns:
    (inside, outside): two dicts of top-level entries.
  """
  inside = {k: v for k, v in params.items() if task_of_path((k,)) in tasks}
  outside = {k: v for k, v in params.items() if k not in inside}
  return inside, outside


def create_model(config, bn_axis_name: Optional[str] = None) -> ACNN:
  """The ACNN that a training config describes (configs/default.py).

  Args:
    config: reads the model fields num_stacks, features, num_joints,
      hourglass_depth, attention, attention_features, attention_bias_init,
      mask_mode, combine and dtype (a key of `DTYPES`).
    bn_axis_name: pmap axis for BatchNorm statistics during training.
  """
  return ACNN(
      num_stacks=config.num_stacks, features=config.features,
      num_joints=config.num_joints, hourglass_depth=config.hourglass_depth,
      attention=config.attention,
      attention_features=config.attention_features,
      attention_bias_init=config.attention_bias_init,
      mask_mode=config.mask_mode, combine=config.combine,
      dtype=DTYPES[config.dtype], bn_axis_name=bn_axis_name)
