"""Training-input throughput from MPII-sized JPEGs to the device (a benchmark).

What a GPU host's cores can feed: each source is a JPEG of `--source_size`
(MPII's photos are mostly 1280x720) holding one person whose scale follows
MPII's range (`--scales`, log-uniform; MPII's validation people span 1.4 to
8.6 between their 5th and 95th percentiles, median 3.4), and every example
goes the training way: the augmentation of configs/default.py, the crop of
`--input_size`, batching, the copy to the device and, for the compact batch,
`training_batch.expand` there (colour, heatmaps), blocked on.

Two paths on the same sources, in the same run, for their ratio:

* `compact` (the pipeline's): `preprocess.train_example`, which decodes only
  the part of the JPEG the crop reaches, sends a uint8 crop and the joints,
  and lets the device draw the heatmaps;
* `reference` (the pipeline before it): the whole JPEG decoded, a float32
  warp, the heatmaps drawn on the host, float32 image and heatmaps sent.

The sources live in memory (tf.data from tensors), so the figures leave out
reading the TFDS files: a sequential read, small beside decoding.

Prints one JSON line per (path, cores): `images_per_s` (to the device),
`host_images_per_s` (tf.data alone), `bytes_per_example` (what is sent),
`cores`, `source_size`, `source_kb`, `input_size`, `path`. Run:

  python benchmarks/input_pipeline_throughput.py [--source_size=1280x720] \
      [--cores=1,2] [--input_size=256] [--batch_size=32] [--batches=20]
"""

import io
import json
import math
import os
import sys
import time

from absl import app
from absl import flags
import jax
import numpy as np
from PIL import Image
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from acnn_jax import cli
from acnn_jax import codec as codec_lib
from acnn_jax import mpii
from acnn_jax import parallel
from acnn_jax import training_batch
from configs import default
from input_pipeline import preprocess
from input_pipeline import synthetic
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("source_size", "1280x720", "Width x height of the JPEGs.")
flags.DEFINE_list("scales", ["1.4", "8.6"],
                  "Range of the people's MPII scale (height / 200 px), drawn "
                  "log-uniform.")
flags.DEFINE_list("cores", ["1", "2"], "tf.data thread counts to time.")
flags.DEFINE_list("paths", ["compact", "reference"], "Paths to time.")
flags.DEFINE_integer("num_sources", 32, "Distinct source images.")
flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the sources.")
flags.DEFINE_float("noise", 8.0,
                   "Grain (pixel standard deviation) added to the sources: "
                   "with quality 95, about 490 KB per 1280x720 JPEG, near "
                   "MPII's average (12.9 GB for 24,987 images).")
flags.DEFINE_integer("input_size", 256, "Crop side.")
flags.DEFINE_integer("batch_size", 32, "Host batch size.")
flags.DEFINE_integer("batches", 20, "Batches to time (after 3 warm-up ones).")


def parse_size(text: str) -> tuple[int, int]:
  """'1280x720' -> (1280, 720)."""
  width, height = (int(v) for v in text.lower().split("x"))
  return width, height


def make_sources(count, size, scales, quality, noise, seed=0):
  """`count` MPII-like people, each in its own JPEG of `size` (w, h).

  The pictures are the synthetic set's renderings, stretched to the size,
  with grain so that they cost what a photo costs to decode (their texture,
  not their people, matters here); each person is a box of
  MPII's scale with its 16 joints inside, placed so that its centre is in
  the picture.
  """
  rng = np.random.default_rng(seed)
  width, height = size
  examples = {"image": [], "center": [], "scale": [], "joints": [],
              "annotated": []}
  for _ in range(count):
    picture, _ = synthetic.render(rng, (max(64, width // 3),) * 2, 1)
    pixels = np.asarray(picture.resize(size, Image.BILINEAR), np.float32)
    pixels += rng.normal(0.0, noise, pixels.shape)
    encoded = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        encoded, "JPEG", quality=quality)
    scale = math.exp(rng.uniform(math.log(scales[0]), math.log(scales[1])))
    center = rng.uniform([0.2 * width, 0.2 * height],
                         [0.8 * width, 0.8 * height])
    half = 100.0 * scale
    joints = center + rng.uniform(-0.4, 0.4, (mpii.NUM_JOINTS, 2)) * half
    examples["image"].append(encoded.getvalue())
    examples["center"].append(center.astype(np.float32))
    examples["scale"].append(np.float32(scale))
    examples["joints"].append(joints.astype(np.float32))
    examples["annotated"].append(np.ones(mpii.NUM_JOINTS, bool))
  return {k: np.asarray(v) if k != "image" else v
          for k, v in examples.items()}


def reference_example(example, seed, codec, augment):
  """The training example as the pipeline made it before the compact one:
  the whole image decoded, a float32 crop, heatmaps drawn on the host."""
  example = preprocess.crop_params(preprocess.decode_image(example))
  example = preprocess.sample_augmentation(example, seed, augment)
  example = preprocess.crop_and_target(example, codec)
  image = tf.clip_by_value(example["input"] * example["color"], 0.0, 1.0)
  return {"image": image, "heatmaps": example["heatmaps"],
          "target_weight": example["target_weight"]}


def dataset(sources, path, cores, codec, augment, batch_size):
  """The sources, repeated, mapped the `path` way on `cores` threads."""
  ds = tf.data.Dataset.from_tensor_slices(sources).repeat()
  ds = tf.data.Dataset.zip(tf.data.Dataset.counter(), ds)
  make = (preprocess.train_example if path == "compact" else
          reference_example)
  ds = ds.map(lambda n, ex: make(ex, tf.stack([tf.constant(0, tf.int64), n]),
                                 codec, augment),
              num_parallel_calls=cores)
  ds = ds.batch(batch_size, drop_remainder=True)
  options = tf.data.Options()
  options.threading.private_threadpool_size = cores
  options.threading.max_intra_op_parallelism = 1
  return ds.with_options(options).prefetch(2)


def time_path(sources, path, cores, codec, augment):
  """One JSON record: throughput of `path` on `cores` threads."""
  batches = FLAGS.batches
  ds = dataset(sources, path, cores, codec, augment, FLAGS.batch_size)
  host = ds.as_numpy_iterator()
  for _ in range(3):
    next(host)
  start = time.perf_counter()
  for _ in range(batches):
    batch = next(host)
  host_s = time.perf_counter() - start
  bytes_per_example = sum(v.nbytes for v in batch.values()) / FLAGS.batch_size

  expand = jax.jit(lambda b: training_batch.expand(b, 1.0))
  on_device = parallel.prefetch(ds.as_numpy_iterator())
  for _ in range(3):
    jax.block_until_ready(expand(next(on_device)))
  start = time.perf_counter()
  for _ in range(batches):
    jax.block_until_ready(expand(next(on_device)))
  device_s = time.perf_counter() - start
  count = batches * FLAGS.batch_size
  return {"path": path, "cores": cores, "source_size": FLAGS.source_size,
          "input_size": FLAGS.input_size,
          "images_per_s": round(count / device_s, 1),
          "host_images_per_s": round(count / host_s, 1),
          "bytes_per_example": int(bytes_per_example),
          "source_kb": round(np.mean([len(b) for b in sources["image"]]) /
                             1024),
          "jax_platform": jax.default_backend()}


def main(argv):
  del argv
  cli.hide_gpus_from_tensorflow()
  size = parse_size(FLAGS.source_size)
  scales = [float(s) for s in FLAGS.scales]
  sources = make_sources(FLAGS.num_sources, size, scales, FLAGS.jpeg_quality,
                         FLAGS.noise)
  codec = codec_lib.HeatmapCodec(FLAGS.input_size)
  augment = preprocess.AugmentConfig.from_config(default.get_config())
  for cores in (int(c) for c in FLAGS.cores):
    for path in FLAGS.paths:
      print(json.dumps(time_path(sources, path, cores, codec, augment)),
            flush=True)


if __name__ == "__main__":
  app.run(main)
