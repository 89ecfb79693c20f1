"""The optimizer of a phase: learning-rate schedule, RMSProp or Adam, and the
frozen task (docs/design.md section 2).

The paper trains with pose-hg-train's RMSProp, Torch7's `optim.rmsprop`
(PyTorch's `RMSprop` is the same), and a step schedule:

  m <- alpha * m + (1 - alpha) * g**2     (m starts at 0)
  p <- p - lr * g / (sqrt(m) + eps)       (alpha 0.99, eps 1e-8)

with no momentum and no weight decay. eps is outside the root: optax's
default puts it inside (`eps_in_sqrt=True`), which floors the denominator at
sqrt(1e-8) = 1e-4 and moves every parameter whose gradient rms is below that
(most of them, under a heatmap MSE averaged over B x 64 x 64 x 16 values)
up to 100 times less than the paper's optimizer does. Both forms keep the
same state (one mean square per parameter), so checkpoints written before
the change resume. The task a phase does not
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
    config: reads optimizer ('rmsprop', Torch7's as above, or 'adam'),
      rmsprop_decay (alpha) and rmsprop_eps.
    params: the parameter tree (or its shapes), for the task labels.
    learning_rate_fn: step -> learning rate.
    phase: what the phase trains.
  """
  if config.optimizer == "rmsprop":
    inner = optax.rmsprop(learning_rate_fn, decay=config.rmsprop_decay,
                          eps=config.rmsprop_eps, eps_in_sqrt=False)
  else:
    inner = optax.adam(learning_rate_fn)
  transforms = {task: inner if task in phase.trained else optax.set_to_zero()
                for task in models.TASKS}
  return optax.multi_transform(transforms, models.task_labels(params))
