"""The training batch: what the input pipeline sends, and what the step
trains on, drawn from it on the device.

The host sends each training person compactly (`input_pipeline.preprocess.
train_example`), a quarter of the float32 image and no heatmaps:

  `image` (..., R, R, 3) uint8: the warped crop, each value the floor of the
    bilinear sample (TensorFlow's uint8 resampling truncates);
  `color` (..., 3) float32: the colour factors of the augmentation (ones
    without it);
  `target_joints` (..., 16, 2) float32: the joints in heatmap pixels, left
    and right already swapped in a mirrored crop;
  `target_weight` (..., 16) float32: 1 for annotated joints inside the crop.

`expand` turns it into the model's input and targets inside the jitted step:
the image in [0, 1] with its colour factors applied, and the Gaussian
heatmaps drawn by the same `codec.HeatmapCodec.encode` that evaluation's
tf.data pipeline uses. A batch that already holds `heatmaps` (random batches
of benchmarks, research code) passes through unchanged.
"""

from typing import Any, Dict

import jax.numpy as jnp

from acnn_jax import codec as codec_lib

COMPACT_KEYS = ("image", "color", "target_joints", "target_weight")


def expand(batch: Dict[str, Any], sigma: float) -> Dict[str, Any]:
  """The model's input and targets from a compact batch (jittable).

  Args:
    batch: a compact batch (the module docstring), or one with `image`
      (..., R, R, 3) float in [0, 1], `heatmaps` and `target_weight`, which
      is returned as it is.
    sigma: the Gaussians' standard deviation in heatmap pixels
      (`config.sigma`).

  Returns:
    `image` (..., R, R, 3) float32 in [0, 1], `heatmaps` (..., R/4, R/4, 16)
    float32 and `target_weight` (..., 16) float32.
  """
  if "heatmaps" in batch:
    return batch
  pixels = batch["image"]
  # +0.5: the host's uint8 crop truncated each bilinear sample, so its value
  # v stands for [v, v + 1); the middle is within half a level of the
  # sample, as rounding would be.
  image = (pixels.astype(jnp.float32) + 0.5) / 255.0
  image = jnp.clip(image * batch["color"][..., None, None, :], 0.0, 1.0)
  codec = codec_lib.HeatmapCodec(input_size=pixels.shape[-2], sigma=sigma)
  heatmaps, weights = codec.encode(batch["target_joints"],
                                   batch["target_weight"] > 0, xp=jnp)
  return {"image": image, "heatmaps": heatmaps, "target_weight": weights}
