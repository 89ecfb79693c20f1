"""The paper's recipe in configs/phase_{a,b,c}.py, pinned value by value.

The expected values are literals copied from the ACNN specification
(docs/design.md: section 1 for the network, section 2 for the training
recipe, section 3 for the data), not read from any config or code, so that a
changed value in a config file fails here until the specification says so.
"""

import importlib
import math

import pytest

from acnn_jax import models
from acnn_jax import phases

# docs/design.md section 2, the training table: per phase the learning rate,
# the epochs and the epochs at which the learning rate is multiplied by 0.1.
PHASE_TABLE = {
    "a": dict(phase="a", learning_rate=5e-4, num_epochs=200,
              lr_boundaries=(120, 170)),
    "b": dict(phase="b", learning_rate=2.5e-4, num_epochs=200,
              lr_boundaries=(120, 170)),
    "c": dict(phase="c", learning_rate=2.5e-4, num_epochs=100,
              lr_boundaries=(50, 70)),
}
# The same table: what each phase trains, whether its masks are all ones,
# and the phase whose checkpoint it starts from.
A, B = models.HEATMAP_TASK, models.ATTENTION_TASK
PHASE_TASKS = {
    "a": dict(trained={A}, frozen_task=B, masks_to_one=True, previous=None),
    "b": dict(trained={B}, frozen_task=A, masks_to_one=False, previous="a"),
    "c": dict(trained={A, B}, frozen_task=None, masks_to_one=False,
              previous="b"),
}

# docs/design.md section 2 (shared by the three phases): RMSProp as
# pose-hg-train runs it (alpha 0.99, eps 1e-8), lr x0.1 at each boundary,
# batch 12; the paper's loss has no extra attention term.
RECIPE = dict(
    optimizer="rmsprop", rmsprop_decay=0.99, rmsprop_eps=1e-8, lr_decay=0.1,
    batch_size=12, attention_sparsity=0.0,
    # docs/design.md section 1: the network.
    input_size=256, num_stacks=4, features=256, num_joints=16,
    hourglass_depth=4, attention=True, combine="gated",
    # docs/design.md section 3: targets and pose-hg-train's augmentation
    # (scale 2^clip(N(0,1) * 0.25, -0.5, 0.5), rotation clip(N(0,1) * 30,
    # -60, 60) with probability 0.4, flip 0.5, colour U(0.6, 1.4)).
    sigma=1.0, augment=True, scale_sigma=0.25, rotation_sigma=30.0,
    rotation_prob=0.4, flip_prob=0.5, color_low=0.6, color_high=1.4,
    # docs/design.md section 4: the flip test is on by default and, as in
    # Newell's code, shifts nothing.
    flip_test=True, flip_shift=False,
)


@pytest.mark.parametrize("phase", sorted(PHASE_TABLE))
def test_phase_config_is_the_papers_recipe(phase):
  config = importlib.import_module(f"configs.phase_{phase}").get_config()
  want = {**RECIPE, **PHASE_TABLE[phase]}
  got = {key: config[key] for key in want}
  got["lr_boundaries"] = tuple(got["lr_boundaries"])
  assert got == want
  # The steps per epoch follow the data (the paper's epochs are passes over
  # MPII's training people), not a fixed number.
  assert config.steps_per_epoch == -1
  # Attention masks start near one, so phase B starts from phase A's
  # behaviour (docs/design.md section 1).
  assert 1.0 / (1.0 + math.exp(-config.attention_bias_init)) > 0.9


@pytest.mark.parametrize("name", sorted(PHASE_TASKS))
def test_phase_trains_the_tasks_of_the_papers_table(name):
  phase = phases.PHASES[name]
  got = dict(trained=set(phase.trained), frozen_task=phase.frozen_task,
             masks_to_one=phase.masks_to_one, previous=phase.previous)
  assert got == PHASE_TASKS[name]
  assert A != B
