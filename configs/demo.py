"""The demo: phases A, B and C of a small ACNN on the synthetic MPII-format set.

Sized for a 2-core CPU: `./launch.sh demo` runs the three phases in a row and
prints their PCKh tables. One phase by hand:

  python -m acnn_jax.main --config=configs/demo.py:a --workdir=runs/demo
  python -m acnn_jax.main --config=configs/demo.py:b --workdir=runs/demo
  python -m acnn_jax.main --config=configs/demo.py:c --workdir=runs/demo

Unlike the paper's recipe (configs/phase_*.py) the demo uses Adam: it
trained this small network faster than the paper's RMSProp (Torch7's, eps
outside the root) at any rate tried, in 300 and in 1500 steps of the earlier
demo (docs/measurements.md, "The demo's optimizer").

The synthetic people carry their sides in colour (left limbs warm, right
limbs cool), and a mirror image of such a person is not a person of the
set: its warm limbs are on the right. Mirroring training crops (with the
joints' labels swapped, as for real people) therefore makes colour say
"left" half the time and "right" the other half, and the network learns to
put each left joint on top of its right twin. So the demo neither mirrors
training crops nor averages with the mirrored crop at evaluation
(flip_prob 0, flip_test off; docs/measurements.md, "The demo's recipe").
Real MPII keeps both: real people look alike in a mirror.

Phases B and C add the prior that rewards discarding (attention_sparsity),
and B learns at 1e-2: with the paper's loss alone (sparsity 0) at 1e-3 the
masks stay at their initial 0.98; at 1e-2 the background still keeps 0.90.
docs/experiments.md has the measurements both ways.
"""

from configs import default

# Per phase: (learning rate, steps); the rate drops x0.1 for the last 20%.
PHASES = {"a": (2.5e-3, 700), "b": (1e-2, 150), "c": (5e-4, 150)}
STEPS_PER_EPOCH = 50
# Measured on the earlier demo (phase B from its phase A, 200 steps at
# 1e-2): 1e-4 leaves 0.075 on the background, 3e-4 0.036 with 98.7% of the
# target's joints kept and A's Mean; 1e-3 cuts 27% of the joints away.
ATTENTION_SPARSITY = 3e-4


def get_config(phase="a"):
  config = default.get_config()
  config.phase = phase
  config.num_stacks = 2
  config.features = 64
  config.hourglass_depth = 3
  config.attention_features = 32
  config.input_size = 128
  # About 570 validation people (a fifth of the people, whole images).
  config.synthetic_images = 2000
  config.cache = True
  config.batch_size = 16
  config.optimizer = "adam"
  config.learning_rate, steps = PHASES[phase]
  config.attention_sparsity = ATTENTION_SPARSITY
  # Colour tells left from right here: no mirroring (see above).
  config.flip_prob = 0.0
  config.flip_test = False
  # "Epochs" of 50 steps keep the schedule and checkpoints in round numbers;
  # each phase is evaluated once, at its end.
  config.steps_per_epoch = STEPS_PER_EPOCH
  config.num_epochs = steps // STEPS_PER_EPOCH
  config.lr_boundaries = (0.8 * config.num_epochs,)
  config.eval_every_epochs = config.num_epochs
  config.log_every_steps = 50
  config.checkpoint_every_steps = 200
  config.num_pictures = 4
  return config
