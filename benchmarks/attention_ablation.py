"""Does attention help? The same network and budget three ways, on synthetic data.

For each seed, trains and evaluates on the synthetic MPII-format set:

  plain  the stacked hourglass: phase A (masks at one) for the whole budget
  abc    ACNN's recipe: A, then B (attention heads only), then C (both)
  ac     A, then C directly (no attention-only phase)

with the same network, the same total number of steps and the same data, and
prints one table: PCKh Mean, Mean@0.1, per joint, where the first mask looks
(`acnn_jax.mask_stats`) and the time. Each run is `train.train_and_evaluate`,
so every workdir can be opened in TensorBoard or with `acnn_jax.evaluate`.

On the 2-core CPU (about 20 minutes per seed with the defaults, 40 in all):

  python benchmarks/attention_ablation.py --workdir=/tmp/ablation

At full size on a GPU (the paper's network on 256x256 crops):

  python benchmarks/attention_ablation.py --workdir=/tmp/ablation_full \\
      --num_stacks=4 --features=256 --attention_features=64 \\
      --hourglass_depth=4 --input_size=256 --batch_size=32 --steps=20000 \\
      --synthetic_images=6000 --seeds=0,1,2

The phases' learning rates and the attention prior are the demo's
(`configs/demo.py`); a run's `eval_results.json` holds every figure.
"""

import os
import time

from absl import app
from absl import flags
import numpy as np

from acnn_jax import cli
from acnn_jax import mask_stats
from acnn_jax import mpii
from acnn_jax import train
from configs import demo as demo_config

FLAGS = flags.FLAGS

# The budget's shares per variant, in training order.
VARIANTS = {
    "plain": (("a", 1.0),),
    "abc": (("a", 0.7), ("b", 0.15), ("c", 0.15)),
    "ac": (("a", 0.7), ("c", 0.3)),
}


def define_flags():
  flags.DEFINE_string("workdir", "/tmp/acnn_ablation", "Where runs go.")
  flags.DEFINE_list("seeds", ["0", "1"], "Initialisation and data seeds.")
  flags.DEFINE_list("variants", list(VARIANTS), "Which variants to run.")
  flags.DEFINE_integer("steps", 400, "Total training steps of each run.")
  flags.DEFINE_integer("num_stacks", 2, "Hourglass stages.")
  flags.DEFINE_integer("features", 32, "Feature width.")
  flags.DEFINE_integer("attention_features", 16, "Attention heads' width.")
  flags.DEFINE_integer("hourglass_depth", 3, "Hourglass levels.")
  flags.DEFINE_integer("input_size", 128, "Crop side.")
  flags.DEFINE_integer("batch_size", 16, "Global batch.")
  flags.DEFINE_integer("synthetic_images", 600, "Synthetic images to write.")


def phase_config(phase, steps, seed, data_root):
  """The demo's config of `phase`, resized by the flags, for `steps` steps."""
  config = demo_config.get_config(phase)
  for name in ("num_stacks", "features", "attention_features",
               "hourglass_depth", "input_size", "batch_size",
               "synthetic_images"):
    config[name] = getattr(FLAGS, name)
  config.seed = seed
  config.manual_dir = os.path.join(data_root, "synthetic_mpii")
  config.data_dir = os.path.join(data_root, "tfds")
  # One "epoch" is the phase: the rate drops x0.1 for its last 20%, and it
  # is evaluated (and saved) once, at its end.
  config.steps_per_epoch = steps
  config.num_epochs = 1
  config.lr_boundaries = (0.8,)
  config.eval_every_epochs = 1
  config.checkpoint_every_steps = steps
  config.log_every_steps = max(1, steps // 4)
  # Pictures cost a minute per phase on the CPU and add nothing to the
  # table; `python -m acnn_jax.evaluate` draws them from any run.
  config.num_pictures = 0
  return config


def run_variant(name, seed, data_root):
  """Trains one variant's phases in a fresh workdir; returns (results, s)."""
  workdir = os.path.join(FLAGS.workdir, f"{name}_seed{seed}")
  start = time.time()
  previous = None
  results = None
  for phase, share in VARIANTS[name]:
    steps = max(1, round(share * FLAGS.steps))
    config = phase_config(phase, steps, seed, data_root)
    if previous is not None:  # A -> C skips B: start C from A explicitly.
      config.init_from = os.path.join(workdir, f"phase_{previous}")
    results = train.train_and_evaluate(config, workdir)
    previous = phase
  return results, time.time() - start


def _row(name, runs):
  """One table row: the mean over seeds (and the spread of Mean)."""
  keys = ["Mean", "Mean@0.1"] + [column for column, _ in mpii.PCKH_COLUMNS]
  masks = ["mask/stage_1/" + s for s in mask_stats.STATS]
  values = {k: np.mean([r[k] for r, _ in runs]) for k in keys}
  spread = np.ptp([r["Mean"] for r, _ in runs])
  cells = [name, f"{values['Mean']:.2f} ± {spread / 2:.2f}"]
  cells += [f"{values[k]:.2f}" for k in keys[1:]]
  for key in masks:
    found = [r[key] for r, _ in runs if key in r]
    cells.append(f"{np.mean(found):.3f}" if found else "-")
  cells.append(f"{np.mean([s for _, s in runs]):.0f}")
  header = (["variant", "Mean"] + keys[1:] +
            ["M1 " + s for s in mask_stats.STATS] + ["s/run"])
  return header, cells


def main(argv):
  del argv  # cli.run allows none.
  cli.hide_gpus_from_tensorflow()
  unknown = sorted(set(FLAGS.variants) - set(VARIANTS))
  if unknown:
    raise app.UsageError(f"--variants: unknown {unknown}; use some of "
                         f"{list(VARIANTS)}.")
  data_root = os.path.join(FLAGS.workdir, "data")
  runs = {name: [] for name in FLAGS.variants}
  for seed in FLAGS.seeds:
    for name in FLAGS.variants:
      runs[name].append(run_variant(name, int(seed), data_root))
  rows = [_row(name, got) for name, got in runs.items()]
  header = rows[0][0]
  print(f"\n{FLAGS.steps} steps per run, seeds {','.join(FLAGS.seeds)}; "
        "Mean is the mean over seeds ± half their range.")
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for _, cells in rows:
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
  cli.run(main, define_flags)
