"""Does attention help? The same network and budget three ways, on synthetic data.

For each seed, trains and evaluates on the synthetic MPII-format set:

  plain  the stacked hourglass: phase A (masks at one) for the whole budget
  abc    ACNN's recipe: A, then B (attention heads only), then C (both)
  ac     A, then C directly (no attention-only phase)

with the same network, the same total number of steps and the same data, and
prints one table: PCKh Mean, Mean@0.1, per joint, where the first mask looks
(`acnn_jax.mask_stats`) and the time, each as the mean over the seeds with
its [min, max]. Each run is `train.train_and_evaluate`, so every workdir can
be opened in TensorBoard or with `acnn_jax.evaluate`.

By default it is the demo's recipe (`configs/demo.py`: network, crop, data,
learning rates, the demo's total steps, B and C their share of them) over
seeds 0, 1 and 2:

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


def _demo_steps(phase):
  return demo_config.PHASES[phase][1]


DEMO_STEPS = sum(_demo_steps(p) for p in "abc")
# The budget's shares per variant, in training order: ACNN's as the demo
# splits it; A -> C gives B's share to C.
_A_SHARE = _demo_steps("a") / DEMO_STEPS
VARIANTS = {
    "plain": (("a", 1.0),),
    "abc": (("a", _A_SHARE), ("b", _demo_steps("b") / DEMO_STEPS),
            ("c", _demo_steps("c") / DEMO_STEPS)),
    "ac": (("a", _A_SHARE), ("c", 1.0 - _A_SHARE)),
}
# The fields the flags below may resize (None: the demo's value).
RESIZABLE = ("num_stacks", "features", "attention_features", "hourglass_depth",
             "input_size", "batch_size", "synthetic_images")


def define_flags():
  flags.DEFINE_string("workdir", "/tmp/acnn_ablation", "Where runs go.")
  flags.DEFINE_list("seeds", ["0", "1", "2"],
                    "Initialisation, example-order and augmentation seeds.")
  flags.DEFINE_list("variants", list(VARIANTS), "Which variants to run.")
  flags.DEFINE_integer("steps", DEMO_STEPS, "Total training steps of each run "
                       "(default: the demo's three phases together).")
  flags.DEFINE_integer("num_stacks", None, "Hourglass stages.")
  flags.DEFINE_integer("features", None, "Feature width.")
  flags.DEFINE_integer("attention_features", None, "Attention heads' width.")
  flags.DEFINE_integer("hourglass_depth", None, "Hourglass levels.")
  flags.DEFINE_integer("input_size", None, "Crop side.")
  flags.DEFINE_integer("batch_size", None, "Global batch.")
  flags.DEFINE_integer("synthetic_images", None, "Synthetic images to write.")


def phase_config(phase, steps, seed, data_root):
  """The demo's config of `phase`, resized by the flags, for `steps` steps."""
  config = demo_config.get_config(phase)
  for name in RESIZABLE:
    if getattr(FLAGS, name) is not None:
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


def run_variant(name, seed, data_root, shared_a=None):
  """Trains one variant's phases in a fresh workdir; returns (results, s).

  With `shared_a` (a finished phase A of the same seed, steps and data:
  A -> B -> C's, for A -> C) the variant starts from it instead of training
  the same phase A again; its time then counts only its own phases.
  """
  workdir = os.path.join(FLAGS.workdir, f"{name}_seed{seed}")
  start = time.time()
  previous = None
  results = None
  for phase, share in VARIANTS[name]:
    if phase == "a" and shared_a is not None:
      previous = shared_a
      continue
    steps = max(1, round(share * FLAGS.steps))
    config = phase_config(phase, steps, seed, data_root)
    if previous is not None:  # A -> C skips B: start C from A explicitly.
      config.init_from = previous
    results = train.train_and_evaluate(config, workdir)
    previous = os.path.join(workdir, f"phase_{phase}")
  return results, time.time() - start


def summary_rows(runs):
  """The table of `runs` ({variant: [(results, seconds), ...]}): a header
  and, per variant, the mean over seeds of each figure with its [min, max]
  (Mean, Mean@0.1, the first mask's statistics) or alone (the joints)."""
  spread = ["Mean", "Mean@0.1"] + ["mask/stage_1/" + s for s in
                                   mask_stats.STATS]
  joints = [column for column, _ in mpii.PCKH_COLUMNS]
  header = (["variant", "Mean", "Mean@0.1"] + joints +
            ["M1 " + s for s in mask_stats.STATS] + ["s/run"])
  rows = []
  for name, got in runs.items():
    def cell(key, digits, with_range):
      found = [r[key] for r, _ in got if key in r]
      if not found:
        return "-"
      text = f"{np.mean(found):.{digits}f}"
      if with_range:
        text += f" [{np.min(found):.{digits}f}, {np.max(found):.{digits}f}]"
      return text
    cells = [name] + [cell(k, 2, True) for k in spread[:2]]
    cells += [cell(k, 2, False) for k in joints]
    cells += [cell(k, 3, True) for k in spread[2:]]
    cells.append(f"{np.mean([s for _, s in got]):.0f}")
    rows.append(cells)
  return header, rows


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
      # A -> B -> C and A -> C begin with the same phase A: train it once.
      shared_a = None
      if name == "ac" and "abc" in FLAGS.variants:
        shared_a = os.path.join(FLAGS.workdir, f"abc_seed{seed}", "phase_a")
      runs[name].append(run_variant(name, int(seed), data_root, shared_a))
  header, rows = summary_rows(runs)
  print(f"\n{FLAGS.steps} steps per run, seeds {','.join(FLAGS.seeds)}; "
        "each figure is the mean over the seeds [min, max]; A -> C starts "
        "from A -> B -> C's phase A (its s/run leaves that out).")
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for cells in rows:
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
  cli.run(main, define_flags)
