"""The optimizer of a phase: learning-rate schedule, RMSProp or Adam, and the
frozen task (ACNN.md section 2).

The paper trains with pose-hg-train's RMSProp (alpha 0.99, eps 1e-8, no
momentum, no weight decay) and a step schedule. The task a phase does not
train gets `optax.set_to_zero()` inside `optax.multi_transform`, labelled by
`models.task_labels`.

A config is anything with the fields read here (a `ml_collections.ConfigDict`
of configs/, or a namespace in `benchmarks/train_step.py`, which runs where
ml_collections is not installed); so is the model's in `models.create_model`.
"""

import optax

from acnn_jax import models
from acnn_jax import phases

OPTIMIZERS = ("rmsprop", "adam")


def create_learning_rate_fn(config,
                            steps_per_epoch: int):
  """Piecewise constant: `learning_rate`, times `lr_decay` at each epoch of
  `lr_boundaries`."""
  boundaries = {int(b * steps_per_epoch): config.lr_decay
                for b in config.lr_boundaries}
  return optax.piecewise_constant_schedule(config.learning_rate, boundaries)


def create_optimizer(config, params,
                     learning_rate_fn, phase: phases.Phase
                     ) -> optax.GradientTransformation:
  """The phase's optimizer: `config.optimizer` on the trained tasks,
  `optax.set_to_zero()` on the frozen one.

  Args:
    config: reads optimizer ('rmsprop' or 'adam'), rmsprop_decay and
      rmsprop_eps.
    params: the parameter tree (or its shapes), for the task labels.
    learning_rate_fn: step -> learning rate.
    phase: what the phase trains.
  """
  if config.optimizer == "rmsprop":
    inner = optax.rmsprop(learning_rate_fn, decay=config.rmsprop_decay,
                          eps=config.rmsprop_eps)
  else:
    inner = optax.adam(learning_rate_fn)
  transforms = {task: inner if task in phase.trained else optax.set_to_zero()
                for task in models.TASKS}
  return optax.multi_transform(transforms, models.task_labels(params))
