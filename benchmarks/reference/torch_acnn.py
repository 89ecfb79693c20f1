"""ACNN in PyTorch, written from the published definitions, for parity checks.

An independent reference for acnn-jax: nothing here is derived from the Flax
code. The sources, and what each part follows:

- The stacked hourglass is pose-hg-train's (Newell et al. 2016;
  `src/models/hg.lua`, `layers/Residual.lua`), as bearpaw/pytorch-pose ports
  it: the stem conv7x7/2 + BN + ReLU, Residual(64 -> 128), max-pool,
  Residual(128 -> 128), Residual(128 -> F); pre-activation bottleneck
  residuals (BN-ReLU-conv1x1(F/2), BN-ReLU-conv3x3(F/2), BN-ReLU-conv1x1(F),
  plus the input, through a 1x1 convolution when the width changes); the
  recursive hourglass with one residual per module and nearest upsampling;
  per stage Residual, conv1x1 + BN + ReLU (`lin`), conv1x1 to the heatmaps,
  and between stages X + conv1x1(ll) + conv1x1(H). Every convolution has a
  bias; BatchNorm is PyTorch's (momentum 0.1, eps 1e-5, Torch7's defaults).
- ACNN (arXiv 1809.08371, as docs/design.md section 1 specifies it):
  each stage's attention head f_c on `ll` (conv3x3 + BN + ReLU twice,
  conv1x1 to one channel, sigmoid; optionally binarised straight-through),
  the mask multiplying the next stage's input features, and Eq. 4:
  P_1 = H_1, P_i = M_{i-1} H_i + (1 - M_{i-1}) P_{i-1} ('gated'), or the
  literal P_i = H_i + (1 - M_{i-1}) P_{i-1} ('additive').
- Training: the MSE of each stage's prediction against the Gaussian target,
  weighted per joint (0 for joints without a target) and averaged over
  batch, joints and pixels, summed over stages; Torch7's RMSProp, which is
  `torch.optim.RMSprop` (alpha 0.99, eps 1e-8 outside the root, no momentum);
  phases A (heatmaps, masks fixed at one), B (attention heads, the heatmap
  network frozen) and C (both), a frozen part's BatchNorm layers in eval mode.

Tensors are NCHW, as PyTorch's are; outputs are stacked over stages first.
"""

from typing import Dict, List, NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

HEATMAP_TASK = "heatmap"
ATTENTION_TASK = "attention"
# What each phase trains (the rest is frozen) and whether masks are one.
PHASES = {"a": ((HEATMAP_TASK,), True), "b": ((ATTENTION_TASK,), False),
          "c": ((HEATMAP_TASK, ATTENTION_TASK), False)}


def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
  """Torch7's SpatialConvolution as pose-hg-train calls it: zero padding of
  half the kernel, with a bias."""
  return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2)


class Residual(nn.Module):
  """pose-hg-train's Residual(numIn, numOut): convBlock + skipLayer."""

  def __init__(self, cin: int, cout: int):
    super().__init__()
    half = cout // 2
    self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv(cin, half, 1)
    self.bn2, self.conv2 = nn.BatchNorm2d(half), conv(half, half, 3)
    self.bn3, self.conv3 = nn.BatchNorm2d(half), conv(half, cout, 1)
    self.skip = conv(cin, cout, 1) if cin != cout else None

  def forward(self, x):
    y = self.conv1(F.relu(self.bn1(x)))
    y = self.conv2(F.relu(self.bn2(y)))
    y = self.conv3(F.relu(self.bn3(y)))
    return (x if self.skip is None else self.skip(x)) + y


class Hourglass(nn.Module):
  """pose-hg-train's hourglass(n, f) with nModules = 1."""

  def __init__(self, depth: int, features: int):
    super().__init__()
    self.up1 = Residual(features, features)
    self.low1 = Residual(features, features)
    self.low2 = (Hourglass(depth - 1, features) if depth > 1 else
                 Residual(features, features))
    self.low3 = Residual(features, features)

  def forward(self, x):
    up1 = self.up1(x)
    low3 = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))
    return up1 + F.interpolate(low3, scale_factor=2, mode="nearest")


class BinaryStraightThrough(torch.autograd.Function):
  """Forward m > 0.5 as 0/1; backward the identity (the sigmoid's gradient
  reaches the logits unchanged)."""

  @staticmethod
  def forward(ctx, mask):
    return (mask > 0.5).to(mask.dtype)

  @staticmethod
  def backward(ctx, grad):
    return grad


class AttentionHead(nn.Module):
  """ACNN's f_c: conv3x3 + BN + ReLU twice, conv1x1 to one channel, sigmoid."""

  def __init__(self, features: int, width: int, binary: bool):
    super().__init__()
    self.conv1, self.bn1 = conv(features, width, 3), nn.BatchNorm2d(width)
    self.conv2, self.bn2 = conv(width, width, 3), nn.BatchNorm2d(width)
    self.score = conv(width, 1, 1)
    self.binary = binary

  def forward(self, ll):
    y = F.relu(self.bn1(self.conv1(ll)))
    y = F.relu(self.bn2(self.conv2(y)))
    mask = torch.sigmoid(self.score(y))
    return BinaryStraightThrough.apply(mask) if self.binary else mask


class Outputs(NamedTuple):
  """(S, B, C, h, w) per stage: heatmaps H_i, masks M_i, predictions P_i."""
  heatmaps: torch.Tensor
  masks: torch.Tensor
  predictions: torch.Tensor


class ACNN(nn.Module):
  """The attention stacked hourglass: pose-hg-train's hg.lua plus ACNN.

  Module names follow pytorch-pose's HourglassNet where it has the part
  (`hg`, `res`, `fc`, `score`, `fc_`, `score_`), so the converter's name
  map is a real translation, not an identity.
  """

  def __init__(self, num_stacks=4, features=256, num_joints=16,
               hourglass_depth=4, attention_features=64, mask_mode="soft",
               combine="gated"):
    super().__init__()
    if mask_mode not in ("soft", "binary") or combine not in ("gated",
                                                              "additive"):
      raise ValueError(f"unknown mask_mode {mask_mode!r} or combine "
                       f"{combine!r}")
    f = features
    self.num_stacks, self.combine = num_stacks, combine
    self.conv1, self.bn1 = conv(3, f // 4, 7, stride=2), nn.BatchNorm2d(f // 4)
    self.layer1 = Residual(f // 4, f // 2)
    self.layer2 = Residual(f // 2, f // 2)
    self.layer3 = Residual(f // 2, f)
    stacks = range(num_stacks)
    self.hg = nn.ModuleList(Hourglass(hourglass_depth, f) for _ in stacks)
    self.res = nn.ModuleList(Residual(f, f) for _ in stacks)
    self.fc = nn.ModuleList(
        nn.Sequential(conv(f, f, 1), nn.BatchNorm2d(f), nn.ReLU())
        for _ in stacks)
    self.score = nn.ModuleList(conv(f, num_joints, 1) for _ in stacks)
    self.fc_ = nn.ModuleList(conv(f, f, 1) for _ in stacks[:-1])
    self.score_ = nn.ModuleList(conv(num_joints, f, 1) for _ in stacks[:-1])
    self.attention = nn.ModuleList(
        AttentionHead(f, attention_features, mask_mode == "binary")
        for _ in stacks)

  def forward(self, images, masks_to_one: bool = False) -> Outputs:
    """images: (B, 3, H, W). masks_to_one: phase A, heads not run."""
    x = F.relu(self.bn1(self.conv1(images)))
    x = self.layer3(self.layer2(F.max_pool2d(self.layer1(x), 2, 2)))
    heatmaps: List[torch.Tensor] = []
    masks: List[torch.Tensor] = []
    predictions: List[torch.Tensor] = []
    for i in range(self.num_stacks):
      ll = self.fc[i](self.res[i](self.hg[i](x)))
      h = self.score[i](ll)
      if masks_to_one:
        m = torch.ones_like(h[:, :1])
      else:
        m = self.attention[i](ll)
      if i == 0 or masks_to_one:
        p = h
      elif self.combine == "gated":
        p = masks[-1] * h + (1 - masks[-1]) * predictions[-1]
      else:
        p = h + (1 - masks[-1]) * predictions[-1]
      heatmaps.append(h)
      masks.append(m)
      predictions.append(p)
      if i < self.num_stacks - 1:
        x = x + self.fc_[i](ll) + self.score_[i](h)
        if not masks_to_one:
          x = x * m  # One channel, broadcast over all F.
    return Outputs(torch.stack(heatmaps), torch.stack(masks),
                   torch.stack(predictions))

  def task_of(self, name: str) -> str:
    """The task of a parameter or buffer name: the heads are task B."""
    return ATTENTION_TASK if name.startswith("attention.") else HEATMAP_TASK


def stage_losses(predictions, targets, weights) -> torch.Tensor:
  """(S,) per-stage MSE: mean over B, K, h, w of w[b, k] (P - T)^2.

  predictions (S, B, K, h, w), targets (B, K, h, w), weights (B, K)."""
  squared = (predictions - targets[None]) ** 2 * weights[None, :, :, None,
                                                          None]
  return squared.mean(dim=(1, 2, 3, 4))


def set_phase(model: ACNN, phase: str) -> Dict[str, nn.Parameter]:
  """Freezes what `phase` does not train, as a PyTorch user would.

  The frozen task's parameters get requires_grad=False and its BatchNorm
  layers eval mode (running statistics used, never updated); the trained
  task's modules train mode.

  Returns:
    {name: parameter} of the trained parameters, for the optimizer.
  """
  trained, _ = PHASES[phase]
  model.train()
  for name, module in model.named_modules():
    if isinstance(module, nn.BatchNorm2d) and model.task_of(
        name + ".") not in trained:
      module.eval()
  params = {}
  for name, parameter in model.named_parameters():
    parameter.requires_grad_(model.task_of(name) in trained)
    if parameter.requires_grad:
      params[name] = parameter
  return params


def rmsprop(params, lr: float) -> torch.optim.Optimizer:
  """pose-hg-train's optimizer: Torch7 `optim.rmsprop` = PyTorch RMSprop."""
  return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8,
                             weight_decay=0, momentum=0, centered=False)
