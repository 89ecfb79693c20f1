"""Training-pipeline throughput on the synthetic MPII-format set (a benchmark).

Prints images/s of `pipeline.create_dataset` (decode, one affine warp,
augmentation, Gaussian targets, batching) with tf.data limited to 1 core and
with all cores, and of a plain numpy/PIL loop doing the same work per image,
for the ratio (docs/measurements.md, "Data throughput"). Run:

  python benchmarks/input_pipeline_throughput.py [--num_images=200] \
      [--input_size=256] [--batches=40]
"""

import io
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from acnn_jax import cli
from acnn_jax import codec as codec_lib
from acnn_jax import geometry
from acnn_jax import mpii
from configs import default
from input_pipeline import mpii_builder
from input_pipeline import mpii_official
from input_pipeline import pipeline
from input_pipeline import preprocess
from input_pipeline import synthetic

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 200, "Synthetic images to generate.")
flags.DEFINE_integer("input_size", 256, "Crop side.")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("batches", 40, "Batches to time (after 5 warm-up ones).")
flags.DEFINE_string("workdir", "", "Reuse this folder ('' = a temporary one).")


def _config():
  config = default.get_config()
  config.input_size = FLAGS.input_size
  config.batch_size = FLAGS.batch_size
  return config


def time_tf_data(builder, threads: int) -> float:
  options = tf.data.Options()
  options.threading.private_threadpool_size = threads
  ds = pipeline.create_dataset(_config(), "train", builder)
  ds = ds.with_options(options)
  it = ds.as_numpy_iterator()
  for _ in range(5):
    next(it)
  start = time.time()
  for _ in range(FLAGS.batches):
    next(it)
  return FLAGS.batches * FLAGS.batch_size / (time.time() - start)


def _gaussians(joints, size, sigma=1.0):
  grid = np.arange(size, dtype=np.float32)
  dx = grid[None, :, None] - joints[None, None, :, 0]
  dy = grid[:, None, None] - joints[None, None, :, 1]
  return np.exp(-(dx * dx + dy * dy) / (2 * sigma ** 2))


def time_numpy_reference(builder) -> float:
  """The same per-image work with PIL (decode, affine warp) and numpy."""
  codec = codec_lib.HeatmapCodec(FLAGS.input_size)
  augment = preprocess.AugmentConfig.from_config(_config())
  ds = builder.as_dataset(split="train", decoders={
      "image": tfds.decode.SkipDecoding()})
  records = list(ds.take(FLAGS.batch_size * 10).as_numpy_iterator())
  rng = np.random.default_rng(0)
  count = FLAGS.batches * FLAGS.batch_size
  start = time.time()
  for i in range(count):
    rec = records[i % len(records)]
    image = Image.open(io.BytesIO(rec["image"])).convert("RGB")
    center, scale = geometry.mpii_crop(rec["center"], rec["scale"])
    s, r = augment.scale_sigma, augment.rotation_sigma
    scale = scale * 2 ** np.clip(rng.normal() * s, -2 * s, 2 * s)
    rotation = (np.clip(rng.normal() * r, -2 * r, 2 * r)
                if rng.random() < augment.rotation_prob else 0)
    flip = rng.random() < augment.flip_prob
    matrix = geometry.affine_matrix(center, scale, codec.input_size, rotation,
                                    flip)
    inverse = geometry.invert_affine(matrix)
    crop = image.transform((codec.input_size,) * 2, Image.Transform.AFFINE,
                           inverse.reshape(-1), Image.Resampling.BILINEAR)
    crop = np.asarray(crop, np.float32) / 255.0
    crop = np.clip(crop * rng.uniform(augment.color_low, augment.color_high,
                                      3), 0, 1)
    hm_matrix = geometry.affine_matrix(center, scale, codec.heatmap_size,
                                       rotation, flip)
    joints = geometry.apply_affine(hm_matrix, rec["joints"])
    if flip:
      joints = joints[mpii.FLIP_PERMUTATION]
    _gaussians(joints, codec.heatmap_size)
  return count / (time.time() - start)


def main(argv):
  del argv
  cli.hide_gpus_from_tensorflow()
  root = FLAGS.workdir or tempfile.mkdtemp(prefix="acnn_pipeline_bench_")
  raw = os.path.join(root, "raw")
  if not os.path.exists(os.path.join(raw, mpii_official.VALID_H5_FILE)):
    synthetic.generate(raw, FLAGS.num_images, seed=0)
  builder = mpii_builder.build(raw, os.path.join(root, "tfds"))
  cores = os.cpu_count()
  one = time_tf_data(builder, 1)
  every = time_tf_data(builder, cores)
  reference = time_numpy_reference(builder)
  print(f"input {FLAGS.input_size}x{FLAGS.input_size}, batch "
        f"{FLAGS.batch_size}, {FLAGS.batches} batches")
  print(f"tf.data, 1 core:        {one:8.1f} images/s")
  print(f"tf.data, {cores} cores:       {every:8.1f} images/s")
  print(f"numpy/PIL loop, 1 core: {reference:8.1f} images/s")
  print(f"ratio tf.data all cores / numpy: {every / reference:.2f}")


if __name__ == "__main__":
  app.run(main)
