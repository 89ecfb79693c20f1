"""Per-example preprocessing ops for MPII people (TensorFlow, run in tf.data).

Each op takes and returns a dict of tensors (one person) and says which keys it
reads, changes and adds. Data flows:

* training: TFDS example (JPEG bytes) -> `crop_params` ->
  [`sample_augmentation`] -> `train_example`: the part of the JPEG the crop
  reaches, decoded and warped to a uint8 crop, with the colour factors and
  the joints in heatmap pixels; the device applies the colour and draws the
  heatmaps (`acnn_jax.training_batch`).
* evaluation: TFDS example -> `decode_image` -> `crop_params` ->
  `crop_and_target` (a float32 crop and the heatmaps) -> `eval_example`.

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
from acnn_jax import training_batch

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


def crop_matrices(example, codec: codec_lib.HeatmapCodec):
  """The original -> crop matrices of the input and of the heatmaps: the
  same centre, scale, rotation and flip, so image and joints move together.

  Reads `crop_center`, `crop_scale`, optional `rotation`, `flip`.
  """
  rotation = example.get("rotation", tf.constant(0.0))
  flip = example.get("flip", tf.constant(False))
  center, scale = example["crop_center"], example["crop_scale"]
  return tuple(geometry.affine_matrix(center, scale, size, rotation, flip,
                                      xp=tnp)
               for size in (codec.input_size, codec.heatmap_size))


def crop_and_target(example, codec: codec_lib.HeatmapCodec):
  """Warps the image into the crop and draws the heatmap targets.

  One affine matrix per resolution from the same centre, scale, rotation and
  flip, so image and joints move together and the image is resampled once.

  Reads `image` (H, W, 3) uint8, `joints` (16, 2), `annotated` (16,),
  `crop_center`, `crop_scale`, optional `rotation`, `flip`.
  Adds `input` (R, R, 3) float32 in [0, 1], `heatmaps` (R/4, R/4, 16),
  `target_weight` (16,).
  """
  image_matrix, heatmap_matrix = crop_matrices(example, codec)
  image = tf.cast(example["image"], tf.float32) / 255.0
  crop = geometry.warp_image(image, image_matrix, codec.input_size)
  crop = tf.ensure_shape(crop, [codec.input_size, codec.input_size, 3])

  joints, annotated = crop_joints(example, heatmap_matrix)
  heatmaps, weights = codec.encode(joints, annotated)
  return {**example, "input": crop, "heatmaps": heatmaps,
          "target_weight": weights}


def head_size(example):
  """PCKh's head size: 0.6 x the head-box diagonal (`mpii.head_size`).

  Reads `head_box` (4,) x1, y1, x2, y2; adds `head_size` ().
  """
  box = tf.cast(example["head_box"], tf.float32)
  return {**example, "head_size": mpii.head_size(box, xp=tnp)}


def source_window(inverse, image_height, image_width, out_size,
                  margin: int = 0):
  """The part of the source image that a warp into the crop reads.

  Bilinear sampling at position (x, y) reads the pixels floor(x) and
  floor(x) + 1 (and the same in y), so the crop reads no pixel outside the
  box spanned by its four corner pixels' source positions, widened by one.

  Args:
    inverse: (2, 3) crop -> source matrix (`geometry.invert_affine`).
    image_height, image_width: the source image's size.
    out_size: the crop's side.
    margin: pixels added on every side (within the image).

  Returns:
    (4,) int32 [y, x, height, width] inside the image, at least 1 x 1 (a
    crop wholly outside the image reads nothing, and its one edge pixel
    does not change it).
  """
  last = tf.cast(out_size - 1, tf.float32)
  corners = tf.constant([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  source = geometry.apply_affine(inverse, corners * last, xp=tnp)
  low = tf.cast(tf.floor(tf.reduce_min(source, axis=0)), tf.int32) - margin
  high = (tf.cast(tf.floor(tf.reduce_max(source, axis=0)), tf.int32) + 1 +
          margin)
  size = tf.stack([image_width, image_height]) - 1  # Last (x, y) inside.
  low = tf.clip_by_value(low, 0, size)
  high = tf.clip_by_value(high, low, size)
  extent = high - low + 1
  return tf.stack([low[1], low[0], extent[1], extent[0]])


# The largest JPEG block (a 4:2:0 MCU): 16 x 16 pixels.
_JPEG_BLOCK = 16


def warp_from_source(image, matrix, out_size):
  """The crop as uint8: only the part of the image it reads is decoded.

  Args:
    image: the JPEG's bytes (a scalar string, as the TFDS builder stores
      them) or the decoded (H, W, 3) uint8 image.
    matrix: (2, 3) original -> crop matrix (`geometry.affine_matrix`).
    out_size: the crop's side.

  Returns:
    (out_size, out_size, 3) uint8, the floor of the bilinear samples of
    `geometry.warp_image` (zeros outside the image).
  """
  encoded = image.dtype == tf.string
  shape = tf.io.extract_jpeg_shape(image) if encoded else tf.shape(image)
  inverse = geometry.invert_affine(tf.cast(matrix, tf.float32), xp=tnp)
  # A cropped decode upsamples the colour planes at the window's edges
  # from fewer neighbours than a whole one: decode one 16-pixel block more
  # on every side, so that the pixels the warp reads are the same.
  window = source_window(inverse, shape[0], shape[1], out_size,
                         margin=_JPEG_BLOCK if encoded else 0)
  if encoded:
    # libjpeg skips the colour conversion and inverse DCT of the blocks
    # outside the window, and stops after its last row.
    pixels = tf.io.decode_and_crop_jpeg(image, window, channels=3)
  else:
    pixels = tf.slice(image, [window[0], window[1], 0],
                      [window[2], window[3], 3])
  # The window's pixel (0, 0) is the image's (x, y) = (window[1], window[0]).
  origin = tf.cast(tf.stack([window[1], window[0]]), tf.float32)
  inverse = tf.concat([inverse[:, :2], (inverse[:, 2] - origin)[:, None]], 1)
  # ImageProjectiveTransformV3 maps *output* pixel indices to input ones.
  transform = tf.concat([tf.reshape(inverse, [6]), tf.zeros([2])], axis=0)
  crop = tf.raw_ops.ImageProjectiveTransformV3(
      images=pixels[None], transforms=transform[None],
      output_shape=tf.constant([out_size, out_size], tf.int32),
      fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
  return tf.ensure_shape(crop, [out_size, out_size, 3])


def crop_joints(example, matrix):
  """The joints in the crop of `matrix`, left and right swapped when the
  crop is mirrored: (16, 2) positions and (16,) annotated flags.

  Reads `joints`, `annotated`, optional `flip`.
  """
  flip = example.get("flip", tf.constant(False))
  joints = geometry.apply_affine(matrix, example["joints"], xp=tnp)
  annotated = tf.cast(example["annotated"], tf.bool)
  # In a mirrored crop the person's right side looks like a left side: swap.
  perm = tf.where(flip, tf.constant(mpii.FLIP_PERMUTATION, tf.int32),
                  tf.range(mpii.NUM_JOINTS, dtype=tf.int32))
  return tf.gather(joints, perm), tf.gather(annotated, perm)


# Other people of an image kept per evaluation example (MPII has up to 17
# people in one image; the synthetic set fewer).
MAX_OTHER_PEOPLE = 16
TRAIN_KEYS = training_batch.COMPACT_KEYS
EVAL_KEYS = ("image", "heatmaps", "target_weight", "center", "scale",
             "joints", "annotated", "head_size", "index", "person",
             "other_joints", "other_annotated")


def train_example(example, seed, codec,
                  augment: Optional[AugmentConfig] = None):
  """One training example, compact (`acnn_jax.training_batch`): the crop
  and the joints; the device applies the colour and draws the heatmaps.

  The augmentation is drawn before any pixel is read, so only the part of
  the image the crop reaches is decoded (`warp_from_source`), and the
  uint8 crop is a quarter of the bytes a float32 one would be.

  Args:
    example: a TFDS example; `image` the JPEG's bytes or the decoded image.
    seed: (2,) int64 stateless seed of this example's augmentation.
    codec: the heatmap codec (input and heatmap sizes).
    augment: the augmentation; None for none.

  Returns:
    `image` (R, R, 3) uint8, `color` (3,) float32, `target_joints` (16, 2)
    float32 in heatmap pixels, `target_weight` (16,) float32.
  """
  example = crop_params(example)
  if augment is not None:
    example = sample_augmentation(example, seed, augment)
  image_matrix, heatmap_matrix = crop_matrices(example, codec)
  joints, annotated = crop_joints(example, heatmap_matrix)
  return {
      "image": warp_from_source(example["image"], image_matrix,
                                codec.input_size),
      "color": example.get("color", tf.ones([3], tf.float32)),
      "target_joints": joints,
      "target_weight": codec.target_weight(joints, annotated, xp=tnp),
  }


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
