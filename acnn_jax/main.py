"""Trains one ACNN phase: `python -m acnn_jax.main --config=... --workdir=...`.

Flags only; the logic lives in `train.py`, which tests and notebooks import.

  python -m acnn_jax.main --config=configs/phase_b.py --workdir=runs/acnn \
      --config.manual_dir=/data/mpii --config.batch_size=24
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
config_flags.DEFINE_config_file(
    "config", None, "Training configuration file.", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # pylint: disable=g-import-not-at-top
  import jax
  import tensorflow as tf
  from acnn_jax import train
  # pylint: enable=g-import-not-at-top
  # TensorFlow only feeds data: keep it off the GPUs that JAX uses.
  tf.config.set_visible_devices([], "GPU")
  logging.info("JAX process %d / %d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
