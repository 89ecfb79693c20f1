"""Training one ACNN phase: the loop, `train_and_evaluate(config, workdir)`.

Like flax's imagenet example, with the state, the loss and the pmapped
`train_step` in `train_step.py` (free of TensorFlow, for the benchmark).
The model (`models.create_model`), the optimizer (`optimizers`), the phases
(`phases`), checkpoints and phase chaining (`checkpoints`), evaluation
(`evaluate`) and pictures (`visualize`) live in their own modules.

Phase p of a workdir lives in WORKDIR/phase_<p>/ (see `checkpoints`). Rerunning
the same command resumes from that phase's last usable checkpoint, with the
data stream where it left off (a resumed run equals an uninterrupted one); a
fresh phase B or C starts from the previous phase's last checkpoint. No
checkpoint is saved from a state holding NaN or inf.

In a multi-host run (`distributed`) every process runs this function on its
own devices and share of the data; process 0 writes the files.
"""

import json
import math
import os
import time
from typing import Any, Dict

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
import ml_collections
import numpy as np

from acnn_jax import checkpoints
from acnn_jax import configuration
from acnn_jax import distributed
from acnn_jax import errors
from acnn_jax import evaluate as evaluate_lib
from acnn_jax import mask_stats
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import parallel
from acnn_jax import pckh
from acnn_jax import phases
from acnn_jax import plots
from acnn_jax import saved_config
from acnn_jax import train_step as train_step_lib
from acnn_jax import visualize
from input_pipeline import pipeline
from input_pipeline import prepare


# The step and its state live in `train_step` (no TensorFlow there, so the
# benchmark runs on hosts without it); these names are the training API.
TrainState = train_step_lib.TrainState


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
  if not bool(checkpoints.all_finite(state.as_dict(),
                                     limit=checkpoints.LARGEST_SQUARABLE)):
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
  distributed.check_agreement(json.dumps(config.to_dict(), sort_keys=True,
                                         default=str))
  phase = phases.PHASES[config.phase]
  workdir = os.path.abspath(workdir)
  out_dir = checkpoints.phase_dir(workdir, phase.name)
  os.makedirs(out_dir, exist_ok=True)
  writer = metric_writers.create_default_writer(
      out_dir, just_logging=not distributed.is_primary())

  model = models.create_model(config)
  rng = jax.random.PRNGKey(config.seed)
  variables_shape = models.variable_shapes(model, config.input_size)
  last_manager, best_manager = checkpoints.make_managers(
      out_dir, config.keep_checkpoints)
  resume = last_manager.latest_step() is not None
  if resume:  # Before anything is read: a changed network is named now.
    saved_config.check_resumable(config, out_dir)
  # Before the data and the initialisation: a missing previous phase is
  # reported in seconds.
  start = None if resume else checkpoints.start_variables(
      config, workdir, phase, variables_shape)

  # Process 0 writes the synthetic data and prepares the data set; the
  # others then find it ready instead of writing it at the same time.
  builder = distributed.primary_first(
      "data prepared", lambda _: prepare.prepare_builder(config, workdir))
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
  state = train_step_lib.create_state(
      models.init_variables(model, rng, config.input_size), tx)
  if resume:
    state = TrainState(**checkpoints.restore_latest(last_manager,
                                                    state.as_dict()))
    logging.info("Resuming phase %s from step %d.", phase.name,
                 int(state.step))
  elif start is not None:
    state = state.replace(params=start["params"],
                          batch_stats=start["batch_stats"])
  # Placed as the step returns it, so that the step compiles once.
  state = parallel.put_state(state)
  step_offset = int(state.step)
  last_good = last_manager.latest_step()
  # Process 0 writes config.json; the others read what it wrote.
  config = distributed.primary_first(
      "config settled", lambda primary: saved_config.settle_config(
          config, out_dir, step_offset, finished=step_offset >= num_steps,
          write=primary))
  # The stream continues exactly where the checkpoint left it.
  train_iter = parallel.prefetch(pipeline.create_dataset(
      config, "train", builder, start_step=step_offset).as_numpy_iterator())

  # Donated: the step writes the new state into the old one's buffers.
  p_train_step = train_step_lib.make(
      model, tx, phase, learning_rate_fn, config.attention_sparsity,
      donate=True, cross_device_batch_norm=config.cross_device_batch_norm,
      sigma=config.sigma)

  def run_evaluation(step):
    ds = pipeline.create_dataset(
        config, "validation", builder,
        batch_size=configuration.eval_batch_size(config))
    result = evaluate_lib.evaluate(
        model, {"params": state.params, "batch_stats": state.batch_stats},
        ds.as_numpy_iterator(), input_size=config.input_size,
        flip_test=config.flip_test, flip_shift=config.flip_shift,
        masks_to_one=phase.masks_to_one,
        num_pictures=config.num_pictures if distributed.is_primary() else 0,
        # Only the synthetic set knows where the target person is drawn.
        region_stats=config.synthetic_images > 0)
    scalars = {**result.table, **result.mask_stats}
    writer.write_scalars(step, {f"validation/{k}": v
                                for k, v in scalars.items()})
    # How many people the table scored, and how many the data set left
    # out: a figure means little without them.
    people = evaluate_lib.people_record(builder, len(result.predictions))
    logging.info("Phase %s, step %d:\n%s%s\n%s", phase.name, step,
                 pckh.format_table(result.table),
                 mask_stats.format_stats(result.mask_stats),
                 evaluate_lib.describe_people(people))
    record = {**scalars, **people, "phase": phase.name, "step": step}
    # Every process has the whole table; process 0 writes the files.
    if distributed.is_primary():
      visualize.write_pictures(writer, os.path.join(out_dir, "pictures"),
                               step, result.pictures)
      evaluate_lib.append_history(history_path, record)
      plots.write_history_plots(
          writer, out_dir, step,
          evaluate_lib.history_across_phases(workdir, phase.name))
    return record

  report_progress = periodic_actions.ReportProgress(
      num_train_steps=num_steps, writer=writer)
  hooks = [report_progress] if distributed.is_primary() else []
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
  if distributed.is_primary():
    evaluate_lib.write_results(os.path.join(out_dir, "eval_results.json"),
                               results)
  writer.flush()
  return results
