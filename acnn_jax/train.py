"""Training one ACNN phase: model, optimizer, pmapped train step, loop.

Reads top to bottom like flax's imagenet example: model creation, learning
rate, optimizer with the phase's frozen task, loss, `train_step`, state
creation and restore, `train_and_evaluate(config, workdir)`.

Phase p of a workdir lives in WORKDIR/phase_<p>/ (see `checkpoints`). Rerunning
the same command resumes from that phase's last checkpoint; a fresh phase B or
C starts from the previous phase's last checkpoint.
"""

import functools
import math
import os
import time
from typing import Any, Dict, Optional

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from acnn_jax import checkpoints
from acnn_jax import evaluate as evaluate_lib
from acnn_jax import models
from acnn_jax import parallel
from acnn_jax import pckh
from acnn_jax import phases
from acnn_jax import visualize
import input_pipeline

AXIS = "batch"
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def create_model(config: ml_collections.ConfigDict,
                 bn_axis_name: Optional[str] = None) -> models.ACNN:
  """The ACNN that `config` describes."""
  if config.dtype not in DTYPES:
    raise ValueError(f"config.dtype must be one of {sorted(DTYPES)}, got "
                     f"{config.dtype!r}.")
  return models.ACNN(
      num_stacks=config.num_stacks, features=config.features,
      num_joints=config.num_joints, hourglass_depth=config.hourglass_depth,
      attention=config.get("attention", True),
      attention_features=config.attention_features,
      attention_bias_init=config.attention_bias_init,
      mask_mode=config.mask_mode, combine=config.combine,
      dtype=DTYPES[config.dtype], bn_axis_name=bn_axis_name)


def validate_config(config: ml_collections.ConfigDict):
  """Raises a ValueError naming the first bad field of `config`."""
  phases.get_phase(config.phase)
  positive = ("batch_size", "learning_rate", "num_epochs", "input_size",
              "num_stacks", "features", "hourglass_depth", "log_every_steps",
              "checkpoint_every_steps", "keep_checkpoints", "sigma")
  for name in positive:
    if not config[name] > 0:
      raise ValueError(f"config.{name} must be positive, got {config[name]}.")
  if config.optimizer not in OPTIMIZERS:
    raise ValueError(f"config.optimizer must be one of {OPTIMIZERS}, got "
                     f"{config.optimizer!r}.")
  devices = jax.device_count()
  if config.batch_size % devices:
    raise ValueError(
        f"config.batch_size={config.batch_size} is not divisible by the "
        f"{devices} devices; use a multiple of {devices}.")
  multiple = 4 * 2 ** config.hourglass_depth
  if config.input_size % multiple:
    raise ValueError(
        f"config.input_size={config.input_size} must be divisible by "
        f"{multiple} (4 * 2**hourglass_depth).")
  if list(config.lr_boundaries) != sorted(config.lr_boundaries):
    raise ValueError("config.lr_boundaries must be increasing epochs, got "
                     f"{tuple(config.lr_boundaries)}.")
  create_model(config).check_fields()


def eval_batch_size(config) -> int:
  size = config.eval_batch_size if config.eval_batch_size > 0 else (
      config.batch_size)
  devices = jax.device_count()
  return int(math.ceil(size / devices) * devices)


def root_workdir(path: str) -> str:
  """The workdir of a phase directory (or the path itself)."""
  path = os.path.abspath(path)
  if os.path.basename(path).startswith("phase_"):
    return os.path.dirname(path)
  return path


def create_learning_rate_fn(config, steps_per_epoch: int):
  """Piecewise constant: lr, times lr_decay at each boundary epoch."""
  boundaries = {int(b * steps_per_epoch): config.lr_decay
                for b in config.lr_boundaries}
  return optax.piecewise_constant_schedule(config.learning_rate, boundaries)


OPTIMIZERS = ("rmsprop", "adam")


def create_optimizer(config, params, learning_rate_fn, phase: phases.Phase):
  """The phase's optimizer: RMSProp (pose-hg-train) or Adam on the trained
  tasks, `optax.set_to_zero()` on the frozen one."""
  if config.optimizer == "rmsprop":
    inner = optax.rmsprop(learning_rate_fn, decay=config.rmsprop_decay,
                          eps=config.rmsprop_eps)
  else:
    inner = optax.adam(learning_rate_fn)
  transforms = {task: inner if task in phase.trained else optax.set_to_zero()
                for task in models.TASKS}
  return optax.multi_transform(transforms, models.task_labels(params))


@flax.struct.dataclass
class TrainState:
  """What a checkpoint holds: step, params, BatchNorm statistics, optimizer."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  def as_dict(self) -> Dict[str, Any]:
    return {"step": self.step, "params": self.params,
            "batch_stats": self.batch_stats, "opt_state": self.opt_state}


def heatmap_loss(predictions, targets, weights):
  """Intermediate supervision: each stage's weighted MSE, summed over stages.

  Args:
    predictions: (S, B, h, w, K) every stage's prediction P_i.
    targets: (B, h, w, K) Gaussian targets.
    weights: (B, K), 0 for joints not annotated or outside the crop.

  Returns:
    (total loss, (S,) per-stage losses), float32.
  """
  diff = predictions.astype(jnp.float32) - targets[None]
  weighted = diff * diff * weights[None, :, None, None, :]
  per_stage = jnp.mean(weighted, axis=(1, 2, 3, 4))
  return jnp.sum(per_stage), per_stage


def _split_params(params, tasks):
  """The top-level entries of `params` that belong to `tasks`, and the rest."""
  inside = {k: v for k, v in params.items() if models.task_of_path((k,)) in tasks}
  outside = {k: v for k, v in params.items() if k not in inside}
  return inside, outside


def _task_norms(grads) -> Dict[str, jax.Array]:
  norms = {}
  for task in models.TASKS:
    leaves, _ = _split_params(grads, (task,))
    norms[f"grad_norm_{task}"] = optax.tree.norm(leaves)
  return norms


def train_step(state: TrainState, batch, *, model: models.ACNN,
               tx: optax.GradientTransformation, phase: phases.Phase,
               learning_rate_fn):
  """One pmapped step on a device's share of the batch.

  The gradient is taken only for the phase's tasks; the frozen task's
  parameters are carried over untouched (not even `p + 0`), and its BatchNorm
  layers run on their running statistics, so they stay bit-for-bit the same.
  """
  trained, frozen = _split_params(state.params, phase.trained)

  def loss_fn(trained_params):
    variables = {"params": {**frozen, **trained_params},
                 "batch_stats": state.batch_stats}
    out, new_vars = model.apply(
        variables, batch["image"], train=True,
        masks_to_one=phase.masks_to_one, frozen_task=phase.frozen_task,
        mutable=["batch_stats"])
    loss, per_stage = heatmap_loss(out.predictions, batch["heatmaps"],
                                   batch["target_weight"])
    return loss, (new_vars["batch_stats"], per_stage, out.masks)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, (batch_stats, per_stage, masks)), grads = grad_fn(trained)
  grads = jax.lax.pmean(grads, AXIS)
  full_grads = {**jax.tree_util.tree_map(jnp.zeros_like, frozen), **grads}
  updates, opt_state = tx.update(full_grads, state.opt_state, state.params)
  new_trained = optax.apply_updates(trained, _split_params(updates,
                                                           phase.trained)[0])
  new_state = state.replace(step=state.step + 1,
                            params={**state.params, **new_trained},
                            batch_stats=batch_stats, opt_state=opt_state)
  metrics = {"loss": loss, "learning_rate": learning_rate_fn(state.step),
             "mask_mean": jnp.mean(masks[:-1]) if masks.shape[0] > 1 else
             jnp.mean(masks), **_task_norms(grads)}
  for i in range(per_stage.shape[0]):
    metrics[f"loss_stage_{i}"] = per_stage[i]
  metrics = jax.lax.pmean(metrics, AXIS)
  return new_state, metrics


def create_train_state(config, model, tx, rng) -> TrainState:
  variables = models.init_variables(model, rng, config.input_size)
  return TrainState(step=jnp.asarray(0, jnp.int32),
                    params=variables["params"],
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=tx.init(variables["params"]))


def _abstract(tree):
  """Shapes, dtypes and shardings of `tree`: restoring onto them lets a run
  resume on another number of devices than the one that saved it."""
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      tree)


def restore_state(manager, state: TrainState) -> TrainState:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = manager.latest_step()
  restored = manager.restore(
      step, args=ocp.args.StandardRestore(_abstract(state.as_dict())))
  return TrainState(**restored)


def _check_same_structure(expected, got, what, source):
  exp = jax.tree_util.tree_map(np.shape, expected)
  have = jax.tree_util.tree_map(np.shape, got)
  if exp != have:
    raise ValueError(
        f"The {what} of {source} do not match this config's model (a "
        "different num_stacks, features, hourglass_depth or "
        "attention_features?). Use the same model fields as the phase that "
        "wrote it.")


def init_from_previous(config, workdir: str, phase: phases.Phase,
                       state: TrainState) -> TrainState:
  """Phase B/C: take params and BatchNorm statistics from the previous phase.

  Raises:
    FileNotFoundError: with the command to run first, when it is missing.
  """
  source = config.init_from
  if not source:
    if phase.previous is None:
      return state
    source = checkpoints.phase_dir(workdir, phase.previous)
    if not os.path.isdir(os.path.join(source, "checkpoints")):
      raise FileNotFoundError(
          f"Phase {phase.name.upper()} starts from phase "
          f"{phase.previous.upper()}'s checkpoint, but {source}/checkpoints "
          "does not exist. Run phase "
          f"{phase.previous.upper()} first: python -m acnn_jax.main "
          f"--config=configs/phase_{phase.previous}.py --workdir={workdir} "
          "(or name a checkpoint with --config.init_from=PATH).")
  variables, step, manager_dir = checkpoints.restore_variables(source)
  _check_same_structure(state.params, variables["params"], "parameters",
                        manager_dir)
  _check_same_structure(state.batch_stats, variables["batch_stats"],
                        "BatchNorm statistics", manager_dir)
  logging.info("Phase %s starts from %s, step %d.", phase.name, manager_dir,
               step)
  as_device = functools.partial(jax.tree_util.tree_map, jnp.asarray)
  return state.replace(params=as_device(variables["params"]),
                       batch_stats=as_device(variables["batch_stats"]))


def _log_pictures(writer, directory, step, pictures):
  if not pictures:
    return
  os.makedirs(directory, exist_ok=True)
  for i, picture in enumerate(pictures):
    visualize.save_png(picture, os.path.join(directory, f"step{step}_{i}.png"))
  height = max(p.shape[0] for p in pictures)
  width = max(p.shape[1] for p in pictures)
  padded = np.zeros((len(pictures), height, width, 3), np.uint8)
  for i, p in enumerate(pictures):
    padded[i, :p.shape[0], :p.shape[1]] = p
  writer.write_images(step, {"validation/predictions": padded})


class _QuietLibraries:
  """A logging filter that drops INFO records of chatty libraries (orbax logs
  a dozen lines per checkpoint), keeping their warnings and errors."""
  CHATTY = (os.sep + "orbax" + os.sep, os.sep + "tensorflow_datasets" + os.sep)

  def filter(self, record):
    return record.levelno >= 30 or not any(c in record.pathname
                                           for c in self.CHATTY)


def _quiet_libraries():
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or infinite; training stopped."""


def _check_finite(metrics_list, step, manager_dir, last_good):
  for m in metrics_list:
    loss = float(m["loss"])
    if not math.isfinite(loss):
      raise NonFiniteLossError(
          f"The training loss is {loss} at or before step {step}; training "
          f"stopped. The last good checkpoint (step {last_good}) is kept in "
          f"{manager_dir}. Lower --config.learning_rate, check the data, or "
          "use float32 (--config.dtype=float32), then rerun to resume.")


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> Dict[str, float]:
  """Trains one phase (`config.phase`) and evaluates it.

  Args:
    config: see configs/default.py.
    workdir: the run's directory; this phase writes WORKDIR/phase_<p>/.

  Returns:
    The final validation PCKh table (also in phase_<p>/eval_results.json).
  """
  validate_config(config)
  _quiet_libraries()
  phase = phases.get_phase(config.phase)
  workdir = os.path.abspath(workdir)
  out_dir = checkpoints.phase_dir(workdir, phase.name)
  os.makedirs(out_dir, exist_ok=True)
  writer = metric_writers.create_default_writer(
      out_dir, just_logging=jax.process_index() > 0)

  builder = input_pipeline.prepare_builder(config, workdir)
  num_train = builder.info.splits["train"].num_examples
  steps_per_epoch = (config.steps_per_epoch if config.steps_per_epoch > 0
                     else num_train // config.batch_size)
  if steps_per_epoch <= 0:
    raise ValueError(f"The train split has {num_train} people, fewer than "
                     f"config.batch_size={config.batch_size}.")
  num_steps = int(config.num_epochs * steps_per_epoch)
  eval_every = max(1, int(config.eval_every_epochs * steps_per_epoch))
  train_iter = input_pipeline.prefetch_to_device(
      input_pipeline.sharded_batches(
          input_pipeline.create_dataset(config, "train", builder)))

  model = create_model(config, bn_axis_name=AXIS)
  learning_rate_fn = create_learning_rate_fn(config, steps_per_epoch)
  rng = jax.random.PRNGKey(config.seed)
  params_shape = jax.eval_shape(
      lambda r: models.init_variables(model, r, config.input_size), rng)
  tx = create_optimizer(config, params_shape["params"], learning_rate_fn,
                        phase)
  state = create_train_state(config, model, tx, rng)
  last_manager, best_manager = checkpoints.make_managers(
      out_dir, config.keep_checkpoints)
  if last_manager.latest_step() is not None:
    state = restore_state(last_manager, state)
    logging.info("Resuming phase %s from step %d.", phase.name,
                 int(state.step))
  else:
    state = init_from_previous(config, workdir, phase, state)
  checkpoints.save_config(config, out_dir)
  step_offset = int(state.step)
  last_good = last_manager.latest_step()

  # The state is passed and returned once (in/out_axes None), not replicated:
  # gradients and statistics are averaged, so every device holds the same.
  p_train_step = parallel.data_parallel(
      functools.partial(train_step, model=model, tx=tx, phase=phase,
                        learning_rate_fn=learning_rate_fn),
      AXIS, in_axes=(None, 0), out_axes=(None, None))

  def run_evaluation(step):
    ds = input_pipeline.create_dataset(config, "validation", builder,
                                       batch_size=eval_batch_size(config))
    result = evaluate_lib.evaluate(
        model, {"params": state.params, "batch_stats": state.batch_stats},
        input_pipeline.as_numpy(ds), input_size=config.input_size,
        flip_test=config.flip_test, flip_shift=config.flip_shift,
        masks_to_one=phase.masks_to_one, num_pictures=config.num_pictures)
    writer.write_scalars(step, {f"validation/{k}": v
                                for k, v in result.table.items()})
    _log_pictures(writer, os.path.join(out_dir, "pictures"), step,
                  result.pictures)
    logging.info("Phase %s, step %d:\n%s", phase.name, step,
                  pckh.format_table(result.table))
    return result

  report_progress = periodic_actions.ReportProgress(
      num_train_steps=num_steps, writer=writer)
  hooks = [report_progress] if jax.process_index() == 0 else []
  pending_metrics = []
  train_start, images_seen = time.time(), 0
  table = None
  logging.info("Phase %s: %d steps (%d per epoch), global batch %d.",
               phase.name, num_steps, steps_per_epoch, config.batch_size)
  # Without blocking, many queued steps with collectives were seen to
  # deadlock on multi-device CPU hosts; on accelerators it costs little.
  block_each_step = (jax.devices()[0].platform == "cpu" and
                     jax.device_count() > 1)
  try:
    for step in range(step_offset + 1, num_steps + 1):
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        batch = next(train_iter)
        state, metrics = p_train_step(state, batch)
        if block_each_step:
          jax.block_until_ready(metrics)
      pending_metrics.append(metrics)
      images_seen += config.batch_size
      for hook in hooks:
        hook(step)
      is_last = step == num_steps
      log_now = step % config.log_every_steps == 0 or is_last
      eval_now = step % eval_every == 0 or is_last
      save_now = step % config.checkpoint_every_steps == 0 or is_last
      if log_now or eval_now or save_now:
        fetched = jax.device_get(pending_metrics)
        pending_metrics = []
        _check_finite(fetched, step, last_manager.directory, last_good)
        if log_now:
          summary = {f"train/{k}": float(np.mean([m[k] for m in fetched]))
                     for k in fetched[0]}
          elapsed = time.time() - train_start
          summary["train/images_per_second"] = images_seen / max(elapsed, 1e-9)
          train_start, images_seen = time.time(), 0
          writer.write_scalars(step, summary)
      if eval_now:
        with report_progress.timed("eval"):
          result = run_evaluation(step)
        table = result.table
        best_manager.save(step, args=_save_args(state),
                          metrics={"Mean": table["Mean"]})
        # Throughput counts training only.
        train_start, images_seen = time.time(), 0
      if save_now:
        last_manager.save(step, args=_save_args(state))
        last_good = step
  finally:
    # Also on Ctrl-C or an error: finish writing the checkpoints begun.
    last_manager.wait_until_finished()
    best_manager.wait_until_finished()
  if table is None:  # Already trained to the end: evaluate what is there.
    table = run_evaluation(int(state.step)).table
  evaluate_lib.write_results(os.path.join(out_dir, "eval_results.json"), table,
                             phase=phase.name, step=int(state.step))
  writer.flush()
  return table


def _save_args(state: TrainState):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp.args.StandardSave(state.as_dict())
