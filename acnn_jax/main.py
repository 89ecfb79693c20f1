"""Trains one ACNN phase: `python -m acnn_jax.main --config=... --workdir=...`.

Flags only; the logic lives in `train.py`, which tests and notebooks import.

  python -m acnn_jax.main --config=configs/phase_b.py --workdir=runs/acnn \
      --config.manual_dir=/data/mpii --config.batch_size=24
"""

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from acnn_jax import cli
from acnn_jax import train

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
  config_flags.DEFINE_config_file(
      "config", None, "Training configuration file.", lock_config=True)
  flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv  # cli.run allows none.
  cli.hide_gpus_from_tensorflow()
  logging.info("JAX process %d / %d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  cli.run(main, define_flags)
