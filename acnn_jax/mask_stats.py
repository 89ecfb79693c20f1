"""Where the attention masks look: statistics of masks against regions.

ACNN's claim is that each stage's mask keeps the target person and discards
background and distractors. These statistics measure it, per stage, for the
masks that gate a later stage (M_1 .. M_{S-1}; the last mask gates nothing):

  target      mean mask on the target person's region
  others      mean mask on other people's regions (outside the target's)
  background  mean mask on the rest
  kept        fraction of mask pixels >= 0.5 (what a binary mask keeps)
  joints_kept fraction of the target's annotated joints whose heatmap pixel
              is kept (a mask that cuts a joint away costs accuracy)

Regions are drawn from ground-truth joints at heatmap resolution: capsules
around the bones of `mpii.SKELETON`, a disc for the head and the filled
torso (`person_region`). That fits the synthetic set's stick people, whose
limbs are drawn exactly along those bones; on real MPII such capsules are
thinner than real bodies, so there only `kept` and `joints_kept` are
reported (`MaskStats(regions=False)`). The regions are for measuring only,
never a training signal: the paper learns masks without extra annotation.
"""

from typing import Any, Dict, Optional

import numpy as np
from PIL import Image
from PIL import ImageDraw

from acnn_jax import distributed
from acnn_jax import mpii

KEEP_THRESHOLD = 0.5
REGION_STATS = ("target", "others", "background")
STATS = REGION_STATS + ("kept", "joints_kept")
# Capsule radius as a fraction of the person's height. The crop is 1.25
# person heights wide, so at 64x64 heatmaps the radius is 2.6 pixels.
LIMB_RADIUS = 0.05
# The synthetic renderer's torso is the quadrilateral of these joints.
TORSO = (mpii.R_SHOULDER, mpii.L_SHOULDER, mpii.L_HIP, mpii.R_HIP)


def person_region(joints, annotated, size: int,
                  limb_radius: Optional[float] = None) -> np.ndarray:
  """The pixels of a person's body on a `size` x `size` heatmap grid.

  Args:
    joints: (16, 2) joints in heatmap pixels (x, y); pixel (i, j) has its
      centre at x = j, y = i.
    annotated: (16,) bool; bones and discs need annotated joints.
    size: the heatmap side.
    limb_radius: capsule radius in heatmap pixels; default `LIMB_RADIUS` of
      the person's height (`size` / 1.25).

  Returns:
    (size, size) bool: capsules around the annotated bones, a disc around
    the head (from the neck and head top) and the torso quadrilateral.
  """
  joints = np.asarray(joints, np.float64)
  annotated = np.asarray(annotated, bool)
  if limb_radius is None:
    limb_radius = LIMB_RADIUS * size / mpii.SCALE_PADDING
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
  pixels = np.stack([xs, ys], axis=-1)  # (size, size, 2)
  region = np.zeros((size, size), bool)
  for a, b, _ in mpii.SKELETON:
    if annotated[a] and annotated[b]:
      region |= _capsule(pixels, joints[a], joints[b], limb_radius)
  for j in np.flatnonzero(annotated):
    region |= _capsule(pixels, joints[j], joints[j], limb_radius)
  if annotated[mpii.UPPER_NECK] and annotated[mpii.HEAD_TOP]:
    neck, top = joints[mpii.UPPER_NECK], joints[mpii.HEAD_TOP]
    radius = max(0.5 * np.linalg.norm(top - neck), limb_radius)
    region |= _capsule(pixels, 0.5 * (neck + top), 0.5 * (neck + top), radius)
  if annotated[list(TORSO)].all():
    canvas = Image.new("1", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(
        [tuple(p) for p in joints[list(TORSO)]], fill=1)
    region |= np.asarray(canvas, bool)
  return region


def _capsule(pixels, a, b, radius):
  """Pixels within `radius` of the segment a-b."""
  ab = b - a
  length2 = float(ab @ ab)
  t = 0.0 if length2 == 0 else np.clip(((pixels - a) @ ab) / length2, 0, 1)
  nearest = a + np.asarray(t)[..., None] * ab
  return np.sum((pixels - nearest) ** 2, axis=-1) <= radius * radius


class MaskStats:
  """Accumulates mask statistics over evaluation batches.

  Sums over pixels (and joints) of the whole split, so every pixel counts
  once: `target` is the mask's mean over all target pixels of the split.

  Args:
    num_stages: the masks per person that gate a later stage (S - 1).
    regions: measure target/others/background (needs trustworthy regions:
      the synthetic set); False reports only `kept` and `joints_kept`.
  """

  def __init__(self, num_stages: int, regions: bool = True):
    self.num_stages = num_stages
    self.regions = regions
    self._sums = np.zeros((num_stages, len(STATS)))
    self._counts = np.zeros((num_stages, len(STATS)))

  def add(self, masks, joints, annotated, other_joints=None,
          other_annotated=None):
    """Adds a batch of people.

    Args:
      masks: (B, num_stages, h, w) masks in [0, 1] (h == w).
      joints: (B, 16, 2) the target's joints in heatmap pixels.
      annotated: (B, 16) bool.
      other_joints: optional (B, P, 16, 2) other people of the same image,
        in the same heatmap pixels.
      other_annotated: (B, P, 16) bool, False for padding.
    """
    masks = np.asarray(masks, np.float64)
    batch, stages, size, _ = masks.shape
    if stages != self.num_stages:
      raise ValueError(f"expected {self.num_stages} masks per person, got "
                       f"{stages}.")
    joints = np.asarray(joints, np.float64)
    annotated = np.asarray(annotated, bool)
    for i in range(batch):
      kept = masks[i] >= KEEP_THRESHOLD  # (stages, h, w)
      self._add(STATS.index("kept"), kept.sum(axis=(1, 2)), size * size)
      pixel = np.round(joints[i]).astype(int)
      inside = annotated[i] & np.all((pixel >= 0) & (pixel < size), axis=-1)
      if inside.any():
        at_joints = kept[:, pixel[inside, 1], pixel[inside, 0]]
        self._add(STATS.index("joints_kept"), at_joints.sum(axis=1),
                  int(inside.sum()))
      if not self.regions:
        continue
      target = person_region(joints[i], annotated[i], size)
      others = np.zeros_like(target)
      if other_joints is not None:
        for j, a in zip(other_joints[i], other_annotated[i]):
          if np.any(a):
            others |= person_region(j, a, size)
      others &= ~target
      background = ~(target | others)
      for name, where in (("target", target), ("others", others),
                          ("background", background)):
        count = int(where.sum())
        if count:
          self._add(STATS.index(name), masks[i][:, where].sum(axis=1), count)

  def _add(self, column, sums, count):
    self._sums[:, column] += sums
    self._counts[:, column] += count

  def add_other_processes(self) -> None:
    """Adds the other processes' totals, so that every process of a
    multi-host evaluation holds the statistics of the whole split."""
    self._sums = distributed.sum_over_processes(self._sums)
    self._counts = distributed.sum_over_processes(self._counts)

  def result(self) -> Dict[str, float]:
    """{'mask/stage_<i>/<stat>': value} for 1-based stages; a statistic
    with nothing to measure (no other people, say) is left out."""
    out = {}
    for stage in range(self.num_stages):
      for column, name in enumerate(STATS):
        if self._counts[stage, column]:
          out[f"mask/stage_{stage + 1}/{name}"] = float(
              self._sums[stage, column] / self._counts[stage, column])
    return out


def format_stats(stats: Dict[str, float]) -> str:
  """One line per stage for logs and the demo ('' when there are none).

  Args:
    stats: a `MaskStats.result()`.
  """
  stages = sorted({int(k.split("/")[1].split("_")[1]) for k in stats})
  lines = []
  for stage in stages:
    values = [f"{name} {stats[f'mask/stage_{stage}/{name}']:.3f}"
              for name in STATS if f"mask/stage_{stage}/{name}" in stats]
    lines.append(f"\nMask M{stage}: " + ", ".join(values))
  return "".join(lines)


def select(record: Dict[str, Any]) -> Dict[str, float]:
  """The mask statistics among a record's fields (an eval_results.json)."""
  return {k: v for k, v in record.items() if k.startswith("mask/")}
