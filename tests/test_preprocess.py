"""Tests of the per-example ops: crop geometry, targets, flip, augmentation."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from acnn_jax import codec as codec_lib
from acnn_jax import geometry
from acnn_jax import mpii
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


def _decode(heatmaps):
  coords, _ = CODEC.decode(np.asarray(heatmaps)[None])
  return np.asarray(coords[0])


def test_peaks_map_back_to_the_original_joints_without_augmentation():
  example = _person()
  out = preprocess.train_example(example, tf.constant([0, 0], tf.int64),
                                 CODEC, augment=None)
  weights = out["target_weight"].numpy()
  np.testing.assert_array_equal(weights > 0, example["annotated"])
  center, scale = geometry.mpii_crop(example["center"], example["scale"])
  back = geometry.heatmap_to_original(_decode(out["heatmaps"]), center, scale,
                                      CODEC.heatmap_size)
  pixel = 200 * scale / CODEC.heatmap_size  # One heatmap pixel, original px.
  error = np.linalg.norm(back - example["joints"], axis=-1)
  assert np.all(error[example["annotated"]] <= 0.5 * pixel), error


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_augmented_targets_follow_the_joints_through_the_matrix(seed):
  example = _person(seed)
  augment = dataclasses.replace(AUGMENT, rotation_prob=1.0)
  s = tf.constant([seed, 11], tf.int64)
  out = preprocess.train_example(example, s, CODEC, augment)
  # Re-derive the sample's matrix from the same augmentation draw.
  aug = preprocess.sample_augmentation(preprocess.crop_params(example), s,
                                       augment)
  flip = bool(aug["flip"].numpy())
  matrix = geometry.affine_matrix(
      aug["crop_center"].numpy(), aug["crop_scale"].numpy(),
      CODEC.heatmap_size, float(aug["rotation"].numpy()), flip)
  expected = geometry.apply_affine(matrix, example["joints"])
  annotated = example["annotated"]
  if flip:
    expected = expected[mpii.FLIP_PERMUTATION]
    annotated = annotated[mpii.FLIP_PERMUTATION]
  inside = np.all((expected >= 0) & (expected <= CODEC.heatmap_size - 1), -1)
  weights = out["target_weight"].numpy()
  np.testing.assert_array_equal(weights[inside & annotated], 1.0)
  keep = inside & annotated
  error = np.linalg.norm(_decode(out["heatmaps"])[keep] - expected[keep],
                         axis=-1)
  assert np.all(error <= 0.5), (error, expected[keep], flip)
  image = out["image"].numpy()
  assert image.shape == (128, 128, 3) and image.dtype == np.float32
  assert image.min() >= 0.0 and image.max() <= 1.0


def test_flip_swaps_left_and_right():
  example = _person(3)
  example["annotated"][:] = True
  no_aug = preprocess.train_example(example, tf.constant([0, 0], tf.int64),
                                    CODEC, augment=None)
  flip_only = dataclasses.replace(
      AUGMENT, scale_sigma=0.0, rotation_prob=0.0, flip_prob=1.0,
      color_low=1.0, color_high=1.0)
  flipped = preprocess.train_example(example, tf.constant([0, 0], tf.int64),
                                     CODEC, flip_only)
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
  np.testing.assert_allclose(flipped["image"].numpy(),
                             no_aug["image"].numpy()[:, ::-1], atol=1e-4)


def test_image_crop_and_heatmap_agree():
  """A bright dot at a joint lands on that joint's heatmap peak in the crop."""
  example = _person(4)
  image = np.zeros_like(example["image"])
  x, y = np.round(example["joints"][0]).astype(int)
  image[y - 1:y + 2, x - 1:x + 2] = 255
  example["joints"][0] = [x, y]
  example["image"] = image
  out = preprocess.train_example(example, tf.constant([0, 0], tf.int64),
                                 CODEC, augment=None)
  crop = out["image"].numpy().sum(-1)
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
  center, scale = geometry.mpii_crop(example["center"], example["scale"])
  np.testing.assert_allclose(out["center"].numpy(), center)
  np.testing.assert_allclose(out["scale"].numpy(), scale)
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
