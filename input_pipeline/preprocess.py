"""Per-example preprocessing ops for MPII people (TensorFlow, run in tf.data).

Each op takes and returns a dict of tensors (one person) and says which keys it
reads, changes and adds. Data flows: TFDS example -> `crop_params` ->
[`sample_augmentation`] -> `crop_and_target` -> [`color_jitter`] -> model input.

All geometry comes from `acnn_jax.geometry` and the targets from
`acnn_jax.codec`, the same code inference uses, so training and evaluation see
identical crops.
"""

import dataclasses
from typing import Optional

import ml_collections
import tensorflow as tf

from acnn_jax import codec as codec_lib
from acnn_jax import geometry
from acnn_jax import mpii

tnp = tf.experimental.numpy


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """The training augmentation of docs/design.md section 3.

  Its values come from the training config (`from_config`), whose defaults
  (configs/default.py) are pose-hg-train's.

  Attributes:
    scale_sigma: scale *= 2 ** clip(N(0, 1) * scale_sigma, -2 sigma, 2 sigma).
    rotation_sigma: degrees; rotation = clip(N(0, 1) * sigma, -2 sigma,
      2 sigma), applied with probability `rotation_prob`.
    rotation_prob: probability of rotating at all.
    flip_prob: probability of a horizontal flip (left/right joints swapped).
    color_low, color_high: each colour channel *= U(low, high), then clip.
  """
  scale_sigma: float
  rotation_sigma: float
  rotation_prob: float
  flip_prob: float
  color_low: float
  color_high: float

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "AugmentConfig":
    """The augmentation fields of a training config."""
    return cls(**{field.name: config[field.name]
                  for field in dataclasses.fields(cls)})


def decode_image(example):
  """Decodes the JPEG bytes (read with TFDS's SkipDecoding) to uint8 RGB.

  Changes `image`: a scalar string -> (H, W, 3) uint8.
  """
  image = tf.io.decode_jpeg(example["image"], channels=3)
  return {**example, "image": image}


def crop_params(example):
  """MPII objpos/scale -> the crop's centre and scale.

  Reads `center`, `scale`; adds `crop_center` (2,), `crop_scale` ().
  """
  center, scale = geometry.mpii_crop(example["center"], example["scale"],
                                     xp=tnp)
  return {**example, "crop_center": center, "crop_scale": scale}


def sample_augmentation(example, seed, config: AugmentConfig):
  """Draws one sample's augmentation from a stateless seed.

  Reads `crop_scale`; changes `crop_scale`; adds `rotation` (degrees), `flip`
  (bool) and `color` (3,) channel factors.
  """
  seeds = tf.random.experimental.stateless_split(seed, 5)
  s = config.scale_sigma
  scale_exp = tf.clip_by_value(
      tf.random.stateless_normal([], seeds[0]) * s, -2 * s, 2 * s)
  r = config.rotation_sigma
  rotation = tf.clip_by_value(
      tf.random.stateless_normal([], seeds[1]) * r, -2 * r, 2 * r)
  rotate = tf.random.stateless_uniform([], seeds[2]) < config.rotation_prob
  flip = tf.random.stateless_uniform([], seeds[3]) < config.flip_prob
  color = tf.random.stateless_uniform([3], seeds[4], config.color_low,
                                      config.color_high)
  return {**example,
          "crop_scale": example["crop_scale"] * tf.pow(2.0, scale_exp),
          "rotation": tf.where(rotate, rotation, 0.0),
          "flip": flip,
          "color": color}


def crop_and_target(example, codec: codec_lib.HeatmapCodec):
  """Warps the image into the crop and draws the heatmap targets.

  One affine matrix per resolution from the same centre, scale, rotation and
  flip, so image and joints move together and the image is resampled once.

  Reads `image` (H, W, 3) uint8, `joints` (16, 2), `annotated` (16,),
  `crop_center`, `crop_scale`, optional `rotation`, `flip`.
  Adds `input` (R, R, 3) float32 in [0, 1], `heatmaps` (R/4, R/4, 16),
  `target_weight` (16,).
  """
  rotation = example.get("rotation", tf.constant(0.0))
  flip = example.get("flip", tf.constant(False))
  center, scale = example["crop_center"], example["crop_scale"]
  image_matrix = geometry.affine_matrix(center, scale, codec.input_size,
                                        rotation, flip, xp=tnp)
  heatmap_matrix = geometry.affine_matrix(center, scale, codec.heatmap_size,
                                          rotation, flip, xp=tnp)
  image = tf.cast(example["image"], tf.float32) / 255.0
  crop = geometry.warp_image(image, image_matrix, codec.input_size)
  crop = tf.ensure_shape(crop, [codec.input_size, codec.input_size, 3])

  joints = geometry.apply_affine(heatmap_matrix, example["joints"], xp=tnp)
  annotated = tf.cast(example["annotated"], tf.bool)
  # In a mirrored crop the person's right side looks like a left side: swap.
  perm = tf.where(flip, tf.constant(mpii.FLIP_PERMUTATION, tf.int32),
                  tf.range(mpii.NUM_JOINTS, dtype=tf.int32))
  joints = tf.gather(joints, perm)
  annotated = tf.gather(annotated, perm)
  heatmaps, weights = codec.encode(joints, annotated)
  return {**example, "input": crop, "heatmaps": heatmaps,
          "target_weight": weights}


def color_jitter(example):
  """Multiplies each colour channel by its factor and clips to [0, 1].

  Reads `input`, `color`; changes `input`.
  """
  jittered = tf.clip_by_value(example["input"] * example["color"], 0.0, 1.0)
  return {**example, "input": jittered}


def head_size(example):
  """PCKh's head size: 0.6 x the head-box diagonal (`mpii.head_size`).

  Reads `head_box` (4,) x1, y1, x2, y2; adds `head_size` ().
  """
  box = tf.cast(example["head_box"], tf.float32)
  return {**example, "head_size": mpii.head_size(box, xp=tnp)}


# Other people of an image kept per evaluation example (MPII has up to 17
# people in one image; the synthetic set fewer).
MAX_OTHER_PEOPLE = 16
TRAIN_KEYS = ("image", "heatmaps", "target_weight")
EVAL_KEYS = TRAIN_KEYS + ("center", "scale", "joints", "annotated",
                          "head_size", "index", "person", "other_joints",
                          "other_annotated")


def train_example(example, seed, codec,
                  augment: Optional[AugmentConfig] = None):
  """One training example: crop, augmentation, targets.

  Returns a dict with `image` (R, R, 3) float32 in [0, 1], `heatmaps`
  (R/4, R/4, 16) float32 and `target_weight` (16,) float32.
  """
  example = crop_params(example)
  if augment is not None:
    example = sample_augmentation(example, seed, augment)
  example = crop_and_target(example, codec)
  if augment is not None:
    example = color_jitter(example)
  example["image"] = example["input"]
  return {k: example[k] for k in TRAIN_KEYS}


def eval_example(example, codec, max_other_people=MAX_OTHER_PEOPLE):
  """One evaluation example: the un-augmented crop plus what PCKh needs.

  Returns the training keys plus `center`, `scale` (the crop's, for mapping
  predictions back), `joints` (16, 2) original 0-based pixels, `annotated`,
  `head_size`, `index`, `person`, and the image's other people
  (`pad_other_people`, for the mask statistics).
  """
  example = head_size(crop_and_target(crop_params(example), codec))
  example["image"] = example["input"]
  example["center"] = example["crop_center"]
  example["scale"] = example["crop_scale"]
  example["joints"] = tf.cast(example["joints"], tf.float32)
  example["annotated"] = tf.cast(example["annotated"], tf.bool)
  example["index"] = tf.cast(example["index"], tf.int32)
  example["person"] = tf.cast(example["person"], tf.int32)
  example.update(pad_other_people(example, max_other_people))
  return {k: example[k] for k in EVAL_KEYS}


def pad_other_people(example, count):
  """`other_joints` (count, 16, 2) and `other_annotated` (count, 16) of the
  other people in the image, padded with unannotated people (or cut)."""
  joints = tf.cast(example["other_joints"], tf.float32)[:count]
  annotated = tf.cast(example["other_annotated"], tf.bool)[:count]
  missing = count - tf.shape(joints)[0]
  joints = tf.pad(joints, [[0, missing], [0, 0], [0, 0]])
  annotated = tf.pad(annotated, [[0, missing], [0, 0]])
  return {"other_joints": tf.ensure_shape(joints, [count, mpii.NUM_JOINTS, 2]),
          "other_annotated": tf.ensure_shape(annotated,
                                             [count, mpii.NUM_JOINTS])}
