"""`training_batch.expand`: the compact batch the host sends -> the model's
input and targets, on the device."""

import jax
import jax.numpy as jnp
import numpy as np

from acnn_jax import codec as codec_lib
from acnn_jax import training_batch


def _compact(pixels, color, joints, weights):
  return {"image": jnp.asarray(pixels, jnp.uint8),
          "color": jnp.asarray(color, jnp.float32),
          "target_joints": jnp.asarray(joints, jnp.float32),
          "target_weight": jnp.asarray(weights, jnp.float32)}


def test_colour_scales_each_channel_and_clips_to_1():
  """A uint8 value v stands for v + 0.5 levels (the host truncated): with
  factors (0.6, 1.0, 1.4), 127 -> (76.5, 127.5, 178.5) / 255 and 229 ->
  (137.7, 229.5, 321.3 -> 255) / 255."""
  pixels = np.zeros((1, 4, 4, 3), np.uint8)
  pixels[0, 0, 0] = 127
  pixels[0, 0, 1] = 229
  batch = _compact(pixels, [[0.6, 1.0, 1.4]], np.zeros((1, 16, 2)),
                   np.zeros((1, 16)))
  image = np.asarray(jax.jit(lambda b: training_batch.expand(b, 1.0))(
      batch)["image"])
  assert image.dtype == np.float32 and image.shape == (1, 4, 4, 3)
  np.testing.assert_allclose(image[0, 0, 0] * 255, [76.5, 127.5, 178.5],
                             rtol=1e-5)
  np.testing.assert_allclose(image[0, 0, 1] * 255, [137.7, 229.5, 255.0],
                             rtol=1e-5)
  assert 0.0 <= image.min() and image.max() <= 1.0


def test_heatmaps_are_the_codecs_and_weights_follow_the_crop():
  """The codec's Gaussians, of the batch's size and the given sigma; a
  weighted joint that lies outside the heatmap gets weight 0 and no
  Gaussian (the host and the device agree on 'inside')."""
  rng = np.random.default_rng(1)
  joints = rng.uniform(0, 16, (2, 16, 2))
  joints[0, 3] = [20.0, 4.0]  # Outside the 16 x 16 heatmap.
  weights = np.ones((2, 16))
  weights[1, 5] = 0.0
  batch = _compact(np.zeros((2, 64, 64, 3)), np.ones((2, 3)), joints,
                   weights)
  out = training_batch.expand(batch, 1.5)
  codec = codec_lib.HeatmapCodec(input_size=64, sigma=1.5)
  want, want_weights = codec.encode(joints, weights > 0, xp=jnp)
  assert out["heatmaps"].shape == (2, 16, 16, 16)
  np.testing.assert_allclose(out["heatmaps"], want, rtol=1e-6)
  np.testing.assert_array_equal(out["target_weight"], want_weights)
  assert out["target_weight"][0, 3] == 0 and out["target_weight"][1, 5] == 0
  assert not np.asarray(out["heatmaps"])[0, ..., 3].any()


def test_a_batch_with_heatmaps_passes_through():
  batch = {"image": np.zeros((1, 8, 8, 3), np.float32),
           "heatmaps": np.zeros((1, 2, 2, 16), np.float32),
           "target_weight": np.ones((1, 16), np.float32)}
  assert training_batch.expand(batch, 1.0) is batch
