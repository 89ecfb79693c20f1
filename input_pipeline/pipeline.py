"""tf.data pipelines for MPII: this host's batches of crops and targets.

`create_dataset` reads a split of the `mpii` TFDS data set, takes this host's
part of it (`tfds.split_for_jax_process`, so several hosts never read the same
people), crops, augments and batches. `acnn_jax.parallel` then splits the host
batches over the local devices.

Batches are dicts:
  train: compact (`acnn_jax.training_batch`, expanded on the device):
    `image` (B, R, R, 3) uint8, `color` (B, 3), `target_joints` (B, 16, 2)
    in heatmap pixels, `target_weight` (B, 16) float32.
  eval: `image` (B, R, R, 3) float32 in [0, 1], `heatmaps` (B, R/4, R/4,
    16) float32, `target_weight` (B, 16), `center` (B, 2), `scale` (B,)
    (the crop's),
    `joints` (B, 16, 2) (original 0-based pixels), `annotated` (B, 16),
    `head_size` (B,), `index`, `person` (B,) and `mask` (B,): 1 for real
    people, 0 for the padding that fills the last batch, so every person of the
    split is evaluated exactly once.
"""

from typing import Optional

import jax
import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from acnn_jax import codec as codec_lib
from acnn_jax import errors
from input_pipeline import preprocess


# Epoch e of seed s shuffles with seed s * _EPOCH_SEEDS + e: distinct for
# every (s, e) a run can reach.
_EPOCH_SEEDS = 1_000_003
_NO_END = 2**62


def host_batch_size(global_batch_size: int) -> int:
  """This host's share of the global batch.

  `acnn_jax.configuration.validate` makes the global batch a multiple of the
  device count, hence of the host count.
  """
  return global_batch_size // jax.process_count()


def _pad_batch(batch, batch_size):
  """Pads every tensor of a (possibly short) batch to `batch_size` rows."""
  def pad(x):
    missing = batch_size - tf.shape(x)[0]
    paddings = [[0, missing]] + [[0, 0]] * (len(x.shape) - 1)
    return tf.pad(x, paddings)
  return {k: pad(v) for k, v in batch.items()}


def create_dataset(config: ml_collections.ConfigDict, split: str,
                   builder: tfds.core.DatasetBuilder, *,
                   train: Optional[bool] = None,
                   batch_size: Optional[int] = None,
                   start_step: int = 0) -> tf.data.Dataset:
  """Batches of one split of MPII for this host.

  Args:
    config: reads `input_size`, `sigma`, `batch_size` (global), `seed`,
      `shuffle_buffer`, `augment` and the augmentation fields of
      `preprocess.AugmentConfig`, `cache` (keep the split's examples, JPEG
      bytes as stored, in memory after the first epoch: no file reads
      after it, but every epoch still decodes; for small data sets).
    split: a TFDS split, e.g. 'train' or 'validation'.
    builder: the prepared `mpii` builder (`input_pipeline.mpii_builder`).
    train: shuffle, repeat forever, augment, drop the last partial batch.
      Defaults to `split == 'train'`.
    batch_size: global batch size; defaults to `config.batch_size`.
    start_step: (train) the batches start with the one that step
      `start_step + 1` trains on: a resumed run continues the stream exactly.

  Returns:
    A `tf.data.Dataset` of host batches (see the module docstring). The order,
    the augmentation included, is a pure function of `config.seed` (and of
    the host and the step, in training).

  Raises:
    errors.InputError: this host's share of a training split is empty.
  """
  train = split == "train" if train is None else train
  batch = host_batch_size(batch_size or config.batch_size)
  codec = codec_lib.HeatmapCodec(config.input_size, config.sigma)
  host_split = tfds.split_for_jax_process(split, drop_remainder=train)
  # The builder keeps the files' order (validation follows valid.h5), so the
  # shuffle happens below, on still-encoded images: a large buffer of JPEG
  # bytes costs far less memory than one of decoded images.
  ds = builder.as_dataset(split=host_split, shuffle_files=False,
                          decoders={"image": tfds.decode.SkipDecoding()})
  if config.cache:
    ds = ds.cache()

  if train:
    augment = (preprocess.AugmentConfig.from_config(config) if config.augment
               else None)
    num_host = builder.info.splits[host_split].num_examples
    if num_host == 0:
      raise errors.InputError(
          f"The {split} split of {builder.data_dir} holds no example for "
          f"this host ({host_split}).")
    # The stream is a pure function of (seed, position): epoch e is the
    # split shuffled with seed (seed, e), and the n-th example of the stream
    # is augmented with seed (seed, n). A run resumed at `start_step` so gets
    # exactly the batches an uninterrupted run sees from there, reading at
    # most one epoch of encoded images to get there.
    first = start_step * batch
    first_epoch, skip = divmod(first, num_host)
    seed = tf.cast(config.seed, tf.int64)

    def epoch(e):
      return ds.shuffle(config.shuffle_buffer, seed=seed * _EPOCH_SEEDS + e,
                        reshuffle_each_iteration=False)

    ds = tf.data.Dataset.range(first_epoch, _NO_END).flat_map(epoch)
    ds = tf.data.Dataset.zip(tf.data.Dataset.counter(first), ds.skip(skip))
    ds = ds.map(
        lambda n, ex: preprocess.train_example(
            ex, tf.stack([seed, n]), codec, augment),
        num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch, drop_remainder=True)
  else:
    ds = ds.map(lambda ex: {**preprocess.eval_example(
        preprocess.decode_image(ex), codec),
                            "mask": tf.constant(1.0)},
                num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch).map(lambda b: _pad_batch(b, batch))
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
