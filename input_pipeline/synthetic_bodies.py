"""Synthetic people, part 1: posed 3D stick bodies and their placement.

`sample_body` draws a pose (standing, walking, arms up, sitting, bending or
free) of a body of height 1 with MPII's 16 joints and human proportions, seen
from a random yaw; `Placement` maps it into an image. `synthetic_scenes` draws
such bodies; `synthetic` writes them as MPII annotations.
"""

import dataclasses
from typing import Any, Dict, Tuple

import numpy as np

from acnn_jax import mpii

# Segment lengths as fractions of the standing height H = 200 * scale, after
# anthropometric tables (Drillis & Contini): thigh ~ shin, upper arm a little
# longer than forearm; standing ankle-to-head-top is ~0.96 H.
LENGTH = {
    "head": 0.15, "neck": 0.035, "torso": 0.28,
    "hip_half": 0.085, "shoulder_half": 0.12, "chest_depth": 0.05,
    "upper_arm": 0.165, "forearm": 0.145, "thigh": 0.245, "shin": 0.245,
}

# Pose families (name, probability). Angles below are degrees: `flex` swings a
# limb forward from hanging straight down, `abduct` swings it sideways away
# from the body, `bend` is knee/elbow flexion (knees only bend backwards).
_POSES = (("stand", 0.2), ("walk", 0.2), ("arms_up", 0.15), ("sit", 0.15),
          ("bend", 0.1), ("free", 0.2))


@dataclasses.dataclass
class Body:
  """A posed body in camera axes (x right, y down, z away), height 1.

  Attributes:
    joints: (16, 3) joint positions, pelvis at the origin.
    forward: (3,) unit vector the body faces.
    head_up: (3,) unit vector from upper neck to head top.
  """
  joints: np.ndarray
  forward: np.ndarray
  head_up: np.ndarray


def unit(v: np.ndarray) -> np.ndarray:
  return v / max(np.linalg.norm(v), 1e-9)


def _limb_direction(flex, abduct, side, forward, left, up) -> np.ndarray:
  """Unit direction of a limb from its root joint (see _POSES for angles)."""
  f, a = np.radians(flex), np.radians(abduct)
  return (np.cos(a) * (np.cos(f) * -up + np.sin(f) * forward) +
          np.sin(a) * side * left)


def _bend(direction, bend_deg, toward) -> np.ndarray:
  """Rotates `direction` by `bend_deg` towards `toward` (elbow flexion)."""
  t = toward - direction * (toward @ direction)
  if np.linalg.norm(t) < 1e-6:  # Toward is parallel: any perpendicular works.
    t = np.cross(direction, [0.0, 0.0, 1.0])
  t = unit(t)
  k = np.radians(bend_deg)
  return np.cos(k) * direction + np.sin(k) * t


def _pose_angles(rng: np.random.Generator, family: str) -> Dict[str, Any]:
  """Joint angles for one pose family, as per-side (right, left) pairs."""
  u = rng.uniform
  if family == "walk":
    swing = u(15, 35) * rng.choice([-1, 1])
    legs_flex = (swing, -swing * u(0.6, 1.0))
    legs_bend = tuple(u(0, 15) if f > 0 else u(10, 45) for f in legs_flex)
    arms_flex = (-legs_flex[0] * u(0.5, 1.2), -legs_flex[1] * u(0.5, 1.2))
    return dict(lean=u(-5, 12), legs_flex=legs_flex, legs_abduct=(u(0, 6),
                u(0, 6)), legs_bend=legs_bend, arms_flex=arms_flex,
                arms_abduct=(u(5, 15), u(5, 15)),
                arms_bend=(u(10, 60), u(10, 60)))
  if family == "sit":
    return dict(lean=u(-10, 20), legs_flex=(u(65, 100), u(65, 100)),
                legs_abduct=(u(0, 20), u(0, 20)),
                legs_bend=(u(60, 110), u(60, 110)),
                arms_flex=(u(0, 60), u(0, 60)), arms_abduct=(u(0, 25),
                u(0, 25)), arms_bend=(u(20, 100), u(20, 100)))
  if family == "bend":
    flex = u(50, 90)
    return dict(lean=u(30, 70), legs_flex=(flex + u(-10, 10), flex +
                u(-10, 10)), legs_abduct=(u(0, 15), u(0, 15)),
                legs_bend=(u(50, 120), u(50, 120)),
                arms_flex=(u(20, 100), u(20, 100)),
                arms_abduct=(u(0, 30), u(0, 30)),
                arms_bend=(u(0, 90), u(0, 90)))
  # Standing legs are shared by "stand", "arms_up" and, loosened, "free".
  legs = dict(lean=u(-5, 10), legs_flex=(rng.normal(0, 5), rng.normal(0, 5)),
              legs_abduct=(u(0, 12), u(0, 12)), legs_bend=(u(0, 10),
              u(0, 10)))
  if family == "stand":
    return dict(legs, arms_flex=(u(-15, 25), u(-15, 25)),
                arms_abduct=(u(5, 30), u(5, 30)),
                arms_bend=(u(0, 40), u(0, 40)))
  if family == "arms_up":
    return dict(legs, arms_flex=(u(0, 180), u(0, 180)),
                arms_abduct=(u(60, 175), u(60, 175)),
                arms_bend=(u(0, 60), u(0, 60)))
  return dict(lean=u(-20, 40), legs_flex=(u(-40, 110), u(-40, 110)),
              legs_abduct=(u(0, 45), u(0, 45)), legs_bend=(u(0, 140),
              u(0, 140)), arms_flex=(u(-60, 180), u(-60, 180)),
              arms_abduct=(u(0, 170), u(0, 170)),
              arms_bend=(u(0, 150), u(0, 150)))


def sample_body(rng: np.random.Generator) -> Body:
  """A random 3D pose seen from a random yaw (front, side, back views)."""
  names, probs = zip(*_POSES)
  angles = _pose_angles(rng, rng.choice(names, p=probs))
  yaw = rng.uniform(0, 2 * np.pi)
  up = np.array([0.0, -1.0, 0.0])
  forward = np.array([np.sin(yaw), 0.0, -np.cos(yaw)])
  left = np.cross(up, forward)  # Facing the camera, left is image right.

  lean, side_lean = np.radians(angles["lean"]), np.radians(rng.normal(0, 5))
  torso_up = unit(np.cos(lean) * np.cos(side_lean) * up +
                   np.sin(lean) * forward + np.sin(side_lean) * left)
  twist = np.radians(rng.normal(0, 10))
  shoulder_left = unit(np.cos(twist) * left + np.sin(twist) * forward)
  shoulder_forward = np.cross(shoulder_left, up)
  head_up = unit(torso_up + rng.normal(0, 0.15) * forward +
                  rng.normal(0, 0.1) * left)

  L = LENGTH
  joints = np.zeros((mpii.NUM_JOINTS, 3))
  joints[mpii.THORAX] = L["torso"] * torso_up
  joints[mpii.UPPER_NECK] = joints[mpii.THORAX] + L["neck"] * head_up
  joints[mpii.HEAD_TOP] = joints[mpii.UPPER_NECK] + L["head"] * head_up
  sides = ((-1, mpii.R_HIP, mpii.R_KNEE, mpii.R_ANKLE, mpii.R_SHOULDER,
            mpii.R_ELBOW, mpii.R_WRIST),
           (1, mpii.L_HIP, mpii.L_KNEE, mpii.L_ANKLE, mpii.L_SHOULDER,
            mpii.L_ELBOW, mpii.L_WRIST))
  for k, (side, hip, knee, ankle, shoulder, elbow, wrist) in enumerate(sides):
    flex, abduct = angles["legs_flex"][k], angles["legs_abduct"][k]
    joints[hip] = side * L["hip_half"] * left
    joints[knee] = joints[hip] + L["thigh"] * _limb_direction(
        flex, abduct, side, forward, left, up)
    joints[ankle] = joints[knee] + L["shin"] * _limb_direction(
        flex - angles["legs_bend"][k], abduct, side, forward, left, up)
    joints[shoulder] = joints[mpii.THORAX] + side * L["shoulder_half"] * (
        shoulder_left)
    upper = _limb_direction(angles["arms_flex"][k], angles["arms_abduct"][k],
                            side, shoulder_forward, shoulder_left, up)
    # Elbows flex towards the front, turned in or out by the upper arm's
    # rotation.
    roll = np.radians(rng.uniform(-45, 60))
    toward = (np.cos(roll) * shoulder_forward -
              np.sin(roll) * side * shoulder_left)
    joints[elbow] = joints[shoulder] + L["upper_arm"] * upper
    joints[wrist] = joints[elbow] + L["forearm"] * _bend(
        upper, angles["arms_bend"][k], toward)
  return Body(joints, forward, head_up)


@dataclasses.dataclass
class Placement:
  """Body units -> image pixels: scale by height, tilt in-plane, translate."""
  height: float
  tilt: float
  offset: np.ndarray  # (2,) image position of the pelvis (0-based pixels).

  def apply(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(k, 3) body points -> ((k, 2) 0-based pixel xy, (k,) depth in px)."""
    c, s = np.cos(self.tilt), np.sin(self.tilt)
    xy = points[:, :2] @ np.array([[c, s], [-s, c]]) * self.height
    return xy + self.offset, points[:, 2] * self.height

