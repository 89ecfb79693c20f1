"""Tests of the heatmap codec's targets: Gaussians of peak 1 and sigma 1.

The expected values are exp(-d^2 / (2 sigma^2)) worked out by hand at
chosen pixels (docs/design.md section 3: an unnormalised Gaussian, peak 1,
sigma 1 heatmap pixel, per annotated joint inside the crop; weight 0
otherwise), and pixel (i, j) of a heatmap is the point x = j, y = i.
"""

import numpy as np
import pytest

from acnn_jax import codec as codec_lib
from configs import default

# exp(-d^2 / 2) for the squared distances d^2 used below.
EXP = {0.0: 1.0, 1.0: 0.6065306597126334, 4.0: 0.1353352832366127,
       5.0: 0.0820849986238988, 0.3125: 0.8553453273074225,
       0.8125: 0.6661436107034878}


def _encode(codec, joints, annotated=None):
  joints = np.asarray(joints, np.float32)
  if annotated is None:
    annotated = np.ones(len(joints), bool)
  heatmaps, weights = codec.encode(joints, annotated)
  return heatmaps.numpy(), weights.numpy()


def test_the_default_sigma_is_one_heatmap_pixel():
  assert codec_lib.HeatmapCodec().sigma == 1.0
  assert default.get_config().sigma == 1.0


@pytest.mark.parametrize("x,y,d2", [
    (5, 7, 0.0),  # The joint's own pixel: the peak.
    (6, 7, 1.0), (4, 7, 1.0), (5, 6, 1.0),  # One pixel away.
    (5, 9, 4.0),  # Two rows below.
    (7, 8, 5.0),  # Two columns right, one row below.
])
def test_a_joint_on_a_pixel_centre_peaks_at_1_with_sigma_1(x, y, d2):
  """Joint 0 at (x, y) = (5, 7), on a 16 x 16 heatmap."""
  heatmaps, weights = _encode(codec_lib.HeatmapCodec(input_size=64),
                              [[5.0, 7.0]])
  assert heatmaps.shape == (16, 16, 1) and weights.tolist() == [1.0]
  np.testing.assert_allclose(heatmaps[y, x, 0], EXP[d2], rtol=1e-6)
  # The peak is the maximum, and 1 (unnormalised).
  assert heatmaps[7, 5, 0] == heatmaps.max()


def test_a_sub_pixel_joint_and_the_whole_grid():
  """Joint at (10.5, 3.25): pixel (x 10, y 3) is 0.5 and 0.25 away,
  d^2 = 0.3125; pixel (x 11, y 4) is 0.5 and 0.75 away, d^2 = 0.8125. The
  whole grid against the Gaussian written out here."""
  codec = codec_lib.HeatmapCodec(input_size=64)
  heatmaps, _ = _encode(codec, [[10.5, 3.25]])
  np.testing.assert_allclose(heatmaps[3, 10, 0], EXP[0.3125], rtol=1e-6)
  np.testing.assert_allclose(heatmaps[4, 11, 0], EXP[0.8125], rtol=1e-6)
  y, x = np.mgrid[0:16, 0:16].astype(np.float64)
  expected = np.exp(-((x - 10.5) ** 2 + (y - 3.25) ** 2) / 2.0)
  np.testing.assert_allclose(heatmaps[..., 0], expected, rtol=1e-5,
                             atol=1e-30)


def test_sigma_is_the_standard_deviation():
  """sigma 2: two pixels away is one standard deviation, exp(-1/2) (sigma
  read as a variance would give exp(-1))."""
  heatmaps, _ = _encode(codec_lib.HeatmapCodec(input_size=64, sigma=2.0),
                        [[5.0, 7.0]])
  np.testing.assert_allclose(heatmaps[7, 7, 0], EXP[1.0], rtol=1e-6)
  np.testing.assert_allclose(heatmaps[7, 5, 0], 1.0, rtol=1e-6)


def test_unannotated_or_outside_joints_get_weight_0_and_no_gaussian():
  """Four joints: annotated inside; unannotated inside; annotated but past
  the right edge (x = 15.5 is outside a 16-pixel heatmap, whose area ends
  half a pixel after the last centre 15); annotated just inside (x = -0.4)."""
  heatmaps, weights = _encode(
      codec_lib.HeatmapCodec(input_size=64),
      [[5.0, 7.0], [8.0, 8.0], [15.5, 8.0], [-0.4, 8.0]],
      np.array([True, False, True, True]))
  np.testing.assert_array_equal(weights, [1.0, 0.0, 0.0, 1.0])
  assert not heatmaps[..., 1].any() and not heatmaps[..., 2].any()
  np.testing.assert_allclose(heatmaps[8, 0, 3],
                             np.exp(-0.4 ** 2 / 2), rtol=1e-6)


def test_tensorflow_and_jax_draw_the_same_targets_for_a_batch():
  """Evaluation draws targets in tf.data, training on the device (jax): one
  formula, so the two agree, joint for joint, for any batch shape."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  codec = codec_lib.HeatmapCodec(input_size=64, sigma=1.5)
  rng = np.random.default_rng(0)
  # Joints inside, on the border and outside the 16 x 16 heatmap.
  joints = rng.uniform(-3.0, 19.0, (2, 3, 16, 2)).astype(np.float32)
  annotated = rng.random((2, 3, 16)) < 0.8
  on_device, device_weights = codec.encode(joints, annotated, xp=jnp)
  assert on_device.shape == (2, 3, 16, 16, 16)
  for i in range(2):
    for j in range(3):
      heatmaps, weights = _encode(codec, joints[i, j], annotated[i, j])
      np.testing.assert_allclose(on_device[i, j], heatmaps, rtol=1e-6,
                                 atol=1e-7)
      np.testing.assert_array_equal(device_weights[i, j], weights)
  inside = np.all((joints >= -0.5) & (joints < 15.5), axis=-1)
  np.testing.assert_array_equal(device_weights, annotated & inside)
