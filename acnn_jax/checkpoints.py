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

A damaged checkpoint (a copy cut short, a lost file) is skipped with one
warning line naming it and why; the noise a failed orbax restore leaves
behind is dropped (`_restore_quietly`). A best checkpoint is often
saved twice, in best/ and checkpoints/ (an evaluation step that is also a
save step): when one copy of a step is damaged, inference takes the other.
"""

import asyncio
import functools
import gc
import inspect
import json
import os
import sys
import time
from typing import (Any, Callable, Dict, List, NamedTuple, Optional,
                    Sequence, Tuple)
import warnings

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
  """A short reason for a failed restore (orbax's messages run for pages;
  ours, which name the file at fault, are kept whole)."""
  if (error.__cause__ is not None and
      str(error).startswith("Encountered error while reading array")):
    # orbax's wrapper of TensorStore's error, which says what is wrong
    # (OUT_OF_RANGE, DATA_LOSS) and where.
    error = error.__cause__
  lines = str(error).strip().splitlines() or [type(error).__name__]
  line = lines[0]
  if isinstance(error, errors.UserError):
    return line
  return line if len(line) <= 160 else line[:157] + "..."


# Where orbax's code lives: the coroutines of its reads are defined there.
_ORBAX_DIR = os.path.dirname(os.path.abspath(ocp.__file__))
# How long a failed restore waits for its abandoned reads to end: those
# still in flight at TensorStore finish within milliseconds.
_ABANDONED_READS_WAIT_S = 2.0


def _is_restore_noise(unraisable) -> bool:
  """Whether an unraisable exception is what a failed restore leaves."""
  target = unraisable.object
  if inspect.iscoroutine(target):
    return os.path.abspath(target.cr_code.co_filename).startswith(_ORBAX_DIR)
  error = unraisable.exc_value
  return (isinstance(error, RuntimeError) and
          str(error) == "Event loop is closed")


def _abandoned_tasks() -> List[asyncio.Task]:
  """The asyncio tasks left pending on an event loop that was closed."""
  return [task for task in gc.get_objects()
          if isinstance(task, asyncio.Task) and not task.done() and
          task.get_loop().is_closed()]


def _collect_abandoned_reads() -> None:
  """Collects the reads a failed restore abandoned, waiting up to
  `_ABANDONED_READS_WAIT_S` for those still in flight."""
  deadline = time.monotonic() + _ABANDONED_READS_WAIT_S
  gc.collect()
  while _abandoned_tasks() and time.monotonic() < deadline:
    time.sleep(0.02)
    gc.collect()


# What asyncio logs as it destroys the tasks of a closed loop.
_ABANDONED_TASK_MESSAGES = ("Task exception was never retrieved",
                            "Task was destroyed but it is pending")


class _Unusable(errors.InputError):
  """A step that cannot be used, whose abandoned reads were collected."""


def _restore_quietly(restore: Callable[[], Any]
                     ) -> Tuple[Any, Optional[str]]:
  """(restore(), None), or (None, why it failed), without the noise.

  orbax reads a step's arrays in coroutines on an event loop of its own,
  which it closes as soon as one read fails, leaving the others suspended.
  When collected, each of them turns the GeneratorExit that closes it into
  orbax's 'Encountered error while reading array index' exception, which
  Python prints as 'Exception ignored in: <coroutine object
  _read_array_index_and_device_put ...>' with 60 lines of TensorStore spec;
  reads still in flight then fail to wake their closed loop ('Event loop is
  closed'), and asyncio logs 'Task exception was never retrieved' for
  those that failed. Thousands of lines came before (or after) the one
  warning that says which checkpoint was skipped. They are harmless: while
  the restore runs, and while the reads it abandoned are collected (here,
  so that none is printed later), they are dropped, with 'coroutine ... was
  never awaited' warnings; every other unraisable exception and log record
  is passed on.
  """
  previous = sys.unraisablehook
  # What exists now is none of the restore's: the collection below looks
  # at what it made only (a full one takes 0.3 s in a large process).
  gc.freeze()

  def hook(unraisable):
    if not _is_restore_noise(unraisable):
      previous(unraisable)

  def keep(record) -> bool:  # A filter of its own: scopes nest.
    return not record.getMessage().startswith(_ABANDONED_TASK_MESSAGES)

  sys.unraisablehook = hook
  asyncio.log.logger.addFilter(keep)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", "coroutine .* was never awaited",
                              RuntimeWarning)
      try:
        return restore(), None
      except _Unusable as error:
        return None, str(error)
      except Exception as error:  # pylint: disable=broad-except
        # A damaged checkpoint fails anywhere in orbax or tensorstore, with
        # any type of error.
        reason = _first_line(error)
      # Out of the except clause: the error's frames, which hold the
      # abandoned reads, are gone.
      _collect_abandoned_reads()
      return None, reason
  finally:
    gc.unfreeze()
    asyncio.log.logger.removeFilter(keep)
    sys.unraisablehook = previous


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
    state, reason = _restore_quietly(functools.partial(restore, step))
    if reason is not None:  # The next older one may be intact.
      skipped.append((step, reason))
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


# What `resolve` takes, for its messages.
_CHECKPOINT_PATHS = ("a workdir with phase_<p>/checkpoints/, a phase "
                     "directory, or a checkpoints directory")


def resolve(path: str, prefer_best: bool = False) -> Tuple[str, int]:
  """Finds the checkpoint a path names.

  Args:
    path: a workdir (its latest phase is taken), a phase directory, a
      `checkpoints`/`best` directory, or one step directory inside those.
    prefer_best: take `best/` over `checkpoints/` when both exist.

  Returns:
    (manager directory, step).

  Raises:
    errors.MissingError: naming the path, when it does not exist or holds
      no checkpoint.
    errors.InputError: the path is a file (checkpoints are folders).
  """
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.exists(path):
    raise errors.MissingError(
        f"No checkpoint found: {path} does not exist (expected "
        f"{_CHECKPOINT_PATHS}: the --workdir of a training run, or one of its "
        "folders).")
  if not os.path.isdir(path):
    raise errors.InputError(
        f"No checkpoint found: {path} is a file, not a folder (expected "
        f"{_CHECKPOINT_PATHS}; a checkpoint is a folder).")
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
      f"No checkpoint found in {path}: expected {_CHECKPOINT_PATHS}. Train "
      "first, e.g. `python -m acnn_jax.main --config=configs/phase_a.py "
      f"--workdir={root_workdir(path)}`.")


def config_dir_of(manager_dir: str) -> str:
  """The phase directory (holding config.json) of a manager directory."""
  return os.path.dirname(os.path.abspath(manager_dir))


# The folder orbax writes a manager's one item to, in each step folder, and
# its file that lists the item's arrays.
_ITEM_DIR = "default"
_TREE_METADATA = "_METADATA"
# Where the arrays are in the item's OCDBT database (when it has one).
_OCDBT_MANIFEST = "manifest.ocdbt"


def _not_there(path: str, kind: str) -> str:
  """'<path> is missing', or '<path> is a folder, not a file' (`kind`)."""
  if os.path.exists(path):
    other = "file" if kind == "folder" else "folder"
    return f"{path} is a {other}, not a {kind}"
  return f"{path} is missing"


def _missing_part(step_dir: str) -> Optional[str]:
  """What of a step folder is missing or not whole, that orbax needs before
  it reads an array (it says 'argument of type NoneType is not iterable',
  'Unable to retrieve default item' or 'Metadata at ... not found'); None if
  nothing is."""
  item = os.path.join(step_dir, _ITEM_DIR)
  if not os.path.isdir(item):
    return _not_there(item, "folder") + " (the folder of its arrays)"
  metadata = os.path.join(item, _TREE_METADATA)
  if not os.path.isfile(metadata):
    return _not_there(metadata, "file") + " (the list of its arrays)"
  try:
    with open(metadata, encoding="utf-8") as f:
      listing = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as error:
    return (f"{metadata} (the list of its arrays) is not whole JSON "
            f"({error})")
  manifest = os.path.join(item, _OCDBT_MANIFEST)
  if (isinstance(listing, dict) and listing.get("use_ocdbt") and
      not os.path.isfile(manifest)):
    return _not_there(manifest, "file") + " (the index of its arrays)"
  return None


def _explained(step_dir: str, error: Optional[BaseException] = None
               ) -> BaseException:
  """`error`, or an InputError naming the part of `step_dir` at fault."""
  missing = _missing_part(step_dir)
  if missing is None and error is not None:
    return error
  return errors.InputError(
      f"{missing or step_dir + ' lists no arrays'}: the checkpoint was "
      "copied or written in part")


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

  Raises:
    errors.InputError: a file orbax needs is missing or damaged (named).
    Exception: any other error of orbax or TensorStore (a damaged array).
  """
  step_dir = os.path.join(manager_dir, str(step))
  manager = ocp.CheckpointManager(
      manager_dir, item_handlers=ocp.PyTreeCheckpointHandler())
  try:
    metadata = manager.item_metadata(step)
  except Exception as error:  # pylint: disable=broad-except
    explained = _explained(step_dir, error)
    if explained is error:
      raise
    raise explained from error
  tree = getattr(metadata, "tree", metadata)
  if tree is None:  # orbax found no list of the arrays.
    raise _explained(step_dir)
  if keys is not None:
    tree = {key: tree[key] for key in keys if key in tree}
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree_util.tree_map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
  restore_args = jax.tree_util.tree_map(
      lambda m: ocp.ArrayRestoreArgs(sharding=device, global_shape=m.shape,
                                     dtype=m.dtype), tree)
  try:
    return manager.restore(step, args=ocp.args.PyTreeRestore(
        item=target, restore_args=restore_args, partial_restore=True))
  except Exception as error:  # pylint: disable=broad-except
    explained = _explained(step_dir, error)
    if explained is error:
      raise
    raise explained from error


# The other manager of a phase, which may hold a copy of a step.
_OTHER_MANAGER = {"best": "checkpoints", "checkpoints": "best"}


def restore_variables(path: str, prefer_best: bool = False):
  """The model variables of a checkpoint.

  When `path` does not name one step, the newest usable step is taken: a
  step that does not restore is read from its copy in the phase's other
  manager directory (best/ and checkpoints/ hold the same training state
  when both saved that step), with one warning line naming both; a step
  with no usable copy, or holding NaN, is skipped with a warning line. No
  checkpoint is moved.

  Returns:
    ({'params': ..., 'batch_stats': ...}, step, the manager directory the
    variables were read from).

  Raises:
    errors.MissingError: no checkpoint at `path`.
    errors.InputError: none of its checkpoints can be used, or `path` is a
      file.
  """
  manager_dir, step = resolve(path, prefer_best)
  named_step = os.path.basename(os.path.abspath(path)).isdigit()
  keys = ("params", "batch_stats")
  other = _OTHER_MANAGER.get(os.path.basename(manager_dir))
  # A step the user named is read from there only.
  copies_dir = (os.path.join(os.path.dirname(manager_dir), other)
                if other and not named_step else None)
  copied = set(_steps(copies_dir)) if copies_dir else set()
  from_copy = {}  # step: why its first copy could not be used.

  def restore(s):
    # Each try quietly: the noise of a failed one comes after the other.
    state, reason = _restore_quietly(
        functools.partial(restore_raw, manager_dir, s, keys=keys))
    if reason is None:
      return state
    if s not in copied:
      raise _Unusable(reason)
    state, copy_reason = _restore_quietly(
        functools.partial(restore_raw, copies_dir, s, keys=keys))
    if copy_reason is not None:
      raise _Unusable(f"{reason}; its copy {copies_dir}/{s} cannot be used "
                      f"either: {copy_reason}")
    from_copy[s] = reason
    return state

  state, step, skipped = _newest_usable(
      restore, [step] if named_step else _steps(manager_dir), manager_dir)
  for bad, reason in skipped:
    logging.warning("Checkpoint %s/%d cannot be used (%s); using step %d.",
                    manager_dir, bad, reason, step)
  if step in from_copy:
    logging.warning("Checkpoint %s/%d cannot be used (%s); using its copy "
                    "%s/%d, the same training state.", manager_dir, step,
                    from_copy[step], copies_dir, step)
    manager_dir = copies_dir
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
