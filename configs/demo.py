"""The demo: phases A, B and C of a small ACNN on the synthetic MPII-format set.

Sized for a 2-core CPU (`./launch.sh demo` runs all three phases in a row and
prints their PCKh tables). One phase by hand:

  python -m acnn_jax.main --config=configs/demo.py:a --workdir=runs/demo
  python -m acnn_jax.main --config=configs/demo.py:b --workdir=runs/demo
  python -m acnn_jax.main --config=configs/demo.py:c --workdir=runs/demo
"""

from configs import default

# Per phase: (learning rate, steps). The paper's 2:2:1 split of epochs, shrunk.
PHASES = {"a": (1e-3, 1500), "b": (5e-4, 400), "c": (5e-4, 400)}


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
  config.learning_rate, steps = PHASES[phase]
  # One "epoch" of 100 steps keeps the schedule, evaluation and checkpoints
  # in round numbers; the rate drops x0.1 for the last 20% of each phase.
  config.steps_per_epoch = 100
  config.num_epochs = steps // 100
  config.lr_boundaries = (0.8 * config.num_epochs,)
  config.eval_every_epochs = 5
  config.log_every_steps = 50
  config.checkpoint_every_steps = 250
  config.num_pictures = 4
  return config
