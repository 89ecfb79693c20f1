"""The heatmap function that evaluation and prediction share, and its decoding.

Evaluation (PCKh on MPII) and prediction on one's own images both go through
`make_predict_fn` (crops -> final heatmaps, with the flip test) and
`decode_to_original` (heatmaps -> joints in original-image pixels), so the two
can never disagree about the flip test or the decoding (docs/design.md
section 4).

Flip test: the image and its mirror run as one batch of 2B; the mirror's
heatmaps are flipped back along x, their left/right joints swapped
(`mpii.FLIP_PERMUTATION`) and averaged with the image's. In this project's
pixel-centre convention (see `geometry`) heatmap column j of a mirrored crop is
exactly column w - 1 - j of the original, so no shift is needed (Newell shifts
nothing); `flip_shift=True` reproduces HRNet/mmpose, which move the flipped-back
map one pixel to the right.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from acnn_jax import geometry
from acnn_jax import mpii

# Jitted functions kept per process by `built_once`: a run needs a handful
# (one per phase and setting); the bound only keeps a notebook that makes
# many models from holding all of their programs.
_BUILT_ONCE_SIZE = 32


def built_once(builder):
  """Decorates a builder of jitted functions so that equal arguments get the
  same function back, and with it the programs it has already compiled.

  A new `jax.jit` of a new closure compiles again even for an equal model:
  jit caches by the function object. Evaluation every few thousand steps
  of a training run, and every `predict.Predictor`, would each recompile
  the network. The arguments are the static things the program depends on
  (a flax module hashes by its fields, so `model.clone()` is the same key);
  unhashable arguments get a new function, as before.
  """
  cached = functools.lru_cache(maxsize=_BUILT_ONCE_SIZE)(builder)

  @functools.wraps(builder)
  def build(*key):
    try:
      hash(key)
    except TypeError:
      return builder(*key)
    return cached(*key)
  build.cache_clear = cached.cache_clear
  return build


def mirror_images(images):
  """Mirrors (B, H, W, C) images left-right."""
  return images[:, :, ::-1, :]


def shift_right(heatmaps):
  """Moves (..., h, w, K) heatmaps one pixel to the right (along w).

  out[..., 1:, :] = heatmaps[..., :-1, :]; column 0 keeps its own value, as in
  HRNet/mmpose `shift_heatmap` (`out[..., 1:] = out[..., :-1]` in NCHW).
  """
  return jnp.concatenate([heatmaps[..., :1, :], heatmaps[..., :-1, :]],
                         axis=-2)


def flip_back(heatmaps, shift=False, flip_permutation=mpii.FLIP_PERMUTATION):
  """Brings heatmaps of a mirrored image back to the un-mirrored frame.

  Args:
    heatmaps: (..., h, w, K) heatmaps predicted for mirrored images.
    shift: also move them one pixel to the right (HRNet/mmpose).
    flip_permutation: (K,) joint permutation swapping left and right.

  Returns:
    (..., h, w, K): flipped along w, joints swapped, optionally shifted.
  """
  heatmaps = jnp.asarray(heatmaps)
  permutation = jnp.asarray(np.asarray(flip_permutation))
  flipped = jnp.take(heatmaps[..., ::-1, :], permutation, axis=-1)
  return shift_right(flipped) if shift else flipped


def flip_average(heatmaps, mirrored_heatmaps, shift=False,
                 flip_permutation=mpii.FLIP_PERMUTATION):
  """The flip test: mean of `heatmaps` and the flipped-back mirror heatmaps.

  Args:
    heatmaps: (..., h, w, K) heatmaps of the images.
    mirrored_heatmaps: (..., h, w, K) heatmaps of their mirrors.
    shift: shift the flipped-back maps one pixel right (HRNet/mmpose).
    flip_permutation: (K,) left/right joint permutation.

  Returns:
    (..., h, w, K) averaged heatmaps.
  """
  return 0.5 * (jnp.asarray(heatmaps) +
                flip_back(mirrored_heatmaps, shift, flip_permutation))


def make_predict_fn(model, flip_test=True, flip_shift=False,
                    masks_to_one=False,
                    flip_permutation=mpii.FLIP_PERMUTATION):
  """The jitted heatmap function shared by evaluation and prediction.

  Args:
    model: an `models.ACNN` (anything with `apply(variables, images,
      train=False, masks_to_one=...)` returning an `ACNNOutput`).
    flip_test: average with the mirrored image's heatmaps (docs/design.md
      section 4).
    flip_shift: shift the flipped-back heatmaps one pixel right (HRNet/mmpose);
      ignored without `flip_test`.
    masks_to_one: run the network as the plain stacked hourglass (phase A
      checkpoints, whose attention heads are untrained).
    flip_permutation: (K,) left/right joint permutation (MPII's by default).

  Returns:
    A jitted `fn(variables, images) -> dict` for (B, H, W, 3) float32 images
    in [0, 1] (it can also be called inside `jax.pmap`); equal arguments
    give the same function (`built_once`), so it compiles once per process
    and input shape. It returns
      heatmaps: (B, h, w, K) the final prediction P_S, flip-averaged when
        `flip_test`;
      stage_predictions: (S, B, h, w, K) every stage's P_i, flip-averaged
        likewise (so `stage_predictions[-1] == heatmaps`);
      masks: (S, B, h, w, 1) the attention masks of the un-mirrored pass.
    The model runs with train=False (BatchNorm running statistics).
  """
  permutation = tuple(int(j) for j in np.asarray(flip_permutation))
  num_joints = getattr(model, "num_joints", len(permutation))
  if flip_test and len(permutation) != num_joints:
    raise ValueError(f"flip_permutation has {len(permutation)} joints but the "
                     f"model predicts {num_joints}.")
  # flip_shift means nothing without the flip test: one program for both.
  return _predict_fn(model, bool(flip_test), bool(flip_test and flip_shift),
                     bool(masks_to_one), permutation)


@built_once
def _predict_fn(model, flip_test, flip_shift, masks_to_one, permutation):
  """`make_predict_fn`'s function, one per setting (`built_once`)."""
  permutation = np.asarray(permutation)

  def predict(variables, images):
    images = jnp.asarray(images, jnp.float32)
    batch = images.shape[0]
    if flip_test:
      # One call on 2B images: a single compiled program, better device use.
      images = jnp.concatenate([images, mirror_images(images)], axis=0)
    output = model.apply(variables, images, train=False,
                         masks_to_one=masks_to_one)
    stage_predictions, masks = output.predictions, output.masks
    if flip_test:
      stage_predictions = flip_average(stage_predictions[:, :batch],
                                       stage_predictions[:, batch:],
                                       flip_shift, permutation)
      masks = masks[:, :batch]
    return dict(heatmaps=stage_predictions[-1], masks=masks,
                stage_predictions=stage_predictions)

  return jax.jit(predict)


@functools.partial(jax.jit, static_argnames=("codec",))
def decode_to_original(codec, heatmaps, centers, scales):
  """Decodes heatmaps and maps the joints back to original-image pixels.

  Args:
    codec: the `codec.HeatmapCodec` (argmax + quarter offset); its
      `heatmap_size` must match the heatmaps.
    heatmaps: (B, h, w, K) final heatmaps of B crops.
    centers: (B, 2) crop centres (x, y) in original pixels (after
      `geometry.mpii_crop` for MPII people).
    scales: (B,) crop scales (the crop covers 200 * scale original pixels).

  Returns:
    coords: (B, K, 2) float32 (x, y) in original pixels, 0-based, not rounded.
    confidences: (B, K) float32 heatmap peak values.
    Both are jax arrays (`np.asarray` them for numpy).
  """
  heatmaps = jnp.asarray(heatmaps, jnp.float32)
  size = codec.heatmap_size
  if heatmaps.ndim != 4 or heatmaps.shape[1:3] != (size, size):
    raise ValueError(f"decode_to_original expects (B, {size}, {size}, K) "
                     f"heatmaps for this codec, got {heatmaps.shape}.")
  coords, confidences = codec.decode(heatmaps)
  centers = jnp.asarray(centers, jnp.float32).reshape(-1, 2)
  scales = jnp.asarray(scales, jnp.float32).reshape(-1)
  to_original = functools.partial(geometry.crop_to_original, size=size,
                                  xp=jnp)
  return jax.vmap(to_original)(coords, centers, scales), confidences
