"""Crop geometry: the affine map from an original image to a person crop, and back.

One matrix per sample carries the crop, the scale and rotation augmentation and
the horizontal flip, so the image and its joints are moved by the same map and
the image is resampled once (docs/design.md section 3).

Conventions:
  * Coordinates are 0-based pixel indices: pixel (i, j) has its centre at
    x = j, y = i, in the original image and in every crop.
  * A crop of side `out_size` covers a square of `PIXEL_STD * scale` original
    pixels centred on `center`, where `center` and `scale` are already the
    crop's (see `mpii_crop`). Under that convention the same formula serves the
    256x256 input and the 64x64 heatmap: a heatmap pixel j sits at input-crop
    pixel 4j + 1.5, the centre of the 4x4 block it summarises.
  * Matrices are 2x3, `p_out = M[:, :2] @ p_in + M[:, 2]`.

The functions take an array namespace `xp` (numpy by default) so the very same
formula runs in numpy for inference and in TensorFlow graphs inside tf.data
(`xp=tf.experimental.numpy`).
"""

import numpy as np

from acnn_jax import mpii


def mpii_crop(center, scale, xp=np):
  """MPII's objpos/scale -> the crop's center and scale (pose-hg-train).

  Args:
    center: (2,) the person's `objpos` (0-based x, y).
    scale: MPII `scale` (person height / 200 px).
    xp: array namespace.

  Returns:
    (crop_center, crop_scale): the centre moved 15*scale px down and the scale
    padded by 1.25, so the crop side is 200 * 1.25 * scale px.
  """
  center = xp.asarray(center, dtype=xp.float32)
  scale = xp.asarray(scale, dtype=xp.float32)
  shift = xp.stack([xp.zeros_like(scale), mpii.CENTER_SHIFT_Y * scale])
  return center + shift, scale * mpii.SCALE_PADDING


def affine_matrix(center, scale, out_size, rotation=0.0, flip=False, xp=np):
  """The 2x3 matrix from original pixels to crop pixels.

  p_out = (out_size / (200 * scale)) * R(rotation) * F * (p_in - center)
          + (out_size - 1) / 2,
  with F = diag(-1, 1) when `flip` (a mirror about the crop's vertical axis).

  Args:
    center: (2,) crop centre (x, y) in original pixels.
    scale: crop scale; the crop covers 200 * scale original pixels.
    out_size: side of the output in pixels (input size or heatmap size).
    rotation: degrees, counter-clockwise as seen on screen (y points down).
    flip: mirror horizontally.
    xp: array namespace (numpy or tf.experimental.numpy).

  Returns:
    (2, 3) float32 matrix.
  """
  center = xp.asarray(center, dtype=xp.float32)
  factor = xp.asarray(out_size, dtype=xp.float32) / (
      mpii.PIXEL_STD * xp.asarray(scale, dtype=xp.float32))
  theta = xp.asarray(rotation, dtype=xp.float32) * (np.pi / 180.0)
  cos, sin = xp.cos(theta), xp.sin(theta)
  sign_x = xp.asarray(xp.where(xp.asarray(flip), -1.0, 1.0), dtype=xp.float32)
  # Rotation in image coordinates (y down): counter-clockwise on screen.
  linear = factor * xp.stack([
      xp.stack([cos * sign_x, sin]),
      xp.stack([-sin * sign_x, cos]),
  ])
  offset = (xp.asarray(out_size, dtype=xp.float32) - 1.0) / 2.0
  translation = offset - xp.matmul(linear, center[:, None])[:, 0]
  return xp.concatenate([linear, translation[:, None]], axis=1)


def invert_affine(matrix, xp=np):
  """Inverse of a 2x3 affine matrix (crop pixels -> original pixels)."""
  matrix = xp.asarray(matrix, dtype=xp.float32)
  a, b, c = matrix[0, 0], matrix[0, 1], matrix[0, 2]
  d, e, f = matrix[1, 0], matrix[1, 1], matrix[1, 2]
  det = a * e - b * d
  linear = xp.stack([xp.stack([e, -b]), xp.stack([-d, a])]) / det
  translation = -xp.matmul(linear, xp.stack([c, f])[:, None])[:, 0]
  return xp.concatenate([linear, translation[:, None]], axis=1)


def apply_affine(matrix, points, xp=np):
  """Maps points (..., 2) through a 2x3 matrix."""
  matrix = xp.asarray(matrix, dtype=xp.float32)
  points = xp.asarray(points, dtype=xp.float32)
  return xp.matmul(points, xp.transpose(matrix[:, :2])) + matrix[:, 2]


def crop_to_original(points, center, scale, size, rotation=0.0, flip=False,
                     xp=np):
  """Maps points of a crop back to original-image pixels.

  The inverse of `affine_matrix`: with `size` the heatmap's side it takes
  decoded heatmap coordinates to the image (evaluation and `predict.Predictor`,
  with `xp=jnp` inside jit), with the input size it takes input-crop pixels
  there (`predict.ExportedPredictor`); there is one inverse of the crop.

  Args:
    points: (..., K, 2) coordinates on the crop's pixel grid.
    center, scale: the crop's centre and scale (after `mpii_crop`).
    size: side of the crop (`out_size` of its `affine_matrix`).
    rotation, flip: the crop's rotation and flip, if any.
    xp: array namespace (numpy or jax.numpy).

  Returns:
    (..., K, 2) float32 coordinates in the original image (0-based).
  """
  matrix = affine_matrix(center, scale, size, rotation, flip, xp=xp)
  return apply_affine(invert_affine(matrix, xp=xp), points, xp=xp)


def warp_image(image, matrix, out_size):
  """Resamples `image` into an `out_size` square crop (TensorFlow, bilinear).

  Args:
    image: (H, W, C) float32 tensor.
    matrix: (2, 3) original -> crop matrix (from `affine_matrix`).
    out_size: output side in pixels.

  Returns:
    (out_size, out_size, C) float32 tensor; pixels outside the image are 0.
  """
  # Imported here so that decoding (`crop_to_original`, used by
  # `acnn_jax.inference`) works in research code without TensorFlow.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tnp = tf.experimental.numpy
  inverse = invert_affine(tf.cast(matrix, tf.float32), xp=tnp)
  # ImageProjectiveTransformV3 maps *output* pixel indices to input ones.
  transform = tf.concat([tf.reshape(inverse, [6]), tf.zeros([2])], axis=0)
  warped = tf.raw_ops.ImageProjectiveTransformV3(
      images=tf.cast(image, tf.float32)[None],
      transforms=transform[None],
      output_shape=tf.constant([out_size, out_size], tf.int32),
      fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
  return warped[0]


def warp_image_numpy(image, matrix, out_size):
  """`warp_image` in numpy, for inference without TensorFlow.

  The same sampling as TensorFlow's ImageProjectiveTransformV3 (bilinear,
  zeros outside the image), step for step in float32, so the crops match
  `warp_image`'s bit for bit (tests/test_export.py checks it).

  Args:
    image: (H, W, C) float32 array.
    matrix: (2, 3) original -> crop matrix (from `affine_matrix`).
    out_size: output side in pixels.

  Returns:
    (out_size, out_size, C) float32 array; pixels outside the image are 0.
  """
  image = np.asarray(image, np.float32)
  height, width = image.shape[:2]
  inverse = invert_affine(matrix).reshape(6)
  grid = np.arange(out_size, dtype=np.float32)
  y, x = np.meshgrid(grid, grid, indexing="ij")
  # Output pixel -> input position, as TensorFlow computes it.
  x_in = inverse[0] * x + inverse[1] * y + inverse[2]
  y_in = inverse[3] * x + inverse[4] * y + inverse[5]
  x0, y0 = np.floor(x_in), np.floor(y_in)
  x1, y1 = x0 + 1, y0 + 1

  def read(rows, cols):
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    values = image[np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1)]
    return np.where(inside[..., None], values, np.float32(0.0))

  top = ((x1 - x_in)[..., None] * read(y0, x0) +
         (x_in - x0)[..., None] * read(y0, x1))
  bottom = ((x1 - x_in)[..., None] * read(y1, x0) +
            (x_in - x0)[..., None] * read(y1, x1))
  return ((y1 - y_in)[..., None] * top +
          (y_in - y0)[..., None] * bottom).astype(np.float32)
