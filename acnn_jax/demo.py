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

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/demo", "Where the demo writes.")
flags.DEFINE_string("phases", "abc", "Phases to run, in order.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # pylint: disable=g-import-not-at-top
  import jax
  import tensorflow as tf
  from acnn_jax import pckh
  from acnn_jax import train
  from configs import demo as demo_config
  # pylint: enable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
  logging.info("Devices: %s", jax.local_devices())
  tables, seconds = {}, {}
  start = time.time()
  for phase in FLAGS.phases:
    phase_start = time.time()
    tables[phase] = train.train_and_evaluate(demo_config.get_config(phase),
                                             FLAGS.workdir)
    seconds[phase] = time.time() - phase_start
    print(f"\nPhase {phase.upper()} ({seconds[phase]:.0f} s):\n"
          f"{pckh.format_table(tables[phase])}", flush=True)
  print(f"\nDemo finished in {time.time() - start:.0f} s; results, "
        f"checkpoints and pictures are in {FLAGS.workdir}/phase_*/.")
  for phase, table in tables.items():
    print(f"  phase {phase.upper()}: Mean {table['Mean']:.2f}  "
          f"Mean@0.1 {table['Mean@0.1']:.2f}  ({seconds[phase]:.0f} s)")


if __name__ == "__main__":
  app.run(main)
