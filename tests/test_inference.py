"""Tests of the shared heatmap function: flip test, flip shift, decoding."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import geometry
from acnn_jax import inference
from acnn_jax import models
from acnn_jax import mpii
from acnn_jax.codec import HeatmapCodec
from conftest import counting_programs
from conftest import random_heads
from conftest import tiny_model

TINY = dict(num_stacks=2, features=16, num_joints=16, hourglass_depth=2,
            attention_features=8)


@functools.lru_cache(maxsize=None)
def _tiny():
  """The tiny network with random attention heads: its masks vary over the
  image, so a mirrored or transposed mask differs from the right one."""
  model, variables = tiny_model(**TINY)
  return model, random_heads(variables, seed=0)


# The tests of the tiny network's jitted function run in one pytest-xdist
# worker, so that each setting compiles once for the whole file.
_COMPILED_ONCE = pytest.mark.xdist_group("test_inference_tiny_network")


@functools.lru_cache(maxsize=None)
def _predict_fn(flip_test=True):
  """The tiny network's jitted heatmap function, compiled once per setting
  for the whole file."""
  return inference.make_predict_fn(_tiny()[0], flip_test=flip_test)


def _images(seed, batch=3, size=64):
  # One batch size for every test of the tiny network, so that the jitted
  # heatmap function compiles once per setting; 3 so that the batch axis
  # cannot be mistaken for the stage axis (2 stacks).
  return jax.random.uniform(jax.random.PRNGKey(seed), (batch, size, size, 3))


def _mirror_and_swap(heatmaps):
  """Flip along width and swap left/right, written out here in numpy."""
  return np.asarray(heatmaps)[..., ::-1, :][..., mpii.FLIP_PERMUTATION]


def _gaussian(size, x, y, sigma=1.0):
  grid = np.arange(size, dtype=np.float64)
  return np.exp(-((grid[None, :] - x) ** 2 + (grid[:, None] - y) ** 2) /
                (2 * sigma ** 2))


def test_flip_back_mirrors_along_width_and_swaps_pairs():
  heatmaps = np.zeros((1, 16, 16, 16), np.float32)
  heatmaps[0, 3, 10, mpii.R_ANKLE] = 1.0  # y=3, x=10
  heatmaps[0, 5, 2, mpii.HEAD_TOP] = 1.0
  back = np.asarray(inference.flip_back(heatmaps))
  assert back[0, 3, 16 - 1 - 10, mpii.L_ANKLE] == 1.0
  assert back[0, 5, 16 - 1 - 2, mpii.HEAD_TOP] == 1.0
  assert back.sum() == 2.0


def test_flip_shift_moves_flipped_map_one_pixel_right():
  rng = np.random.RandomState(0)
  mirrored = rng.rand(2, 8, 12, 16).astype(np.float32)
  plain = np.asarray(inference.flip_back(mirrored))
  shifted = np.asarray(inference.flip_back(mirrored, shift=True))
  np.testing.assert_array_equal(shifted[:, :, 1:], plain[:, :, :-1])
  np.testing.assert_array_equal(shifted[:, :, 0], plain[:, :, 0])
  # And through the average: only the mirrored half moves.
  image = rng.rand(2, 8, 12, 16).astype(np.float32)
  avg_plain = np.asarray(inference.flip_average(image, mirrored))
  avg_shift = np.asarray(inference.flip_average(image, mirrored, shift=True))
  np.testing.assert_allclose(2 * avg_shift[:, :, 1:] - image[:, :, 1:],
                             2 * avg_plain[:, :, :-1] - image[:, :, :-1],
                             atol=1e-6)


class _StripeModel:
  """A handcrafted 'network': heatmap k is 1 at column (k + 2) of its
  quarter-size input grid where the input's red channel is bright, so
  mirrored images give peaks at known, asymmetric places."""
  num_joints = 16

  def apply(self, variables, images, train=False, masks_to_one=False):
    del variables, masks_to_one
    assert not train
    b, h, w, _ = images.shape
    small = images[:, ::4, ::4, :1]  # (B, h/4, w/4, 1)
    columns = jnp.arange(w // 4)[None, None, :, None]
    joints = jnp.arange(self.num_joints)[None, None, None, :]
    heat = small * (columns == joints % (w // 4)).astype(jnp.float32)
    heat = heat[None]
    masks = jnp.ones(heat.shape[:-1] + (1,))
    return models.ACNNOutput(heatmaps=heat, masks=masks, predictions=heat)


def test_flip_shift_in_predict_fn_is_a_one_pixel_shift():
  images = jnp.asarray(np.random.RandomState(1).rand(2, 64, 64, 3),
                       jnp.float32)
  model = _StripeModel()
  unflipped = model.apply(None, images).predictions[-1]
  mirror = model.apply(None, inference.mirror_images(images)).predictions[-1]
  plain = inference.make_predict_fn(model, flip_shift=False)(None, images)
  shifted = inference.make_predict_fn(model, flip_shift=True)(None, images)
  back_plain = 2 * plain["heatmaps"] - unflipped
  back_shift = 2 * shifted["heatmaps"] - unflipped
  np.testing.assert_allclose(back_plain, _mirror_and_swap(mirror), atol=1e-6)
  np.testing.assert_allclose(back_shift[:, :, 1:], back_plain[:, :, :-1],
                             atol=1e-6)
  assert not np.allclose(back_shift, back_plain)


def test_equal_settings_share_one_compiled_function():
  """Every evaluation and `predict.Predictor` asks for the heatmap function
  anew: equal settings, a model `clone`d anew included, get the same
  function, so its program compiles once per process."""
  make = inference.make_predict_fn
  model = models.ACNN(**TINY)
  same = make(model.clone(bn_axis_name="batch").clone(bn_axis_name=None))
  assert make(model) is same
  assert make(model, flip_test=False, flip_shift=True) is make(
      model, flip_test=False)  # The shift means nothing without the flip.
  for other in (make(model, flip_test=False), make(model, flip_shift=True),
                make(model, masks_to_one=True),
                make(model.clone(features=32))):
    assert other is not same
  stripes = _StripeModel()
  images = jnp.zeros((2, 64, 64, 3))
  make(stripes)(None, images)
  with counting_programs() as count:
    make(stripes)(None, images)
  assert count[0] == 0
  # A model that cannot be a cache key still gets a working function.
  unhashable = type("Unhashable", (_StripeModel,), {"__hash__": None})()
  assert make(unhashable) is not make(unhashable)


@_COMPILED_ONCE
def test_predict_fn_shapes_and_stage_axis():
  model, variables = _tiny()
  out = _predict_fn()(variables, _images(0))
  assert out["heatmaps"].shape == (3, 16, 16, 16)
  assert out["stage_predictions"].shape == (2, 3, 16, 16, 16)
  assert out["masks"].shape == (2, 3, 16, 16, 1)
  np.testing.assert_array_equal(out["stage_predictions"][-1],
                                out["heatmaps"])


@_COMPILED_ONCE
def test_flip_test_is_the_average_with_the_flipped_back_mirror():
  model, variables = _tiny()
  images = _images(1)
  out = _predict_fn(flip_test=True)(variables, images)
  own = model.apply(variables, images)
  mirrored = model.apply(variables, inference.mirror_images(images))
  expected = 0.5 * (np.asarray(own.predictions) +
                    _mirror_and_swap(mirrored.predictions))
  np.testing.assert_allclose(out["stage_predictions"], expected, atol=1e-5)
  # The masks are the un-mirrored pass's, in its layout and stage order; they
  # vary enough that the mirror's, a transposed or a swapped one would fail.
  np.testing.assert_allclose(out["masks"], own.masks, atol=1e-6)
  masks = np.asarray(own.masks)
  for wrong in (np.asarray(mirrored.masks), masks.swapaxes(2, 3),
                masks[::-1]):
    assert np.abs(wrong - masks).max() > 0.05
  plain = _predict_fn(flip_test=False)(variables, images)
  np.testing.assert_allclose(plain["heatmaps"], own.predictions[-1],
                             atol=1e-5)


@_COMPILED_ONCE
def test_flip_test_result_is_flip_invariant_on_a_symmetric_image():
  model, variables = _tiny()
  images = _images(2)
  symmetric = 0.5 * (images + inference.mirror_images(images))
  flipped = _predict_fn(flip_test=True)(variables, symmetric)
  heatmaps = flipped["heatmaps"]
  np.testing.assert_allclose(heatmaps, _mirror_and_swap(heatmaps), atol=1e-5)
  # Without the flip test the random network is not symmetric, so the check
  # above has something to catch.
  plain = _predict_fn(flip_test=False)(variables, symmetric)
  assert not np.allclose(plain["heatmaps"],
                         _mirror_and_swap(plain["heatmaps"]), atol=1e-4)


def test_flip_permutation_must_match_the_joints():
  model = models.ACNN(**{**TINY, "num_joints": 8})
  with pytest.raises(ValueError, match="joints"):
    inference.make_predict_fn(model)
  inference.make_predict_fn(model, flip_test=False)  # no flip, no pairs needed


@pytest.mark.parametrize("input_size", [64, 256])
def test_decode_to_original_recovers_original_points(input_size):
  codec = HeatmapCodec(input_size=input_size)
  size = codec.heatmap_size
  rng = np.random.RandomState(input_size)
  centers = np.array([[300.5, 200.25], [51.0, 640.75]], np.float32)
  scales = np.array([1.7, 0.45], np.float32)
  heatmaps = np.zeros((2, size, size, 16), np.float32)
  truth = np.zeros((2, 16, 2), np.float32)
  for b in range(2):
    # Joints inside the crop, away from its border (no quarter offset there).
    on_map = rng.uniform(2, size - 3, (16, 2))
    matrix = geometry.affine_matrix(centers[b], scales[b], size)
    truth[b] = geometry.apply_affine(geometry.invert_affine(matrix), on_map)
    # Draw each Gaussian where the original point lands, through geometry.
    for k, (x, y) in enumerate(geometry.apply_affine(matrix, truth[b])):
      heatmaps[b, ..., k] = 0.9 * _gaussian(size, x, y)
  coords, confidences = inference.decode_to_original(codec, heatmaps, centers,
                                                     scales)
  coords, confidences = np.asarray(coords), np.asarray(confidences)
  assert coords.shape == (2, 16, 2) and confidences.shape == (2, 16)
  np.testing.assert_allclose(confidences, heatmaps.max(axis=(1, 2)))
  # Argmax + quarter offset is within a quarter heatmap pixel per axis.
  tolerance = 0.25 * mpii.PIXEL_STD * scales / size + 1e-3
  error = np.abs(coords - truth)
  assert np.all(error <= tolerance[:, None, None]), error.max()


def test_decode_to_original_is_exact_on_pixel_peaks_and_float():
  codec = HeatmapCodec(input_size=64)
  heatmaps = np.zeros((1, 16, 16, 16), np.float32)
  heatmaps[0, 7, 4, :] = 1.0  # x=4, y=7: neighbours equal, no offset
  center, scale = np.array([100.0, 50.0], np.float32), np.float32(0.3)
  coords, _ = inference.decode_to_original(codec, heatmaps, center[None],
                                           scale[None])
  # A 60 px crop on a 16 px map: 3.75 px per heatmap pixel around the centre
  # 7.5, so x = 100 + (4 - 7.5) * 3.75 and y = 50 + (7 - 7.5) * 3.75.
  np.testing.assert_allclose(np.asarray(coords)[0],
                             np.tile([[86.875, 48.125]], (16, 1)), atol=1e-4)


def test_decode_to_original_rejects_other_heatmap_sizes():
  with pytest.raises(ValueError, match="heatmaps"):
    inference.decode_to_original(HeatmapCodec(input_size=256),
                                 np.zeros((1, 16, 16, 16)), np.zeros((1, 2)),
                                 np.ones(1))


def test_codec_maps_heatmap_pixels_to_the_centres_of_their_crop_blocks():
  # Stride 4: heatmap pixel j covers crop pixels 4j .. 4j + 3, centre 4j + 1.5.
  codec = HeatmapCodec(input_size=64)
  points = np.array([[0.0, 0.0], [15.0, 15.0], [3.25, 7.75]], np.float32)
  np.testing.assert_array_equal(
      codec.to_crop(points), [[1.5, 1.5], [61.5, 61.5], [14.5, 32.5]])
  heatmaps = np.zeros((16, 16, 2), np.float32)
  heatmaps[7, 4, 0], heatmaps[7, 5, 0] = 1.0, 0.5  # x=4 + 1/4, y=7
  heatmaps[0, 9, 1], heatmaps[1, 9, 1] = 0.8, 0.3  # x=9, y=0 (border)
  coords, confidences = codec.decode_to_crop(heatmaps)
  np.testing.assert_array_equal(coords, [[18.5, 29.5], [37.5, 1.5]])
  np.testing.assert_array_equal(confidences, np.float32([1.0, 0.8]))


def test_crop_pixels_are_the_frame_of_prediction_crop_keypoints():
  # Heatmap -> original (the crop's inverse at heatmap size) -> input crop
  # lands where the codec puts the point, for a crop of any centre and scale.
  codec = HeatmapCodec(input_size=64)
  points = np.array([[0.0, 0.0], [15.0, 15.0], [3.25, 7.75]], np.float32)
  center, scale = np.array([130.0, 75.5]), 1.7
  original = geometry.crop_to_original(points, center, scale, 16)
  np.testing.assert_allclose(
      geometry.apply_affine(geometry.affine_matrix(center, scale, 64),
                            original), codec.to_crop(points), atol=1e-4)
