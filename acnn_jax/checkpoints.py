"""Checkpoints of a workdir: where they live, saving, and restoring them.

A workdir holds one directory per phase:

  WORKDIR/phase_<p>/config.json     the config that trained it
  WORKDIR/phase_<p>/checkpoints/N/  the last `keep_checkpoints` training states
  WORKDIR/phase_<p>/best/N/         the state with the best validation Mean
  WORKDIR/phase_<p>/eval_results.json

A training state is saved with orbax as one dict: `step`, `params`,
`batch_stats` and `opt_state`.
"""

import json
import os
from typing import Any, Dict, Optional, Tuple

import jax
import ml_collections
import orbax.checkpoint as ocp

PHASES = ("a", "b", "c")
CONFIG_FILE = "config.json"


def phase_dir(workdir: str, phase: str) -> str:
  return os.path.join(workdir, f"phase_{phase}")


def make_managers(directory: str, keep: int):
  """The two orbax managers of a phase directory: the last few and the best."""
  last = ocp.CheckpointManager(
      os.path.join(directory, "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
  best = ocp.CheckpointManager(
      os.path.join(directory, "best"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=1, create=True, best_fn=lambda m: m["Mean"],
          best_mode="max"))
  return last, best


def save_config(config: ml_collections.ConfigDict, directory: str):
  """Writes the config as JSON (atomically, so a crash leaves the old one)."""
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, CONFIG_FILE)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  os.replace(tmp, path)


def load_config(directory: str) -> ml_collections.ConfigDict:
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} is missing: {directory} was not written by acnn_jax training "
        "(expected WORKDIR/phase_<p>/ with config.json and checkpoints/).")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _steps(directory: str):
  if not os.path.isdir(directory):
    return []
  return ocp.CheckpointManager(directory).all_steps()


def resolve(path: str, prefer_best: bool = False) -> Tuple[str, int]:
  """Finds the checkpoint a path names.

  Args:
    path: a workdir (its latest phase is taken), a phase directory, a
      `checkpoints`/`best` directory, or one step directory inside those.
    prefer_best: take `best/` over `checkpoints/` when both exist.

  Returns:
    (manager directory, step).

  Raises:
    FileNotFoundError: naming the path, when it holds no checkpoint.
  """
  path = os.path.abspath(os.path.expanduser(path))
  base = os.path.basename(path)
  if base.isdigit() and os.path.isdir(path):
    return os.path.dirname(path), int(base)
  candidates = []
  if base in ("checkpoints", "best"):
    candidates.append(path)
  else:
    phase_dirs = [path]
    if not os.path.exists(os.path.join(path, CONFIG_FILE)):
      # A workdir: the latest phase that has checkpoints.
      phase_dirs = [phase_dir(path, p) for p in reversed(PHASES)]
    for d in phase_dirs:
      order = ("best", "checkpoints") if prefer_best else ("checkpoints",
                                                           "best")
      candidates.extend(os.path.join(d, sub) for sub in order)
  for directory in candidates:
    steps = _steps(directory)
    if steps:
      return directory, max(steps)
  raise FileNotFoundError(
      f"No checkpoint found in {path}: expected a workdir with phase_<p>/"
      "checkpoints/, a phase directory, or a checkpoints directory. Train "
      "first, e.g. `python -m acnn_jax.main --config=configs/phase_a.py "
      f"--workdir={path}`.")


def config_dir_of(manager_dir: str) -> str:
  """The phase directory (holding config.json) of a manager directory."""
  return os.path.dirname(os.path.abspath(manager_dir))


def restore_raw(manager_dir: str, step: int) -> Dict[str, Any]:
  """Restores a saved state as a dict of arrays, with no model at hand.

  The arrays land on this process's first device whatever devices saved
  them (a checkpoint written by 8 GPUs loads on a laptop).
  """
  manager = ocp.CheckpointManager(
      manager_dir, item_handlers=ocp.StandardCheckpointHandler())
  metadata = manager.item_metadata(step)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree_util.tree_map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      getattr(metadata, "tree", metadata))
  return manager.restore(step, args=ocp.args.StandardRestore(target))


def restore_variables(path: str, prefer_best: bool = False):
  """The model variables of a checkpoint.

  Returns:
    ({'params': ..., 'batch_stats': ...}, step, manager directory).
  """
  manager_dir, step = resolve(path, prefer_best)
  state = restore_raw(manager_dir, step)
  variables = {"params": state["params"],
               "batch_stats": state.get("batch_stats") or {}}
  return variables, step, manager_dir


def load_for_inference(path: str, prefer_best: bool = True,
                       config: Optional[ml_collections.ConfigDict] = None):
  """A model, its variables and its config, ready for `apply`.

  Args:
    path: see `resolve`.
    prefer_best: use the best-by-validation checkpoint when there is one.
    config: use this config instead of the phase's saved config.json.

  Returns:
    (model, variables, config); `config.masks_to_one` is True for phase A
    checkpoints, whose attention heads were never trained.
  """
  from acnn_jax import train  # pylint: disable=g-import-not-at-top
  variables, _, manager_dir = restore_variables(path, prefer_best)
  if config is None:
    config = load_config(config_dir_of(manager_dir))
  else:
    config = ml_collections.ConfigDict(config.to_dict())  # An unlocked copy.
  model = train.create_model(config)
  config.masks_to_one = config.phase == "a" or not config.get("attention",
                                                              True)
  variables = jax.tree_util.tree_map(jax.numpy.asarray, variables)
  return model, variables, config
