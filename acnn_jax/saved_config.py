"""A phase's config.json: the config that trained its checkpoints.

Saved when a phase starts (atomically), read back to evaluate or predict
with a checkpoint, and reconciled when a phase is run again: fields that
shape the saved state must not change (`check_resumable`); other changed
fields go on into a resumed phase, and are ignored by a finished one
(`settle_config`).
"""

import os

from absl import logging
import ml_collections

from acnn_jax import configuration
from acnn_jax import errors

CONFIG_FILE = "config.json"


def save_config(config: ml_collections.ConfigDict, directory: str):
  """Writes the config as JSON (atomically, so a crash leaves the old one)."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, CONFIG_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  os.replace(tmp, path)


def load_config(directory: str) -> ml_collections.ConfigDict:
  """The config a phase directory was trained with (`configuration.complete`).

  Raises:
    errors.MissingError: the directory has no config.json.
    errors.InputError: config.json is not a JSON object.
  """
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise errors.MissingError(
        f"{path} is missing: {directory} was not written by acnn_jax training "
        "(expected WORKDIR/phase_<p>/ with config.json and checkpoints/).")
  saved = errors.read_json(
      path, dict, "the config that trained the checkpoints beside it",
      "Restore it from a backup, or write it again with the same --config "
      "and fields.")
  return configuration.complete(ml_collections.ConfigDict(saved))


def check_resumable(config: ml_collections.ConfigDict, directory: str):
  """Before resuming a phase: the fields that shape the saved state must
  be those that wrote it (otherwise orbax fails deep inside).

  Raises:
    errors.ConfigError: naming the fields, the saved values and the fix.
  """
  if not os.path.exists(os.path.join(directory, CONFIG_FILE)):
    return
  found = configuration.differences(load_config(directory), config)
  clash = {k: v for k, v in found.items()
           if k in configuration.STATE_FIELDS}
  if clash:
    fields = " ".join(f"--config.{k}={old}" for k, (old, _) in
                      sorted(clash.items()))
    raise errors.ConfigError(
        f"{directory} was trained with other values of fields that shape "
        f"its checkpoints ({configuration.describe_differences(clash)}). "
        f"Resume with the saved values ({fields}), or train the new network "
        "in another --workdir.")


def settle_config(config: ml_collections.ConfigDict, directory: str,
                  step: int, finished: bool,
                  write: bool = True) -> ml_collections.ConfigDict:
  """The config a phase goes on with, and what its config.json holds.

  config.json always describes the training that made the checkpoints:
  * a fresh phase (step 0) saves `config`;
  * a phase resumed with changed fields goes on with them: the old
    config.json is kept as config_until_step<step>.json, the new one saved,
    and one warning line names the fields;
  * a finished phase trains no more: config.json is kept, and the fields
    that differ are named in a warning as ignored; the saved config (with
    this run's data locations) is returned, to evaluate the checkpoint as it
    was trained.

  Args:
    config: this run's config.
    directory: the phase directory.
    step: the step the phase resumes from (0: fresh).
    finished: no step is left to train.
    write: False returns the same config and writes and logs nothing (the
      other processes of a multi-host run: process 0 writes).
  """
  path = os.path.join(directory, CONFIG_FILE)
  if step == 0 or not os.path.exists(path):
    if write:
      save_config(config, directory)
    return config
  saved = load_config(directory)
  found = configuration.differences(saved, config)
  if found and finished:
    if write:
      logging.warning(
          "Phase %s finished at step %d; it was trained with %s, so these "
          "fields are ignored: %s. To train with them, use another --workdir "
          "(or raise num_epochs to train on).", config.phase, step, path,
          configuration.describe_differences(found))
    for name in configuration.LOCATION_FIELDS:
      saved[name] = config[name]
    return saved
  if not write:
    return config
  if found:
    archive = os.path.join(directory, f"config_until_step{step}.json")
    if not os.path.exists(archive):
      os.replace(path, archive)
    logging.warning(
        "Resuming phase %s at step %d with changed fields: %s (the config "
        "of the steps before is kept in %s).", config.phase, step,
        configuration.describe_differences(found), archive)
  save_config(config, directory)
  return config
