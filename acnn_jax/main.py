"""Trains one ACNN phase: `python -m acnn_jax.main --config=... --workdir=...`.

Flags only; the logic lives in `train.py`, which tests and notebooks import.

  python -m acnn_jax.main --config=configs/phase_b.py --workdir=runs/acnn \
      --config.manual_dir=/data/mpii --config.batch_size=24

Several hosts (one process each, see `distributed`): the same command on
every host, plus --coordinator_address, --num_processes and --process_id
(none of them on a TPU pod slice or under SLURM, where JAX finds them).
"""

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from acnn_jax import cli
from acnn_jax import distributed
from acnn_jax import output_paths
from acnn_jax import train

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", None, "Directory for checkpoints and logs.")
  config_flags.DEFINE_config_file(
      "config", None, "Training configuration file.", lock_config=True)
  flags.mark_flags_as_required(["config", "workdir"])
  flags.DEFINE_string(
      "coordinator_address", None, "Multi-host runs: host:port of process "
      "0, the same on every process (default: $JAX_COORDINATOR_ADDRESS, or "
      "detected by JAX on SLURM, Open MPI and TPU pods).")
  flags.DEFINE_integer("num_processes", None, "Multi-host runs: how many "
                       "processes (default: $JAX_NUM_PROCESSES, or detected).")
  flags.DEFINE_integer("process_id", None, "Multi-host runs: this process's "
                       "index, 0 on the coordinator (default: "
                       "$JAX_PROCESS_ID, or detected).")


def main(argv):
  del argv  # cli.run allows none.
  # Before any work: a workdir it cannot write would fail after the data.
  output_paths.folder(FLAGS.workdir, "--workdir")
  # Before anything looks at the devices.
  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                         FLAGS.process_id)
  cli.hide_gpus_from_tensorflow()
  logging.info("JAX process %d of %d: %d local devices of %d in all (%s).",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform)
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  cli.run(main, define_flags)
