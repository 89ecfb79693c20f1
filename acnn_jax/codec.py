"""The heatmap codec: joints -> Gaussian targets (encode), heatmaps -> joints (decode).

One object owns both directions (mmpose's `MSRAHeatmap` idea), so training
targets and inference decoding can never drift apart. Coordinates are heatmap
pixel indices (see `geometry`): pixel (i, j) has its centre at x = j, y = i.

* encode (tf.data for evaluation, jax.numpy inside the train step): an
  unnormalised Gaussian with peak 1 and `sigma` heatmap pixels, centred at
  the joint's sub-pixel position, for every annotated joint that falls
  inside the heatmap; weight 0 otherwise.
* decode (jax.numpy, jittable; numpy arrays in, jax arrays out): argmax of each
  heatmap, moved a quarter pixel towards the higher neighbour in x and in y
  when not on the border (Newell / pose-hg-train), and the peak value as the
  joint's confidence.
* to_crop / decode_to_crop: heatmap pixels -> pixels of the network's input
  crop. Heatmap pixel j summarises the `stride` x `stride` block of input
  pixels stride * j .. stride * j + stride - 1, so its centre is input pixel
  stride * j + (stride - 1) / 2 (4j + 1.5 for the hourglass). This is the
  only place that step is written: evaluation's pictures, `predict`'s
  exported function and its outputs all go through it. (To original-image
  pixels, `geometry.crop_to_original` inverts the crop instead.)
"""

import dataclasses

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class HeatmapCodec:
  """Encodes joints as Gaussian heatmaps and decodes heatmaps into joints.

  Attributes:
    input_size: side of the network input (a multiple of `stride`).
    sigma: Gaussian standard deviation in heatmap pixels (1 in
      docs/design.md section 3).
    stride: input pixels per heatmap pixel (4 for the hourglass).
  """
  input_size: int = 256
  sigma: float = 1.0
  stride: int = 4

  def __post_init__(self):
    if self.input_size <= 0 or self.input_size % self.stride:
      raise ValueError(f"input_size must be a positive multiple of "
                       f"{self.stride}, got {self.input_size}.")
    if self.sigma <= 0:
      raise ValueError(f"sigma must be positive, got {self.sigma}.")

  @property
  def heatmap_size(self) -> int:
    return self.input_size // self.stride

  def encode(self, joints, annotated, xp=None):
    """Gaussian targets for one person or a batch of them.

    Written once for two array namespaces: tf.experimental.numpy in tf.data
    (evaluation's targets) and jax.numpy on the device, inside the jitted
    train step (`acnn_jax.training_batch`), so both draw the same numbers.

    Args:
      joints: (..., K, 2) float joint positions in heatmap pixels (x, y).
      annotated: (..., K) bool, whether each joint is annotated.
      xp: the array namespace; None means tf.experimental.numpy.

    Returns:
      heatmaps: (..., h, h, K) float32, peak 1 at each kept joint, zeros
        elsewhere.
      weights: (..., K) float32, 1 for annotated joints inside the heatmap.
    """
    if xp is None:
      # Imported here: decoding (jax) must work without TensorFlow.
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      xp = tf.experimental.numpy
    size = self.heatmap_size
    joints = xp.asarray(joints, dtype=xp.float32)
    weights = self.target_weight(joints, annotated, xp)
    grid = xp.arange(size, dtype=xp.float32)
    dx = grid[:, None] - joints[..., None, None, :, 0]  # (..., 1, w, K)
    dy = grid[:, None, None] - joints[..., None, None, :, 1]  # (..., h, 1, K)
    gauss = xp.exp(-(dx * dx + dy * dy) / (2.0 * self.sigma ** 2))
    return gauss * weights[..., None, None, :], weights

  def target_weight(self, joints, annotated, xp):
    """(..., K) float32: 1 for annotated joints inside the heatmap, else 0.

    A joint counts as inside when it lies on the heatmap's area, i.e. within
    half a pixel of the outermost pixel centres.
    """
    size = self.heatmap_size
    joints = xp.asarray(joints, dtype=xp.float32)
    inside = xp.all((joints >= -0.5) & (joints < size - 0.5), axis=-1)
    kept = xp.logical_and(xp.asarray(annotated, dtype=xp.bool_), inside)
    return xp.asarray(kept, dtype=xp.float32)

  def decode(self, heatmaps):
    """Joint positions and confidences from heatmaps (jittable).

    Args:
      heatmaps: (..., h, w, K) heatmaps.

    Returns:
      coords: (..., K, 2) float32 (x, y) in heatmap pixels.
      maxvals: (..., K) float32 peak values.
    """
    heatmaps = jnp.asarray(heatmaps, jnp.float32)
    *batch, h, w, k = heatmaps.shape
    flat = jnp.moveaxis(heatmaps, -1, -3).reshape(*batch, k, h * w)
    index = jnp.argmax(flat, axis=-1)
    maxvals = jnp.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
    x, y = index % w, index // w

    def value(dx, dy):
      xi = jnp.clip(x + dx, 0, w - 1)
      yi = jnp.clip(y + dy, 0, h - 1)
      return jnp.take_along_axis(flat, (yi * w + xi)[..., None], axis=-1)[..., 0]

    shift_x = jnp.where((x > 0) & (x < w - 1),
                        0.25 * jnp.sign(value(1, 0) - value(-1, 0)), 0.0)
    shift_y = jnp.where((y > 0) & (y < h - 1),
                        0.25 * jnp.sign(value(0, 1) - value(0, -1)), 0.0)
    coords = jnp.stack([x + shift_x, y + shift_y], axis=-1).astype(jnp.float32)
    return coords, maxvals

  def to_crop(self, coords):
    """Heatmap pixels -> input-crop pixels (jittable).

    Args:
      coords: (..., 2) (x, y) in heatmap pixels (`decode`'s coords).

    Returns:
      (..., 2) float32 (x, y) in input-crop pixels: stride * c +
      (stride - 1) / 2, exact in float32 for decoded (quarter-pixel) coords.
    """
    coords = jnp.asarray(coords, jnp.float32)
    return coords * self.stride + (self.stride - 1) / 2.0

  def decode_to_crop(self, heatmaps):
    """`decode`, with the joints in input-crop pixels (jittable).

    Args:
      heatmaps: (..., h, w, K) heatmaps of crops of side `input_size`.

    Returns:
      coords: (..., K, 2) float32 (x, y) in input-crop pixels (0-based pixel
        centres).
      maxvals: (..., K) float32 peak values.
    """
    coords, maxvals = self.decode(heatmaps)
    return self.to_crop(coords), maxvals
