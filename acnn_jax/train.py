"""Training one ACNN phase: state, loss, pmapped train step, the loop.

Reads top to bottom like flax's imagenet example: the train state, the loss,
`train_step`, state creation, then `train_and_evaluate(config, workdir)`.
The model (`models.create_model`), the optimizer (`optimizers`), the phases
(`phases`), checkpoints and phase chaining (`checkpoints`), evaluation
(`evaluate`) and pictures (`visualize`) live in their own modules.

Phase p of a workdir lives in WORKDIR/phase_<p>/ (see `checkpoints`). Rerunning
the same command resumes from that phase's last usable checkpoint, with the
data stream where it left off (a resumed run equals an uninterrupted one); a
fresh phase B or C starts from the previous phase's last checkpoint. No
checkpoint is saved from a state holding NaN or inf.
"""

import functools
import math
import os
import time
from typing import Any, Dict

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
from acnn_jax import configuration
from acnn_jax import errors
from acnn_jax import evaluate as evaluate_lib
from acnn_jax import finite
from acnn_jax import mask_stats
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import parallel
from acnn_jax import pckh
from acnn_jax import phases
from acnn_jax import plots
from acnn_jax import saved_config
from acnn_jax import visualize
from input_pipeline import pipeline
from input_pipeline import prepare


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


def mask_prior(masks, weight):
  """The prior that rewards discarding: `weight` * the mean of the masks
  that gate a later stage (all but the last), 0 with one stage.

  Args:
    masks: (S, B, h, w, 1) the masks of `ACNN.apply`.
    weight: `config.attention_sparsity`.
  """
  if masks.shape[0] < 2 or not weight:
    return jnp.zeros((), jnp.float32)
  return weight * jnp.mean(masks[:-1].astype(jnp.float32))


def _task_norms(grads) -> Dict[str, jax.Array]:
  return {f"grad_norm_{task}":
          optax.tree.norm(models.split_by_task(grads, (task,))[0])
          for task in models.TASKS}


def train_step(state: TrainState, batch, *, model: models.ACNN,
               tx: optax.GradientTransformation, phase: phases.Phase,
               learning_rate_fn, attention_sparsity: float = 0.0):
  """One pmapped step on a device's share of the batch.

  The gradient is taken only for the phase's tasks; the frozen task's
  parameters are carried over untouched (not even `p + 0`), and its BatchNorm
  layers run on their running statistics, so they stay bit-for-bit the same.
  The loss is `heatmap_loss`, plus `mask_prior` when the masks are learned.
  """
  prior_weight = 0.0 if phase.masks_to_one else attention_sparsity
  trained, frozen = models.split_by_task(state.params, phase.trained)

  def loss_fn(trained_params):
    variables = {"params": {**frozen, **trained_params},
                 "batch_stats": state.batch_stats}
    out, new_vars = model.apply(
        variables, batch["image"], train=True,
        masks_to_one=phase.masks_to_one, frozen_task=phase.frozen_task,
        mutable=["batch_stats"])
    heatmap, per_stage = heatmap_loss(out.predictions, batch["heatmaps"],
                                      batch["target_weight"])
    loss = heatmap + mask_prior(out.masks, prior_weight)
    return loss, (new_vars["batch_stats"], heatmap, per_stage, out.masks)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (loss, (batch_stats, heatmap, per_stage, masks)), grads = grad_fn(trained)
  grads = jax.lax.pmean(grads, parallel.AXIS)
  full_grads = {**jax.tree_util.tree_map(jnp.zeros_like, frozen), **grads}
  updates, opt_state = tx.update(full_grads, state.opt_state, state.params)
  new_trained = optax.apply_updates(
      trained, models.split_by_task(updates, phase.trained)[0])
  new_state = state.replace(step=state.step + 1,
                            params={**state.params, **new_trained},
                            batch_stats=batch_stats, opt_state=opt_state)
  metrics = {"loss": loss, "heatmap_loss": heatmap,
             "learning_rate": learning_rate_fn(state.step),
             "mask_mean": jnp.mean(masks[:-1]) if masks.shape[0] > 1 else
             jnp.mean(masks), **_task_norms(grads)}
  for i in range(per_stage.shape[0]):
    metrics[f"loss_stage_{i}"] = per_stage[i]
  metrics = jax.lax.pmean(metrics, parallel.AXIS)
  return new_state, metrics


def create_train_state(config, model, tx, rng) -> TrainState:
  variables = models.init_variables(model, rng, config.input_size)
  return TrainState(step=jnp.asarray(0, jnp.int32),
                    params=variables["params"],
                    batch_stats=variables["batch_stats"],
                    opt_state=tx.init(variables["params"]))


class NonFiniteLossError(errors.UserError, FloatingPointError):
  """The loss or the training state became NaN or infinite (or overflows);
  training stopped, and no checkpoint holds that state."""


def _last_good(manager_dir, last_good) -> str:
  if last_good is None:
    return (f"No checkpoint of this phase was saved yet ({manager_dir}); a "
            "rerun starts the phase again.")
  return (f"The last good checkpoint, step {last_good}, is kept in "
          f"{manager_dir}; a rerun resumes from it.")


_ADVICE = (" Lower --config.learning_rate (a resumed phase takes the new "
           "value), check the data, or use float32 (--config.dtype=float32).")


def _check_finite_loss(metrics_list, step, manager_dir, last_good):
  for m in metrics_list:
    loss = float(m["loss"])
    if not math.isfinite(loss):
      raise NonFiniteLossError(
          f"The training loss is {loss} at or before step {step}; training "
          f"stopped. {_last_good(manager_dir, last_good)}{_ADVICE}")


def _check_finite_state(state, step, manager_dir, last_good):
  """Before any save: a checkpoint never holds a diverged state.

  The loss of step s is computed before s's update, so it can be finite
  while the state after the update is not; one reduction on the device
  looks at every number of the state.
  """
  if not bool(finite.all_finite(state.as_dict(), limit=finite.LARGEST)):
    raise NonFiniteLossError(
        f"The training state after step {step} holds NaN, infinite or "
        f"overflowing numbers, so it was not saved; training stopped. "
        f"{_last_good(manager_dir, last_good)}{_ADVICE}")


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> Dict[str, Any]:
  """Trains one phase (`config.phase`) and evaluates it.

  Args:
    config: see configs/default.py.
    workdir: the run's directory; this phase writes WORKDIR/phase_<p>/.

  Returns:
    The final validation PCKh table with the mask statistics
    (`mask_stats`), `phase` and `step` (also in phase_<p>/eval_results.json;
    every evaluation is appended to phase_<p>/eval_history.json).

  Raises:
    errors.ConfigError: a config field has a bad value (nothing is written),
      or a resumed phase's network fields differ from its config.json.
    errors.MissingError: the data or the previous phase's checkpoint is
      missing.
    errors.InputError: no checkpoint of the phase (or of its start) can be
      restored.
    NonFiniteLossError: the loss or the state became NaN or infinite.
  """
  configuration.validate(config)
  phase = phases.PHASES[config.phase]
  workdir = os.path.abspath(workdir)
  out_dir = checkpoints.phase_dir(workdir, phase.name)
  os.makedirs(out_dir, exist_ok=True)
  writer = metric_writers.create_default_writer(
      out_dir, just_logging=jax.process_index() > 0)

  model = models.create_model(config, bn_axis_name=parallel.AXIS)
  rng = jax.random.PRNGKey(config.seed)
  variables_shape = jax.eval_shape(
      lambda r: models.init_variables(model, r, config.input_size), rng)
  last_manager, best_manager = checkpoints.make_managers(
      out_dir, config.keep_checkpoints)
  resume = last_manager.latest_step() is not None
  if resume:  # Before anything is read: a changed network is named now.
    saved_config.check_resumable(config, out_dir)
  # Before the data and the initialisation: a missing previous phase is
  # reported in seconds.
  start = None if resume else checkpoints.start_variables(
      config, workdir, phase, variables_shape)

  builder = prepare.prepare_builder(config, workdir)
  num_train = builder.info.splits["train"].num_examples
  steps_per_epoch = (config.steps_per_epoch if config.steps_per_epoch > 0
                     else num_train // config.batch_size)
  if steps_per_epoch <= 0:
    raise errors.InputError(
        f"The train split has {num_train} people, fewer than "
        f"config.batch_size={config.batch_size}.")
  num_steps = int(config.num_epochs * steps_per_epoch)
  eval_every = max(1, int(config.eval_every_epochs * steps_per_epoch))

  learning_rate_fn = optimizers.create_learning_rate_fn(config,
                                                        steps_per_epoch)
  tx = optimizers.create_optimizer(config, variables_shape["params"],
                                   learning_rate_fn, phase)
  state = create_train_state(config, model, tx, rng)
  if resume:
    state = TrainState(**checkpoints.restore_latest(last_manager,
                                                    state.as_dict()))
    logging.info("Resuming phase %s from step %d.", phase.name,
                 int(state.step))
  elif start is not None:
    state = state.replace(params=start["params"],
                          batch_stats=start["batch_stats"])
  step_offset = int(state.step)
  last_good = last_manager.latest_step()
  config = saved_config.settle_config(config, out_dir, step_offset,
                                      finished=step_offset >= num_steps)
  # The stream continues exactly where the checkpoint left it.
  train_iter = parallel.prefetch(pipeline.create_dataset(
      config, "train", builder, start_step=step_offset).as_numpy_iterator())

  # The state is passed and returned once (in/out_axes None), not replicated:
  # gradients and statistics are averaged, so every device holds the same.
  p_train_step = parallel.data_parallel(
      functools.partial(train_step, model=model, tx=tx, phase=phase,
                        learning_rate_fn=learning_rate_fn,
                        attention_sparsity=config.attention_sparsity),
      parallel.AXIS, in_axes=(None, 0), out_axes=(None, None))

  def run_evaluation(step):
    ds = pipeline.create_dataset(
        config, "validation", builder,
        batch_size=configuration.eval_batch_size(config))
    result = evaluate_lib.evaluate(
        model, {"params": state.params, "batch_stats": state.batch_stats},
        ds.as_numpy_iterator(), input_size=config.input_size,
        flip_test=config.flip_test, flip_shift=config.flip_shift,
        masks_to_one=phase.masks_to_one, num_pictures=config.num_pictures,
        # Only the synthetic set knows where the target person is drawn.
        region_stats=config.synthetic_images > 0)
    scalars = {**result.table, **result.mask_stats}
    writer.write_scalars(step, {f"validation/{k}": v
                                for k, v in scalars.items()})
    visualize.write_pictures(writer, os.path.join(out_dir, "pictures"), step,
                             result.pictures)
    logging.info("Phase %s, step %d:\n%s%s", phase.name, step,
                 pckh.format_table(result.table),
                 mask_stats.format_stats(result.mask_stats))
    record = {**scalars, "phase": phase.name, "step": step}
    evaluate_lib.append_history(history_path, record)
    if jax.process_index() == 0:
      plots.write_history_plots(
          writer, out_dir, step,
          evaluate_lib.history_across_phases(workdir, phase.name))
    return record

  report_progress = periodic_actions.ReportProgress(
      num_train_steps=num_steps, writer=writer)
  hooks = [report_progress] if jax.process_index() == 0 else []
  pending_metrics = []
  train_start, images_seen = time.time(), 0
  history_path = os.path.join(out_dir, "eval_history.json")
  results = None
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
        _check_finite_loss(fetched, step, last_manager.directory, last_good)
        if log_now:
          summary = {f"train/{k}": float(np.mean([m[k] for m in fetched]))
                     for k in fetched[0]}
          elapsed = time.time() - train_start
          summary["train/images_per_second"] = images_seen / max(elapsed, 1e-9)
          train_start, images_seen = time.time(), 0
          writer.write_scalars(step, summary)
      if eval_now or save_now:
        _check_finite_state(state, step, last_manager.directory, last_good)
      if eval_now:
        with report_progress.timed("eval"):
          results = run_evaluation(step)
        checkpoints.save_state(best_manager, step, state.as_dict(),
                               metrics={"Mean": results["Mean"]})
        # Throughput counts training only.
        train_start, images_seen = time.time(), 0
      if save_now:
        checkpoints.save_state(last_manager, step, state.as_dict())
        last_good = step
  finally:
    # Also on Ctrl-C or an error: finish writing the checkpoints begun.
    last_manager.wait_until_finished()
    best_manager.wait_until_finished()
  if results is None:  # Already trained to the end: evaluate what is there.
    results = run_evaluation(int(state.step))
  evaluate_lib.write_results(os.path.join(out_dir, "eval_results.json"),
                             results)
  writer.flush()
  return results
