"""MPII Human Pose facts as data: joints, flip pairs, skeleton, PCKh conventions.

Every other module takes these from here (mmpose's "dataset metainfo" idea), so a
joint index or a flip pair is written once. Joint order is MPII's official `id`
order, which pose-hg-train, pytorch-pose, HRNet and mmpose all use.
"""

import numpy as np

NUM_JOINTS = 16

JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)

# Named indices for the few places that need one joint by name.
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE = 0, 1, 2, 3, 4, 5
PELVIS, THORAX, UPPER_NECK, HEAD_TOP = 6, 7, 8, 9
R_WRIST, R_ELBOW, R_SHOULDER, L_SHOULDER, L_ELBOW, L_WRIST = (
    10, 11, 12, 13, 14, 15)

# (right, left) pairs swapped by a horizontal flip.
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))


def flip_permutation() -> np.ndarray:
  """Index array `perm` such that `joints[perm]` swaps left and right joints."""
  perm = np.arange(NUM_JOINTS)
  for right, left in FLIP_PAIRS:
    perm[right], perm[left] = left, right
  return perm


FLIP_PERMUTATION = flip_permutation()

LEFT_JOINTS = tuple(left for _, left in FLIP_PAIRS)
RIGHT_JOINTS = tuple(right for right, _ in FLIP_PAIRS)

# Limbs for drawing, as (joint, joint, side) with side 'left', 'right' or 'center'.
SKELETON = (
    (R_ANKLE, R_KNEE, "right"), (R_KNEE, R_HIP, "right"),
    (R_HIP, PELVIS, "right"), (L_HIP, PELVIS, "left"),
    (L_HIP, L_KNEE, "left"), (L_KNEE, L_ANKLE, "left"),
    (PELVIS, THORAX, "center"), (THORAX, UPPER_NECK, "center"),
    (UPPER_NECK, HEAD_TOP, "center"),
    (R_WRIST, R_ELBOW, "right"), (R_ELBOW, R_SHOULDER, "right"),
    (R_SHOULDER, THORAX, "right"), (L_SHOULDER, THORAX, "left"),
    (L_SHOULDER, L_ELBOW, "left"), (L_ELBOW, L_WRIST, "left"),
)

# PCKh table columns (docs/design.md section 4): each is the count-weighted
# average of its joints. "Mean" is the official toolkit's "Total": all joints
# but pelvis and thorax. "OfficialHead" is the toolkit's Head column (neck +
# head top).
PCKH_COLUMNS = (
    ("Head", (HEAD_TOP,)),
    ("Shoulder", (R_SHOULDER, L_SHOULDER)),
    ("Elbow", (R_ELBOW, L_ELBOW)),
    ("Wrist", (R_WRIST, L_WRIST)),
    ("Hip", (R_HIP, L_HIP)),
    ("Knee", (R_KNEE, L_KNEE)),
    ("Ankle", (R_ANKLE, L_ANKLE)),
)
MEAN_JOINTS = tuple(j for j in range(NUM_JOINTS) if j not in (PELVIS, THORAX))
OFFICIAL_HEAD_JOINTS = (UPPER_NECK, HEAD_TOP)

# PCKh's head size: 0.6 x the diagonal of the head box (the official
# toolkit's factor; pose-hg-train's valid.h5 stores the result as `normalize`).
HEAD_SIZE_FACTOR = 0.6


def head_size(boxes, xp=np):
  """PCKh's head size of head boxes: 0.6 x their diagonal.

  Args:
    boxes: (..., 4) head boxes x1, y1, x2, y2 (numpy, or TensorFlow tensors
      with `xp=tf.experimental.numpy`).
    xp: array namespace.

  Returns:
    (...) head sizes, in the boxes' dtype.
  """
  boxes = xp.asarray(boxes)
  diagonal = boxes[..., 2:] - boxes[..., :2]
  return HEAD_SIZE_FACTOR * xp.sqrt(xp.sum(diagonal * diagonal, axis=-1))

# Crop conventions of pose-hg-train (docs/design.md section 3): MPII's `scale`
# is the person's height / 200 px; the crop is centred 15*scale px below
# `objpos` and covers 200 * 1.25 * scale px.
PIXEL_STD = 200.0
SCALE_PADDING = 1.25
CENTER_SHIFT_Y = 15.0
