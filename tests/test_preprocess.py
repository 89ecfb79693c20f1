"""Tests of the per-example ops: crop geometry, targets, flip, augmentation."""

import dataclasses

import io

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from acnn_jax import codec as codec_lib
from acnn_jax import geometry
from acnn_jax import mpii
from acnn_jax import training_batch
from configs import default
from input_pipeline import preprocess

CODEC = codec_lib.HeatmapCodec(input_size=128)
# pose-hg-train's augmentation, as configs/default.py declares it.
AUGMENT = preprocess.AugmentConfig.from_config(default.get_config())


def _person(seed=0, width=300, height=240):
  """A raw example like the TFDS builder's, with joints spread over a person."""
  rng = np.random.default_rng(seed)
  center = np.array([width / 2 + 5, height / 2 - 10], np.float32)
  scale = np.float32(0.9)
  joints = center + rng.uniform(-70, 70, (mpii.NUM_JOINTS, 2)).astype(
      np.float32)
  annotated = np.ones(mpii.NUM_JOINTS, bool)
  annotated[[3, 12]] = False
  return {
      "image": rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
      "joints": joints, "annotated": annotated, "center": center,
      "scale": scale, "head_box": np.array([10, 10, 40, 50], np.float32),
      "index": np.int32(7), "person": np.int32(1),
      # Two other people in the image, the second without its last joint.
      "other_joints": (joints[None] + [[[40.0, 0.0]], [[-40.0, 5.0]]]
                       ).astype(np.float32),
      "other_annotated": np.arange(mpii.NUM_JOINTS)[None] < [[16], [15]],
  }


def _train(example, seed, augment):
  """`train_example`, expanded as the train step does on the device: float
  image, colour applied, heatmaps drawn (numpy)."""
  out = preprocess.train_example(example, seed, CODEC, augment)
  batch = {key: jnp.asarray(value.numpy())[None] for key, value in out.items()}
  return {key: np.asarray(value[0]) for key, value in
          training_batch.expand(batch, CODEC.sigma).items()}


def _decode(heatmaps):
  coords, _ = CODEC.decode(np.asarray(heatmaps)[None])
  return np.asarray(coords[0])


def _crop_by_hand(center, scale):
  """docs/design.md section 3's crop of MPII's objpos and scale: the centre
  15 scale pixels lower, the scale padded by 1.25."""
  return (np.asarray(center, np.float64) + [0.0, 15.0 * scale],
          1.25 * np.float64(scale))


def _to_crop_by_hand(points, center, scale, size, rotation=0.0, flip=False):
  """Original pixels -> pixels of a crop of side `size`, written out from
  docs/design.md section 3 and geometry's conventions: the crop covers 200 x
  scale original pixels around `center`, whose pixel centres 0 .. size - 1
  put `center` at (size - 1) / 2; mirrored about its vertical axis when
  `flip`, then the content turned `rotation` degrees counter-clockwise as
  seen on the screen (y down: a point to the right of the centre moves
  above it at 90 degrees)."""
  d = np.asarray(points, np.float64) - center
  if flip:
    d = d * [-1.0, 1.0]
  t = np.deg2rad(rotation)
  d = np.stack([np.cos(t) * d[..., 0] + np.sin(t) * d[..., 1],
                -np.sin(t) * d[..., 0] + np.cos(t) * d[..., 1]], axis=-1)
  return d * size / (200.0 * scale) + (size - 1) / 2.0


def test_peaks_map_back_to_the_original_joints_without_augmentation():
  example = _person()
  out = _train(example, tf.constant([0, 0], tf.int64), augment=None)
  weights = out["target_weight"]
  np.testing.assert_array_equal(weights > 0, example["annotated"])
  center, scale = _crop_by_hand(example["center"], example["scale"])
  back = geometry.crop_to_original(_decode(out["heatmaps"]), center, scale,
                                   CODEC.heatmap_size)
  pixel = 200 * scale / CODEC.heatmap_size  # One heatmap pixel, original px.
  error = np.linalg.norm(back - example["joints"], axis=-1)
  assert np.all(error[example["annotated"]] <= 0.5 * pixel), error


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_augmented_targets_follow_the_joints_through_the_matrix(seed):
  example = _person(seed)
  augment = dataclasses.replace(AUGMENT, rotation_prob=1.0)
  s = tf.constant([seed, 11], tf.int64)
  out = _train(example, s, augment)
  # The sample's draw (same seed), then the crop worked out by hand.
  center, scale = _crop_by_hand(example["center"], example["scale"])
  aug = preprocess.sample_augmentation(
      {"crop_scale": tf.constant(scale, tf.float32)}, s, augment)
  flip = bool(aug["flip"].numpy())
  expected = _to_crop_by_hand(example["joints"], center,
                              float(aug["crop_scale"].numpy()),
                              CODEC.heatmap_size,
                              float(aug["rotation"].numpy()), flip)
  annotated = example["annotated"]
  if flip:
    expected = expected[mpii.FLIP_PERMUTATION]
    annotated = annotated[mpii.FLIP_PERMUTATION]
  inside = np.all((expected >= 0) & (expected <= CODEC.heatmap_size - 1), -1)
  weights = out["target_weight"]
  np.testing.assert_array_equal(weights[inside & annotated], 1.0)
  keep = inside & annotated
  error = np.linalg.norm(_decode(out["heatmaps"])[keep] - expected[keep],
                         axis=-1)
  assert np.all(error <= 0.5), (error, expected[keep], flip)
  image = out["image"]
  assert image.shape == (128, 128, 3) and image.dtype == np.float32
  assert image.min() >= 0.0 and image.max() <= 1.0


def test_flip_swaps_left_and_right():
  example = _person(3)
  example["annotated"][:] = True
  no_aug = _train(example, tf.constant([0, 0], tf.int64), augment=None)
  flip_only = dataclasses.replace(
      AUGMENT, scale_sigma=0.0, rotation_prob=0.0, flip_prob=1.0,
      color_low=1.0, color_high=1.0)
  flipped = _train(example, tf.constant([0, 0], tf.int64), flip_only)
  plain = _decode(no_aug["heatmaps"])
  mirrored = _decode(flipped["heatmaps"])
  last = CODEC.heatmap_size - 1
  for right, left in mpii.FLIP_PAIRS:
    # The right-ankle channel of the mirror sits where the left ankle's
    # mirror image is, and vice versa.
    np.testing.assert_allclose(mirrored[right], [last - plain[left][0],
                                                 plain[left][1]], atol=0.5)
    np.testing.assert_allclose(mirrored[left], [last - plain[right][0],
                                                plain[right][1]], atol=0.5)
  # The same samples, mirrored; the uint8 crop may floor one of them a
  # level apart (0.1% of them).
  np.testing.assert_allclose(flipped["image"], no_aug["image"][:, ::-1],
                             atol=1.01 / 255)


def test_image_crop_and_heatmap_agree():
  """A bright dot at a joint lands on that joint's heatmap peak in the crop."""
  example = _person(4)
  image = np.zeros_like(example["image"])
  x, y = np.round(example["joints"][0]).astype(int)
  image[y - 1:y + 2, x - 1:x + 2] = 255
  example["joints"][0] = [x, y]
  example["image"] = image
  out = _train(example, tf.constant([0, 0], tf.int64), augment=None)
  crop = out["image"].sum(-1)
  dot = np.array(np.unravel_index(crop.argmax(), crop.shape)[::-1], float)
  peak = _decode(out["heatmaps"])[0]
  # Heatmap pixel j covers input pixels 4j .. 4j + 3, centred at 4j + 1.5.
  np.testing.assert_allclose(dot, peak * CODEC.stride + 1.5, atol=2.5)


def test_eager_and_tf_data_agree():
  example = _person(5)
  seed = tf.constant([3, 9], tf.int64)
  augment = AUGMENT
  eager = preprocess.train_example(example, seed, CODEC, augment)
  ds = tf.data.Dataset.from_tensors(example).map(
      lambda ex: preprocess.train_example(ex, seed, CODEC, augment))
  graph = next(iter(ds))
  for key in preprocess.TRAIN_KEYS:
    np.testing.assert_allclose(eager[key].numpy(), graph[key].numpy(),
                               atol=1e-5)


def test_eval_example_carries_what_pckh_needs():
  example = _person(6)
  out = preprocess.eval_example(example, CODEC)
  assert set(out) == set(preprocess.EVAL_KEYS)
  box = example["head_box"]
  np.testing.assert_allclose(out["head_size"].numpy(),
                             0.6 * np.hypot(box[2] - box[0], box[3] - box[1]))
  np.testing.assert_allclose(out["joints"].numpy(), example["joints"])
  # objpos (155, 110) and scale 0.9: centre 13.5 pixels lower, scale 1.125.
  np.testing.assert_allclose(out["center"].numpy(), [155.0, 123.5])
  np.testing.assert_allclose(out["scale"].numpy(), 1.125)
  # The other people, padded to MAX_OTHER_PEOPLE with unannotated ones.
  count = preprocess.MAX_OTHER_PEOPLE
  assert out["other_joints"].shape == (count, mpii.NUM_JOINTS, 2)
  np.testing.assert_allclose(out["other_joints"].numpy()[:2],
                             example["other_joints"])
  annotated = out["other_annotated"].numpy()
  np.testing.assert_array_equal(annotated[:2], example["other_annotated"])
  assert not annotated[2:].any()
  cut = preprocess.eval_example(example, CODEC, max_other_people=1)
  assert cut["other_joints"].shape == (1, mpii.NUM_JOINTS, 2)


def test_augment_config_takes_every_field_from_the_config():
  config = default.get_config()
  config.rotation_prob = 0.25
  config.color_high = 1.2
  augment = preprocess.AugmentConfig.from_config(config)
  assert augment.rotation_prob == 0.25 and augment.color_high == 1.2
  assert augment.scale_sigma == config.scale_sigma


# A crop centred at (100, 80) with scale 0.8 covers 160 original pixels: on
# the 32-pixel heatmap one original pixel is 0.2 heatmap pixels, on the
# 128-pixel input 0.8 input pixels, and the centre lands on 15.5 and 63.5.
# Joint 0 (r_ankle) sits at (102.5, 72.5), 2.5 right of and 7.5 above the
# centre, a 2 x 2 white dot in the image around it. Offsets (heatmap, input):
#   none:              ( 0.5, -1.5), ( 2, -6)
#   rotated 90 (ccw on screen: right -> up, up -> left):
#                      (-1.5, -0.5), (-6, -2)
#   rotated -90:       ( 1.5,  0.5), ( 6,  2)
#   rotated 30: (0.5 cos30 - 1.5 sin30, -0.5 sin30 - 1.5 cos30)
#                    = (-0.3170, -1.5490), 4 times that on the input
#   mirrored:          (-0.5, -1.5), (-2, -6), in channel 5 (l_ankle)
#   mirrored, then rotated 90: (-1.5, 0.5), (-6, 2), channel 5
#   scale 1.6 (twice the side, half the size):
#                      (0.25, -0.75), (1, -3)
@pytest.mark.parametrize("scale,rotation,flip,channel,heatmap,crop", [
    (0.8, 0.0, False, 0, (16.0, 14.0), (65.5, 57.5)),
    (0.8, 90.0, False, 0, (14.0, 15.0), (57.5, 61.5)),
    (0.8, -90.0, False, 0, (17.0, 16.0), (69.5, 65.5)),
    (0.8, 30.0, False, 0, (15.1830, 13.9510), (62.2321, 57.3038)),
    (0.8, 0.0, True, 5, (15.0, 14.0), (61.5, 57.5)),
    (0.8, 90.0, True, 5, (14.0, 16.0), (57.5, 65.5)),
    (1.6, 0.0, False, 0, (15.75, 14.75), (64.5, 60.5)),
])
def test_a_joint_and_its_pixel_land_where_worked_out_by_hand(
    scale, rotation, flip, channel, heatmap, crop):
  image = np.zeros((160, 200, 3), np.uint8)
  image[72:74, 102:104] = 255
  joints = np.full((mpii.NUM_JOINTS, 2), -1000.0, np.float32)
  joints[0] = [102.5, 72.5]
  example = {"image": image, "joints": joints,
             "annotated": np.arange(mpii.NUM_JOINTS) == 0,
             "crop_center": np.array([100.0, 80.0], np.float32),
             "crop_scale": np.float32(scale),
             "rotation": np.float32(rotation), "flip": flip}
  out = preprocess.crop_and_target(example, CODEC)
  weights = out["target_weight"].numpy()
  np.testing.assert_array_equal(weights,
                                np.arange(mpii.NUM_JOINTS) == channel)
  maps = out["heatmaps"].numpy()
  assert not np.delete(maps, channel, axis=-1).any()
  # A sampled Gaussian of sigma 1 has its centroid at its centre (to 1e-8).
  y, x = np.mgrid[0:32, 0:32]
  peak = maps[..., channel]
  np.testing.assert_allclose(
      [np.sum(x * peak) / peak.sum(), np.sum(y * peak) / peak.sum()],
      heatmap, atol=2e-3)
  assert peak.max() > 0.6  # Within a pixel of the joint: the target is there.
  # The dot's centroid in the crop: exact at right angles, 0.08 pixels off
  # at 30 degrees (bilinear sampling of a turned square).
  brightness = out["input"].numpy().sum(-1)
  y, x = np.mgrid[0:128, 0:128]
  np.testing.assert_allclose(
      [np.sum(x * brightness) / brightness.sum(),
       np.sum(y * brightness) / brightness.sum()], crop, atol=0.1)


def _draws(augment, count=4000):
  """`count` augmentations of a crop of scale 1, seeds (i, 7), as numpy."""
  example = {"crop_scale": tf.constant(1.0)}
  ds = tf.data.Dataset.range(count).map(
      lambda i: preprocess.sample_augmentation(
          example, tf.stack([i, tf.constant(7, tf.int64)]), augment))
  return {key: value.numpy()
          for key, value in next(iter(ds.batch(count))).items()}


def test_the_default_augmentation_is_the_specified_one():
  """docs/design.md section 3: scale x 2^clip(0.25 N, -0.5, 0.5), rotation
  clip(30 N, -60, 60) degrees with probability 0.4, flip 0.5, colour
  U(0.6, 1.4)."""
  assert AUGMENT == preprocess.AugmentConfig(
      scale_sigma=0.25, rotation_sigma=30.0, rotation_prob=0.4,
      flip_prob=0.5, color_low=0.6, color_high=1.4)


def test_augmentation_draws_follow_the_configured_distribution():
  """4000 draws against the distribution AugmentConfig promises, from
  normal and uniform tables, with tolerances of 4 standard errors or more:
  2^clip(N sigma, -2 sigma, 2 sigma) reaches both clips (each with
  P(N > 2) = 2.28%) and keeps P(|N| < 1) = 68.27% within one sigma; the
  rotation is non-zero with probability 0.4, then the same shape in
  degrees; flips with probability 0.5, independently; three independent
  U(low, high) colour factors."""
  draws = _draws(AUGMENT)
  count = 4000
  log_scale = np.log2(draws["crop_scale"])
  s = AUGMENT.scale_sigma
  np.testing.assert_allclose([log_scale.min(), log_scale.max()],
                             [-2 * s, 2 * s], rtol=1e-6)
  for clip in (-2 * s, 2 * s):
    assert abs(np.mean(np.isclose(log_scale, clip, rtol=1e-6)) -
               0.0228) < 0.01
  assert abs(np.mean(np.abs(log_scale) < s) - 0.6827) < 0.03
  assert abs(np.mean(log_scale)) < 0.02

  rotation = draws["rotation"]
  rotated = rotation[rotation != 0]
  assert abs(rotated.size / count - AUGMENT.rotation_prob) < 0.035
  r = AUGMENT.rotation_sigma
  np.testing.assert_allclose([rotated.min(), rotated.max()], [-2 * r, 2 * r],
                             rtol=1e-6)
  assert abs(np.mean(np.abs(rotated) < r) - 0.6827) < 0.05
  assert abs(np.mean(np.isclose(np.abs(rotated), 2 * r)) - 0.0455) < 0.025

  assert abs(np.mean(draws["flip"]) - AUGMENT.flip_prob) < 0.035
  # Drawn independently: flipped and rotated 0.5 x 0.4 of the time.
  assert abs(np.mean(draws["flip"] & (rotation != 0)) - 0.2) < 0.03

  color = draws["color"]
  low, high = AUGMENT.color_low, AUGMENT.color_high
  assert color.shape == (count, 3)
  assert color.min() >= low and color.max() <= high
  assert color.min() < low + 0.01 and color.max() > high - 0.01
  for quarter in (1, 2, 3):  # U(low, high)'s quartiles, per channel.
    below = np.mean(color < low + quarter * (high - low) / 4, axis=0)
    np.testing.assert_allclose(below, quarter / 4, atol=0.035)
  correlation = np.corrcoef(color.T)[np.triu_indices(3, 1)]
  assert np.all(np.abs(correlation) < 0.07), correlation


def test_augmentation_follows_a_config_other_than_the_default():
  """Every field is read: scale and rotation off, always flip, colour
  U(0.9, 1.1)."""
  augment = preprocess.AugmentConfig(
      scale_sigma=0.0, rotation_sigma=45.0, rotation_prob=0.0, flip_prob=1.0,
      color_low=0.9, color_high=1.1)
  draws = _draws(augment, count=500)
  np.testing.assert_array_equal(draws["crop_scale"], 1.0)
  np.testing.assert_array_equal(draws["rotation"], 0.0)
  assert draws["flip"].all()
  assert draws["color"].min() >= 0.9 and draws["color"].max() <= 1.1
  assert draws["color"].min() < 0.91 and draws["color"].max() > 1.09


def _jpeg_person(seed, width=300, height=240):
  """`_person` with its image a textured JPEG's bytes, as the TFDS builder
  stores it, and its decoded pixels."""
  example = _person(seed, width, height)
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, (height // 12, width // 12, 3), np.uint8)
  picture = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
  encoded = io.BytesIO()
  picture.save(encoded, "JPEG", quality=95)
  example["image"] = tf.constant(encoded.getvalue())
  return example, tf.io.decode_jpeg(encoded.getvalue(), channels=3).numpy()


def _reference(example, pixels, seed, augment):
  """The training example as the pipeline made it before the compact one:
  the whole image decoded, a float32 warp, colour and heatmaps in tf.data."""
  example = preprocess.crop_params({**example, "image": pixels})
  if augment is not None:
    example = preprocess.sample_augmentation(example, seed, augment)
  example = preprocess.crop_and_target(example, CODEC)
  color = example.get("color", tf.ones([3]))
  return {"image": tf.clip_by_value(example["input"] * color, 0, 1).numpy(),
          "heatmaps": example["heatmaps"].numpy(),
          "target_weight": example["target_weight"].numpy()}


@pytest.mark.parametrize("seed,centre", [
    (0, None), (1, None), (2, None), (3, None), (4, None), (5, None),
    (6, (5.0, 230.0)),     # At a corner: most of the crop is outside.
    (7, (-400.0, 120.0)),  # Wholly outside: the crop is black.
    (8, (290.0, -20.0)),
])
def test_compact_examples_equal_the_whole_image_ones(seed, centre):
  """The same seed gives the same crop, within JPEG and uint8 rounding
  (the cropped decode may round a pixel one level apart; the uint8 crop
  is within half a level, times the colour factor), and the same targets,
  as decoding the whole image and warping it in float32: with rotations,
  flips, colour and scales as the training augmentation draws them."""
  example, pixels = _jpeg_person(seed)
  if centre is not None:
    example["center"] = np.asarray(centre, np.float32)
  augment = dataclasses.replace(AUGMENT, rotation_prob=0.7)
  s = tf.constant([seed, 5], tf.int64)
  new = _train(example, s, augment)
  old = _reference(example, pixels, s, augment)
  difference = (new["image"] - old["image"]) * 255
  assert np.abs(difference).max() <= 1.5, np.abs(difference).max()
  # Unbiased where the image is; half a level (times the colour) where the
  # crop runs off it, which the uint8 crop cannot tell from black.
  seen = old["image"] > 0
  if seen.any():
    assert abs(difference[seen].mean()) <= 0.1, difference[seen].mean()
  assert difference[~seen].max(initial=0) <= 0.5 * AUGMENT.color_high
  np.testing.assert_allclose(new["heatmaps"], old["heatmaps"], atol=1e-6)
  np.testing.assert_array_equal(new["target_weight"], old["target_weight"])
  if centre is None:  # The person is in the picture: the crop is not black.
    assert old["image"].mean() > 0.1


def test_only_the_window_is_read():
  """Pixels outside `source_window` change nothing in the crop, for a
  rotated, scaled crop that runs off the image's edge."""
  example, _ = _jpeg_person(9)
  example = preprocess.crop_params({**example, "image": None})
  matrix = geometry.affine_matrix(example["crop_center"],
                                  example["crop_scale"] * 0.5, 128, 35.0,
                                  True)
  y, x, h, w = preprocess.source_window(
      geometry.invert_affine(matrix), 240, 300, 128).numpy()
  assert 0 < h < 240 and 0 < w < 300  # A real cut, on at least one side.
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (240, 300, 3), np.uint8)
  crop = preprocess.warp_from_source(tf.constant(image), matrix, 128)
  other = rng.integers(0, 256, image.shape, np.uint8)
  other[y:y + h, x:x + w] = image[y:y + h, x:x + w]
  np.testing.assert_array_equal(
      preprocess.warp_from_source(tf.constant(other), matrix, 128), crop)
  # And the warp reads right up to the window's border (it is no larger).
  trimmed = image.copy()
  trimmed[y:y + h, x] = 0
  trimmed[y, x:x + w] = 0
  trimmed[y:y + h, x + w - 1] = 0
  trimmed[y + h - 1, x:x + w] = 0
  assert not np.array_equal(
      preprocess.warp_from_source(tf.constant(trimmed), matrix, 128), crop)
