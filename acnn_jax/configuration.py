"""What a training config may hold, and what follows from it.

`configs/default.py` declares every field with its meaning; this module is
the one place that checks their values (`validate`, called before anything is
written), derives values from them (`eval_batch_size`) and reads configs saved
by earlier runs (`complete`). Model fields are checked by the model itself
(`models.ACNN.check_fields`), with the messages naming `config.<field>`.
"""

import json
import math
from typing import Any, Dict, Tuple

import jax
import ml_collections

from acnn_jax import errors
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import phases
from configs import default

# Fields that say where the data is, not what is trained: a run may move it.
LOCATION_FIELDS = ("data_dir", "manual_dir")
# Fields that fix the shapes of a saved training state: a checkpoint resumes
# only with the values that wrote it.
STATE_FIELDS = ("num_stacks", "features", "num_joints", "hourglass_depth",
                "attention", "attention_features", "optimizer")

# Fields that must be > 0.
_POSITIVE = ("batch_size", "learning_rate", "num_epochs", "input_size",
             "num_stacks", "features", "hourglass_depth", "log_every_steps",
             "checkpoint_every_steps", "keep_checkpoints", "sigma",
             "eval_every_epochs", "shuffle_buffer")
# Fields that must be >= 0.
_NON_NEGATIVE = ("synthetic_images", "num_pictures", "scale_sigma",
                 "rotation_sigma", "attention_sparsity")
# Fields that are probabilities.
_PROBABILITIES = ("rotation_prob", "flip_prob")


def _fail(message: str):
  raise errors.ConfigError(message)


def _check_choice(config, name, choices):
  if config[name] not in choices:
    _fail(f"config.{name} must be one of {tuple(choices)}, got "
          f"{config[name]!r}.")


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks every field's value.

  Raises:
    errors.ConfigError: naming the first bad field, its value and what it
      must be (a ValueError).
  """
  _check_choice(config, "phase", phases.NAMES)
  _check_choice(config, "optimizer", optimizers.OPTIMIZERS)
  _check_choice(config, "dtype", models.DTYPES)
  for name in _POSITIVE:
    if not config[name] > 0:
      _fail(f"config.{name} must be positive, got {config[name]}.")
  for name in _NON_NEGATIVE:
    if not config[name] >= 0:
      _fail(f"config.{name} must be >= 0, got {config[name]}.")
  for name in _PROBABILITIES:
    if not 0 <= config[name] <= 1:
      _fail(f"config.{name} is a probability, in [0, 1]; got "
            f"{config[name]}.")
  if not 0 <= config.color_low <= config.color_high:
    _fail(f"config.color_low and color_high must satisfy 0 <= color_low <= "
          f"color_high, got {config.color_low} and {config.color_high}.")
  devices = jax.device_count()
  if config.batch_size % devices:
    _fail(f"config.batch_size={config.batch_size} is not divisible by the "
          f"{devices} devices; use a multiple of {devices}.")
  if config.eval_batch_size == 0 or config.eval_batch_size < -1:
    _fail(f"config.eval_batch_size must be positive, or -1 for batch_size; "
          f"got {config.eval_batch_size}.")
  multiple = 4 * 2 ** config.hourglass_depth
  if config.input_size % multiple:
    _fail(f"config.input_size={config.input_size} must be divisible by "
          f"{multiple} (4 * 2**hourglass_depth).")
  if list(config.lr_boundaries) != sorted(config.lr_boundaries):
    _fail("config.lr_boundaries must be increasing epochs, got "
          f"{tuple(config.lr_boundaries)}.")
  models.create_model(config).check_fields(owner="config",
                                           error=errors.ConfigError)


def eval_batch_size(config: ml_collections.ConfigDict) -> int:
  """The evaluation batch: `eval_batch_size` (-1: `batch_size`), rounded up
  to a multiple of the device count (the last batch is padded anyway)."""
  size = config.eval_batch_size if config.eval_batch_size > 0 else (
      config.batch_size)
  devices = jax.device_count()
  return int(math.ceil(size / devices) * devices)


def complete(saved: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A config saved by a run (its config.json) on top of today's defaults.

  Fields added since the run take their defaults; fields since removed (e.g.
  the unused `dataset`) are dropped, so checkpoints of earlier versions stay
  loadable.

  Args:
    saved: the saved config.

  Returns:
    A new, unlocked config with every field of `configs/default.py`.
  """
  config = default.get_config()
  for key, value in saved.items():
    if key in config:
      config[key] = value
  return config


def _plain(value):
  """A field's value as config.json holds it (tuples become lists)."""
  return json.loads(json.dumps(value, default=str))


def differences(saved: ml_collections.ConfigDict,
                config: ml_collections.ConfigDict
                ) -> Dict[str, Tuple[Any, Any]]:
  """{field: (saved value, new value)} of the fields that differ, but for
  `LOCATION_FIELDS`.

  Args:
    saved: a config.json of an earlier run (completed with `complete`).
    config: this run's config.
  """
  saved = complete(saved)
  found = {}
  for name in config:
    if name in LOCATION_FIELDS or name not in saved:
      continue
    old, new = _plain(saved[name]), _plain(config[name])
    if old != new:
      found[name] = (old, new)
  return found


def describe_differences(found: Dict[str, Tuple[Any, Any]]) -> str:
  """'learning_rate 0.0005 -> 0.0001, num_epochs 2 -> 3'."""
  return ", ".join(f"{name} {old!r} -> {new!r}"
                   for name, (old, new) in sorted(found.items()))
