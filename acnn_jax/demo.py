"""`./launch.sh demo`: ACNN's three phases on the synthetic MPII-format set.

Writes the synthetic set (official MPII layout) into the workdir, prepares it
through the TFDS builder, trains phases A, B and C of `configs/demo.py` one
after the other (each evaluated, with pictures in phase_<p>/pictures/), and
prints the three PCKh tables. Sized for a 2-core CPU.

  python -m acnn_jax.demo [--workdir=runs/demo] [--phases=abc]
"""

import time

from absl import app
from absl import flags
from absl import logging
import jax

from acnn_jax import cli
from acnn_jax import mask_stats
from acnn_jax import pckh
from acnn_jax import phases as phases_lib
from acnn_jax import train
from configs import demo as demo_config

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", "runs/demo", "Where the demo writes.")
  flags.DEFINE_string("phases", "".join(phases_lib.NAMES),
                      "Phases to run, in order.")


def main(argv):
  del argv  # cli.run allows none.
  unknown = sorted(set(FLAGS.phases) - set(phases_lib.NAMES))
  if unknown:
    raise app.UsageError(
        f"--phases={FLAGS.phases}: unknown phases {unknown}; use letters of "
        f"{''.join(phases_lib.NAMES)!r}.")
  cli.hide_gpus_from_tensorflow()
  logging.info("Devices: %s", jax.local_devices())
  tables, seconds = {}, {}
  start = time.time()
  for phase in FLAGS.phases:
    phase_start = time.time()
    tables[phase] = train.train_and_evaluate(demo_config.get_config(phase),
                                             FLAGS.workdir)
    seconds[phase] = time.time() - phase_start
    print(f"\nPhase {phase.upper()} ({seconds[phase]:.0f} s):\n"
          f"{pckh.format_table(tables[phase])}"
          f"{mask_stats.format_stats(mask_stats.select(tables[phase]))}",
          flush=True)
  print(f"\nDemo finished in {time.time() - start:.0f} s; results, "
        f"checkpoints and pictures are in {FLAGS.workdir}/phase_*/.")
  for phase, table in tables.items():
    print(f"  phase {phase.upper()}: Mean {table['Mean']:.2f}  "
          f"Mean@0.1 {table['Mean@0.1']:.2f}  ({seconds[phase]:.0f} s)")


if __name__ == "__main__":
  cli.run(main, define_flags)
