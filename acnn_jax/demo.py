"""`./launch.sh demo`: ACNN's three phases on the synthetic MPII-format set.

Writes the synthetic set (official MPII layout) into the workdir, prepares it
through the TFDS builder, trains phases A, B and C of `configs/demo.py` one
after the other (each evaluated, with pictures in phase_<p>/pictures/), and
prints the three PCKh tables. Sized for a 2-core CPU.

  python -m acnn_jax.demo [--workdir=runs/demo] [--phases=abc] [--seed=0]

`--seed` changes the initialisation, the order of the training examples and
their augmentation, not the synthetic images: every seed is scored on the
same validation people.
"""

import time
from typing import Any, Dict

from absl import app
from absl import flags
from absl import logging
import jax

from acnn_jax import cli
from acnn_jax import mask_stats
from acnn_jax import output_paths
from acnn_jax import pckh
from acnn_jax import phases as phases_lib
from acnn_jax import train
from configs import demo as demo_config

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", "runs/demo", "Where the demo writes.")
  flags.DEFINE_string("phases", "".join(phases_lib.NAMES),
                      "Phases to run, in order.")
  flags.DEFINE_integer("seed", 0, "Seed of the initialisation, the example "
                       "order and the augmentation (config.seed).")


def run(workdir: str, phases: str = "".join(phases_lib.NAMES),
        seed: int = 0) -> Dict[str, Dict[str, Any]]:
  """Trains and evaluates `configs/demo.py`'s phases in order in `workdir`.

  Args:
    workdir: the demo's folder (data, checkpoints, results, pictures).
    phases: the phases to run, in order (letters of 'abc').
    seed: `config.seed` of every phase.

  Returns:
    {phase: its evaluation record (PCKh table, mask statistics, num_people)}.
  """
  tables, seconds = {}, {}
  start = time.time()
  for phase in phases:
    phase_start = time.time()
    config = demo_config.get_config(phase)
    config.seed = seed
    tables[phase] = train.train_and_evaluate(config, workdir)
    seconds[phase] = time.time() - phase_start
    print(f"\nPhase {phase.upper()} ({seconds[phase]:.0f} s):\n"
          f"{pckh.format_table(tables[phase])}"
          f"{mask_stats.format_stats(mask_stats.select(tables[phase]))}",
          flush=True)
  print(f"\nDemo finished in {time.time() - start:.0f} s; results, "
        f"checkpoints and pictures are in {workdir}/phase_*/.")
  for phase, table in tables.items():
    print(f"  phase {phase.upper()}: Mean {table['Mean']:.2f}  "
          f"Mean@0.1 {table['Mean@0.1']:.2f}  ({seconds[phase]:.0f} s)")
  return tables


def main(argv):
  del argv  # cli.run allows none.
  unknown = sorted(set(FLAGS.phases) - set(phases_lib.NAMES))
  if unknown:
    raise app.UsageError(
        f"--phases={FLAGS.phases}: unknown phases {unknown}; use letters of "
        f"{''.join(phases_lib.NAMES)!r}.")
  output_paths.folder(FLAGS.workdir, "--workdir")  # Before any work.
  cli.hide_gpus_from_tensorflow()
  logging.info("Devices: %s", jax.local_devices())
  run(FLAGS.workdir, FLAGS.phases, FLAGS.seed)


if __name__ == "__main__":
  cli.run(main, define_flags)
