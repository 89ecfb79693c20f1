"""The demo: phases A, B and C of a small ACNN on the synthetic MPII-format set.

Sized for a 2-core CPU: `./launch.sh demo` runs the three phases in a row and
prints their PCKh tables. One phase by hand:

  python -m acnn_jax.main --config=configs/demo.py:a --workdir=runs/demo
  python -m acnn_jax.main --config=configs/demo.py:b --workdir=runs/demo
  python -m acnn_jax.main --config=configs/demo.py:c --workdir=runs/demo

Unlike the paper's recipe (configs/phase_*.py) the demo uses Adam: it
trains this small network faster than the paper's RMSProp (Torch7's, eps
outside the root) at any rate tried, in 300 steps and in the demo's 1500
(docs/measurements.md, "The demo's optimizer").

Phases B and C add the prior that rewards discarding (attention_sparsity),
and B learns at 1e-2: with the paper's loss alone (sparsity 0) at 1e-3 the
masks stay at their initial 0.98; at 1e-2 the background still keeps 0.90.
docs/experiments.md has the measurements both ways.
"""

from configs import default

# Per phase: (learning rate, steps); the rate drops x0.1 for the last 20%.
PHASES = {"a": (2.5e-3, 1500), "b": (1e-2, 200), "c": (5e-4, 200)}
# Measured on this demo (phase B from its phase A, 200 steps at 1e-2): 1e-4
# leaves 0.075 on the background, 3e-4 0.036 with 98.7% of the target's
# joints kept and A's Mean; 1e-3 cuts 27% of the joints away.
ATTENTION_SPARSITY = 3e-4


def get_config(phase="a"):
  config = default.get_config()
  config.phase = phase
  config.num_stacks = 2
  config.features = 64
  config.hourglass_depth = 3
  config.attention_features = 32
  config.input_size = 128
  config.synthetic_images = 600
  config.cache = True
  config.batch_size = 16
  config.optimizer = "adam"
  config.learning_rate, steps = PHASES[phase]
  config.attention_sparsity = ATTENTION_SPARSITY
  # "Epochs" of 100 steps keep the schedule, evaluation and checkpoints in
  # round numbers.
  config.steps_per_epoch = 100
  config.num_epochs = steps // 100
  config.lr_boundaries = (0.8 * config.num_epochs,)
  config.eval_every_epochs = 8
  config.log_every_steps = 100
  config.checkpoint_every_steps = 400
  config.num_pictures = 4
  return config
