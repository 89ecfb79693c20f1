"""Tests of the mask statistics on hand-made masks, people and regions."""

import numpy as np
import pytest

from acnn_jax import mask_stats
from acnn_jax import mpii

SIZE = 32


def _person(x0, y0=4.0, height=24.0):
  """A standing stick person whose body spans x0-3 .. x0+3, y0 .. y0+height."""
  s = height / 24.0
  y = lambda v: y0 + v * s
  joints = np.zeros((16, 2))
  joints[mpii.HEAD_TOP] = (x0, y(0))
  joints[mpii.UPPER_NECK] = (x0, y(3))
  joints[mpii.THORAX] = (x0, y(4))
  joints[mpii.PELVIS] = (x0, y(12))
  joints[mpii.R_SHOULDER], joints[mpii.L_SHOULDER] = (x0 - 3, y(4)), (x0 + 3,
                                                                     y(4))
  joints[mpii.R_ELBOW], joints[mpii.L_ELBOW] = (x0 - 3, y(8)), (x0 + 3, y(8))
  joints[mpii.R_WRIST], joints[mpii.L_WRIST] = (x0 - 3, y(12)), (x0 + 3, y(12))
  joints[mpii.R_HIP], joints[mpii.L_HIP] = (x0 - 2, y(12)), (x0 + 2, y(12))
  joints[mpii.R_KNEE], joints[mpii.L_KNEE] = (x0 - 2, y(18)), (x0 + 2, y(18))
  joints[mpii.R_ANKLE], joints[mpii.L_ANKLE] = (x0 - 2, y(24)), (x0 + 2,
                                                                 y(24))
  return joints


ALL = np.ones(16, bool)


def test_region_covers_bones_and_torso_but_not_far_pixels():
  joints = _person(10.0)
  region = mask_stats.person_region(joints, ALL, SIZE, limb_radius=1.0)
  for j in range(16):  # Every joint's pixel is in the region.
    x, y = np.round(joints[j]).astype(int)
    assert region[y, x], mpii.JOINT_NAMES[j]
  # Midway along the left shin, and the middle of the torso.
  assert region[19, 12] and region[12, 10]
  assert not region[:, 16:].any()  # Nothing right of the person.
  assert not region[20, 10]  # Between the legs, below the pelvis.


def test_region_skips_unannotated_joints():
  joints = _person(10.0)
  annotated = ALL.copy()
  annotated[mpii.L_ANKLE] = False
  full = mask_stats.person_region(joints, ALL, SIZE, limb_radius=1.0)
  cut = mask_stats.person_region(joints, annotated, SIZE, limb_radius=1.0)
  assert full[28, 12] and not cut[28, 12]  # The left ankle's pixel.
  assert cut[19, 12]  # The thigh is still there.


def _stats(masks, joints, regions=True, others=None):
  stats = mask_stats.MaskStats(masks.shape[1], regions=regions)
  other_joints = other_annotated = None
  if others is not None:
    other_joints = others[None, None]
    other_annotated = ALL[None, None]
  stats.add(masks, joints[None], ALL[None], other_joints, other_annotated)
  return stats.result()


def test_a_mask_that_keeps_the_target_only():
  joints = _person(10.0)
  region = mask_stats.person_region(joints, ALL, SIZE)
  masks = np.where(region, 0.9, 0.1)[None, None]  # (B=1, stages=1)
  got = _stats(masks, joints)
  assert got["mask/stage_1/target"] == pytest.approx(0.9)
  assert got["mask/stage_1/background"] == pytest.approx(0.1)
  assert got["mask/stage_1/joints_kept"] == 1.0
  assert got["mask/stage_1/kept"] == pytest.approx(region.mean())
  assert "mask/stage_1/others" not in got  # No other people given.


def test_other_people_and_a_cut_joint_are_measured():
  target, other = _person(8.0), _person(24.0)
  target_region = mask_stats.person_region(target, ALL, SIZE)
  other_region = mask_stats.person_region(other, ALL, SIZE)
  assert not (target_region & other_region).any()
  mask = np.full((SIZE, SIZE), 0.2)
  mask[target_region] = 1.0
  mask[other_region] = 0.6
  x, y = np.round(target[mpii.R_WRIST]).astype(int)
  mask[y, x] = 0.0  # Cuts one of the 16 joints away.
  masks = np.stack([mask, np.ones_like(mask)])[None]  # Two gating stages.
  got = _stats(masks, target, others=other)
  assert got["mask/stage_1/others"] == pytest.approx(0.6)
  assert got["mask/stage_1/background"] == pytest.approx(0.2)
  assert got["mask/stage_1/joints_kept"] == pytest.approx(15 / 16)
  assert got["mask/stage_1/target"] < 1.0
  assert got["mask/stage_2/background"] == 1.0
  assert got["mask/stage_2/joints_kept"] == 1.0


def test_without_regions_only_kept_and_joints_kept():
  joints = _person(10.0)
  masks = np.zeros((1, 1, SIZE, SIZE))
  masks[..., :16] = 1.0
  got = _stats(masks, joints, regions=False)
  assert set(got) == {"mask/stage_1/kept", "mask/stage_1/joints_kept"}
  assert got["mask/stage_1/kept"] == 0.5
  assert got["mask/stage_1/joints_kept"] == 1.0  # Every joint has x < 16.


def test_joints_outside_the_heatmap_are_not_counted():
  joints = _person(10.0)
  joints[mpii.L_ANKLE] = (40.0, 40.0)
  masks = np.zeros((1, 1, SIZE, SIZE))
  got = _stats(masks, joints, regions=False)
  assert got["mask/stage_1/joints_kept"] == 0.0
  stats = mask_stats.MaskStats(1, regions=False)
  stats.add(np.ones((1, 1, SIZE, SIZE)), joints[None], ALL[None])
  assert stats.result()["mask/stage_1/joints_kept"] == 1.0


def test_sums_are_over_pixels_of_the_whole_split():
  joints = _person(10.0)
  stats = mask_stats.MaskStats(1, regions=True)
  for value in (0.2, 0.6):
    stats.add(np.full((1, 1, SIZE, SIZE), value), joints[None], ALL[None])
  got = stats.result()
  assert got["mask/stage_1/background"] == pytest.approx(0.4)
  assert got["mask/stage_1/kept"] == pytest.approx(0.5)


def test_wrong_number_of_stages_is_refused():
  stats = mask_stats.MaskStats(2)
  with pytest.raises(ValueError, match="2 masks"):
    stats.add(np.ones((1, 1, SIZE, SIZE)), _person(10.0)[None], ALL[None])


def test_format_stats_one_line_per_stage():
  text = mask_stats.format_stats({"mask/stage_1/kept": 0.5,
                                  "mask/stage_2/kept": 1.0,
                                  "mask/stage_1/target": 0.25})
  assert text == ("\nMask M1: target 0.250, kept 0.500"
                  "\nMask M2: kept 1.000")
  assert mask_stats.format_stats({}) == ""
