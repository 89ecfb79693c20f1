"""Checkpoints of a workdir: where they live, saving, restoring, phase chaining.

A workdir holds one directory per phase:

  WORKDIR/phase_<p>/config.json     the config that trained it
  WORKDIR/phase_<p>/checkpoints/N/  the last `keep_checkpoints` training states
  WORKDIR/phase_<p>/best/N/         the state with the best validation Mean
  WORKDIR/phase_<p>/eval_results.json

A training state is saved with orbax as one dict: `step`, `params`,
`batch_stats` and `opt_state`. Phase B starts from phase A's last checkpoint
and C from B's (`start_variables`).

A checkpoint holds finite numbers only: a diverged run leaves NaN or infinite
parameters, which evaluate to an all-zero PCKh table and predict NaN joints.
The training loop checks `all_finite` on the device before every save, and
every restored state is checked too.
"""

import functools
import os
from typing import (Any, Callable, Dict, List, NamedTuple, Optional,
                    Sequence, Tuple)

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from acnn_jax import errors
from acnn_jax import models
from acnn_jax import phases
from acnn_jax import saved_config


def phase_dir(workdir: str, phase: str) -> str:
  """WORKDIR/phase_<phase>."""
  return os.path.join(workdir, f"phase_{phase}")


def root_workdir(path: str) -> str:
  """The workdir of a phase directory (or the path itself)."""
  path = os.path.abspath(path)
  if os.path.basename(path).startswith("phase_"):
    return os.path.dirname(path)
  return path


def make_managers(directory: str, keep: int):
  """The two orbax managers of a phase directory: the last few and the best.

  Saves run in the background in one process. In a multi-host run they
  finish before `save` returns: two background saves in flight at once (the
  best and the last checkpoint of an evaluation step) can leave process 0
  waiting for ever to commit one, after process 1 has finished.
  """
  in_background = jax.process_count() == 1
  last = ocp.CheckpointManager(
      os.path.join(directory, "checkpoints"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=keep, create=True,
          # What a killed save left half-written is no checkpoint.
          cleanup_tmp_directories=True,
          enable_async_checkpointing=in_background))
  best = ocp.CheckpointManager(
      os.path.join(directory, "best"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=1, create=True, best_fn=lambda m: m["Mean"],
          best_mode="max", cleanup_tmp_directories=True,
          enable_async_checkpointing=in_background))
  return last, best


def save_state(manager: ocp.CheckpointManager, step: int,
               state: Dict[str, Any], metrics=None) -> None:
  """Starts saving a training state (a dict of arrays) as step `step`.

  In a multi-host run every process calls it with the same state, and one
  checkpoint is written for all.
  """
  if jax.process_count() > 1:
    # The state each process holds on its devices is one replica of a
    # global array; orbax writes global arrays, once.
    state = jax.tree_util.tree_map(
        ocp.utils.fully_replicated_host_local_array_to_global_array, state)
  manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics)


def _floating(tree) -> List[Any]:
  return [x for x in jax.tree_util.tree_leaves(tree)
          if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]


# A number whose square overflows float32: a state holding one has diverged
# even if every number is still finite (its next loss is inf).
LARGEST_SQUARABLE = float(np.sqrt(np.finfo(np.float32).max))


@functools.partial(jax.jit, static_argnames="limit")
def all_finite(tree, limit: Optional[float] = None) -> jax.Array:
  """A scalar bool array, on the device: every float in `tree` is finite
  (and, with `limit`, no larger than `limit` in magnitude).

  One fused reduction per array, so checking a 13M-parameter state costs
  about as much as one elementwise pass; only the bool leaves the device.
  """
  leaves = _floating(tree)
  if not leaves:
    return jnp.asarray(True)
  if limit is None:
    checks = [jnp.all(jnp.isfinite(x)) for x in leaves]
  else:  # NaN fails the comparison too.
    checks = [jnp.all(jnp.abs(x) <= limit) for x in leaves]
  return jnp.all(jnp.stack(checks))


def _first_line(error: BaseException) -> str:
  """A short reason for a failed restore (orbax's messages run for pages)."""
  lines = str(error).strip().splitlines() or [type(error).__name__]
  line = lines[0]
  return line if len(line) <= 160 else line[:157] + "..."


def _newest_usable(restore: Callable[[int], Dict[str, Any]],
                   steps: Sequence[int], where: str
                   ) -> Tuple[Dict[str, Any], int, List[Tuple[int, str]]]:
  """Restores the newest of `steps` that restores and holds finite numbers.

  Args:
    restore: restores one step.
    steps: the candidate steps.
    where: the manager directory, for the message.

  Returns:
    (state, its step, [(newer step, why it was skipped)]).

  Raises:
    errors.InputError: no step is usable; the message gives every reason.
  """
  skipped = []
  for step in sorted(steps, reverse=True):
    try:
      state = restore(step)
    except Exception as error:  # pylint: disable=broad-except
      # A damaged checkpoint fails anywhere in orbax or tensorstore, with
      # any type of error; the next older one may be intact.
      skipped.append((step, _first_line(error)))
      continue
    if not bool(all_finite(state)):
      skipped.append((step, "it holds NaN or infinite numbers (the run "
                      "diverged before it was saved)"))
      continue
    return state, step, skipped
  reasons = "; ".join(f"step {s}: {r}" for s, r in skipped)
  raise errors.InputError(
      f"No checkpoint in {where} can be used ({reasons}). Train this phase "
      "again in a new --workdir, or name an intact checkpoint.")


def _set_aside(manager_dir: str, step: int) -> str:
  """Moves a damaged step out of its manager (never deleting it): orbax
  would otherwise skip every save up to its step and later delete it."""
  phase_directory = os.path.dirname(manager_dir)
  name = f"{os.path.basename(manager_dir)}_{step}"
  target = os.path.join(phase_directory, "damaged", name)
  suffix = 1
  while os.path.exists(target):
    suffix += 1
    target = os.path.join(phase_directory, "damaged", f"{name}.{suffix}")
  os.makedirs(os.path.dirname(target), exist_ok=True)
  os.rename(os.path.join(manager_dir, str(step)), target)
  return target


def restore_latest(manager: ocp.CheckpointManager,
                   template: Dict[str, Any]) -> Dict[str, Any]:
  """The newest usable state of a phase's manager, to resume training.

  The state is restored onto the shapes, dtypes and shardings of `template`
  (so a run can resume on another number of devices than the one that
  saved it). A newer step that does not restore, or that holds NaN, is moved
  to PHASE/damaged/ with one warning line, and the manager is reloaded.

  Raises:
    errors.InputError: no step restores (nothing is moved then).
  """
  abstract = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      template)
  directory = str(manager.directory)
  state, step, skipped = _newest_usable(
      lambda s: manager.restore(s, args=ocp.args.StandardRestore(abstract)),
      manager.all_steps(), directory)
  for bad, reason in skipped:
    moved = _set_aside(directory, bad)
    logging.warning("Checkpoint %s/%d cannot be used (%s); moved it to %s "
                    "and resuming from step %d.", directory, bad, reason,
                    moved, step)
  if skipped:
    manager.reload()
  return state


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
    errors.MissingError: naming the path, when it holds no checkpoint.
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
    if not os.path.exists(os.path.join(path, saved_config.CONFIG_FILE)):
      # A workdir: the latest phase that has checkpoints.
      phase_dirs = [phase_dir(path, p) for p in reversed(phases.NAMES)]
    for d in phase_dirs:
      order = ("best", "checkpoints") if prefer_best else ("checkpoints",
                                                           "best")
      candidates.extend(os.path.join(d, sub) for sub in order)
  for directory in candidates:
    steps = _steps(directory)
    if steps:
      return directory, max(steps)
  raise errors.MissingError(
      f"No checkpoint found in {path}: expected a workdir with phase_<p>/"
      "checkpoints/, a phase directory, or a checkpoints directory. Train "
      "first, e.g. `python -m acnn_jax.main --config=configs/phase_a.py "
      f"--workdir={root_workdir(path)}`.")


def config_dir_of(manager_dir: str) -> str:
  """The phase directory (holding config.json) of a manager directory."""
  return os.path.dirname(os.path.abspath(manager_dir))


def restore_raw(manager_dir: str, step: int,
                keys: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Restores a saved state as a dict of arrays, with no model at hand.

  The arrays land on this process's first device whatever devices saved
  them (a checkpoint written by 8 GPUs loads on a laptop).

  Args:
    manager_dir: an orbax manager directory (`checkpoints/`, `best/`).
    step: the step to restore.
    keys: the state's entries to read (those of them it has), e.g.
      ("params", "batch_stats") for inference; None reads everything.
      orbax spends milliseconds per array and the optimizer state holds
      two thirds of them, so inference skips it.
  """
  manager = ocp.CheckpointManager(
      manager_dir, item_handlers=ocp.PyTreeCheckpointHandler())
  metadata = manager.item_metadata(step)
  tree = getattr(metadata, "tree", metadata)
  if keys is not None:
    tree = {key: tree[key] for key in keys if key in tree}
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree_util.tree_map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
  restore_args = jax.tree_util.tree_map(
      lambda m: ocp.ArrayRestoreArgs(sharding=device, global_shape=m.shape,
                                     dtype=m.dtype), tree)
  return manager.restore(step, args=ocp.args.PyTreeRestore(
      item=target, restore_args=restore_args, partial_restore=True))


def restore_variables(path: str, prefer_best: bool = False):
  """The model variables of a checkpoint.

  When `path` does not name one step, the newest usable step is taken: a
  newer one that does not restore or holds NaN is skipped with a warning
  line (and left where it is).

  Returns:
    ({'params': ..., 'batch_stats': ...}, step, manager directory).

  Raises:
    errors.MissingError: no checkpoint at `path`.
    errors.InputError: none of its checkpoints can be used.
  """
  manager_dir, step = resolve(path, prefer_best)
  named_step = os.path.basename(os.path.abspath(path)).isdigit()
  state, step, skipped = _newest_usable(
      lambda s: restore_raw(manager_dir, s, keys=("params", "batch_stats")),
      [step] if named_step else _steps(manager_dir), manager_dir)
  for bad, reason in skipped:
    logging.warning("Checkpoint %s/%d cannot be used (%s); using step %d.",
                    manager_dir, bad, reason, step)
  variables = {"params": state["params"],
               "batch_stats": state.get("batch_stats") or {}}
  return variables, step, manager_dir


def _check_same_structure(expected, got, what, source):
  if (jax.tree_util.tree_map(np.shape, expected) !=
      jax.tree_util.tree_map(np.shape, got)):
    raise errors.ConfigError(
        f"The {what} of {source} do not match this config's model (a "
        "different num_stacks, features, hourglass_depth or "
        "attention_features?). Use the same model fields as the phase that "
        "wrote it.")


def start_variables(config: ml_collections.ConfigDict, workdir: str,
                    phase: phases.Phase, template: Dict[str, Any]
                    ) -> Optional[Dict[str, Any]]:
  """The variables a fresh phase starts from: `config.init_from`, else the
  previous phase's last checkpoint (B from A, C from B), else None (A).

  Args:
    config: reads `init_from`.
    workdir: the run's workdir.
    phase: the phase about to start.
    template: {'params', 'batch_stats'} of this config's model, to check the
      checkpoint against.

  Returns:
    {'params', 'batch_stats'} as jax arrays, or None to start from scratch.

  Raises:
    errors.MissingError: with the command to run first, when the previous
      phase has no checkpoint (never ran, or failed before its first save).
    errors.ConfigError: the checkpoint holds another model.
  """
  source = config.init_from
  if not source:
    if phase.previous is None:
      return None
    source = phase_dir(workdir, phase.previous)
    # A phase that failed before its first save leaves an empty
    # checkpoints/ directory.
    if not _steps(os.path.join(source, "checkpoints")):
      raise errors.MissingError(
          f"Phase {phase.name.upper()} starts from phase "
          f"{phase.previous.upper()}'s checkpoint, but {source}/checkpoints "
          "holds none. Run (or rerun, to resume) phase "
          f"{phase.previous.upper()} first: python -m acnn_jax.main "
          f"--config=configs/phase_{phase.previous}.py --workdir={workdir} "
          "(or name a checkpoint with --config.init_from=PATH).")
  variables, step, manager_dir = restore_variables(source)
  _check_same_structure(template["params"], variables["params"], "parameters",
                        manager_dir)
  _check_same_structure(template["batch_stats"], variables["batch_stats"],
                        "BatchNorm statistics", manager_dir)
  logging.info("Phase %s starts from %s, step %d.", phase.name, manager_dir,
               step)
  return jax.tree_util.tree_map(jax.numpy.asarray, variables)


class LoadedModel(NamedTuple):
  """A trained network, ready for `apply` (see `load_for_inference`).

  Attributes:
    model: the `models.ACNN`.
    variables: its {'params', 'batch_stats'}.
    config: the config it was trained with (or the one given instead).
    masks_to_one: run it as the plain stacked hourglass: phase A
      checkpoints never trained their attention heads.
    checkpoint: the folder of the step it was read from
      (<manager directory>/<step>).
  """
  model: models.ACNN
  variables: Dict[str, Any]
  config: ml_collections.ConfigDict
  masks_to_one: bool
  checkpoint: str

  @property
  def step(self) -> int:
    """The training step of the checkpoint."""
    return int(os.path.basename(self.checkpoint))


def load_for_inference(path: str, prefer_best: bool = True,
                       config: Optional[ml_collections.ConfigDict] = None
                       ) -> LoadedModel:
  """A model, its variables and its config, ready for `apply`.

  Args:
    path: see `resolve`.
    prefer_best: use the best-by-validation checkpoint when there is one.
    config: use this config instead of the phase's saved config.json.

  Returns:
    A `LoadedModel`.

  Raises:
    errors.MissingError: no checkpoint at `path`.
    errors.InputError: no checkpoint there can be used (damaged, or NaN).
  """
  variables, step, manager_dir = restore_variables(path, prefer_best)
  if config is None:
    config = saved_config.load_config(config_dir_of(manager_dir))
  else:
    config = ml_collections.ConfigDict(config.to_dict())  # An unlocked copy.
  masks_to_one = phases.PHASES[config.phase].masks_to_one or not (
      config.attention)
  variables = jax.tree_util.tree_map(jax.numpy.asarray, variables)
  return LoadedModel(models.create_model(config), variables, config,
                     masks_to_one, os.path.join(manager_dir, str(step)))
