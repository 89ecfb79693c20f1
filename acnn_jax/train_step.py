"""The train step of one phase, free of TensorFlow: state, loss, step.

`train.py` runs it over the MPII pipeline; `benchmarks/train_step.py` times
it on random batches on machines without TensorFlow (a GPU or TPU host with
only JAX). Everything here imports JAX, flax and optax only.
"""

import functools
from typing import Any, Callable, Dict, Optional

import flax
import jax
import jax.flatten_util
import jax.numpy as jnp
import optax

from acnn_jax import models
from acnn_jax import parallel
from acnn_jax import phases
from acnn_jax import training_batch


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
    (total loss, (S,) per-stage losses), float32 (float64 for float64
    predictions).
  """
  predictions = predictions.astype(models.output_dtype(predictions.dtype))
  diff = predictions - targets[None]
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
  masks = masks[:-1].astype(models.output_dtype(masks.dtype))
  return weight * jnp.mean(masks)


def _task_norms(grads) -> Dict[str, jax.Array]:
  return {f"grad_norm_{task}":
          optax.tree.norm(models.split_by_task(grads, (task,))[0])
          for task in models.TASKS}


def train_step(state: TrainState, batch, *, model: models.ACNN,
               tx: optax.GradientTransformation, phase: phases.Phase,
               learning_rate_fn, attention_sparsity: float = 0.0,
               axis_name: Optional[str] = parallel.AXIS,
               sigma: float = 1.0):
  """One step on a device's share of the batch (map it with `make`).

  The batch is compact, as the input pipeline sends it, or already holds
  float images and heatmaps (`training_batch.expand`, with `sigma`).

  Gradients, BatchNorm statistics (the model's `bn_axis_name`) and metrics
  are averaged over `axis_name` (None: one device, nothing to average).

  The gradient is taken only for the phase's tasks; the frozen task's
  parameters are carried over untouched (not even `p + 0`), and its BatchNorm
  layers run on their running statistics, so they stay bit-for-bit the same.
  The loss is `heatmap_loss`, plus `mask_prior` when the masks are learned.
  """
  batch = training_batch.expand(batch, sigma)
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
  grads = parallel.pmean(grads, axis_name)
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
  metrics = parallel.pmean(metrics, axis_name)
  return new_state, metrics


def make(model: models.ACNN, tx: optax.GradientTransformation,
         phase: phases.Phase, learning_rate_fn: Callable,
         attention_sparsity: float = 0.0, donate: bool = False,
         num_devices: Optional[int] = None,
         cross_device_batch_norm: bool = True, sigma: float = 1.0):
  """`train_step` mapped over the local devices (`parallel.data_parallel`).

  The state is passed and returned once (in/out_axes None), not replicated:
  gradients and statistics are averaged, so every device holds the same.
  The batch has the device axis first (`parallel.shard`).

  With `cross_device_batch_norm=False` BatchNorm normalises each device's
  share of the batch with that share's own statistics, as one GPU of
  Newell's recipe did its whole batch; each device updates the running
  statistics with them, and the updated running statistics of the trained
  tasks are then averaged over the devices (one all-reduce after the step,
  instead of one per layer in the forward pass and in the backward pass),
  so that the one returned state holds their expectation over the
  devices: the statistics of a per-device batch, which inference then uses.

  Args:
    model: the ACNN (its BatchNorm axis is set here).
    tx: the phase's optimizer (`optimizers.create_optimizer`).
    phase: what the phase trains.
    learning_rate_fn: step -> learning rate (logged only; `tx` applies it).
    attention_sparsity: the weight of `mask_prior` in phases B and C.
    donate: let XLA reuse the input state's buffers for the output state
      (the caller must not use the state it passed in again).
    num_devices: default: all local devices.
    cross_device_batch_norm: BatchNorm's batch statistics over the whole
      global batch (all devices) in the forward pass; False: over each
      device's share (`config.cross_device_batch_norm`).
    sigma: the heatmaps' Gaussian width for compact batches
      (`config.sigma`; `training_batch.expand`).

  Returns:
    (state, sharded batch) -> (new state, metrics averaged over devices).
  """
  axis_name = parallel.collective_axis(num_devices)
  bn_axis_name = axis_name if cross_device_batch_norm else None
  step = functools.partial(
      train_step, model=model.clone(bn_axis_name=bn_axis_name), tx=tx,
      phase=phase, learning_rate_fn=learning_rate_fn,
      attention_sparsity=attention_sparsity, axis_name=axis_name,
      sigma=sigma)
  if axis_name is not None and bn_axis_name is None:
    per_device_step = step

    def step(state, batch):  # pylint: disable=function-redefined
      new_state, metrics = per_device_step(state, batch)
      # Only the trained tasks' statistics moved; the frozen ones stay
      # bit for bit. One vector, so one all-reduce, not one per leaf.
      moved = models.split_by_task(new_state.batch_stats, phase.trained)[0]
      flat, unflatten = jax.flatten_util.ravel_pytree(moved)
      moved = unflatten(parallel.pmean(flat, axis_name))
      return new_state.replace(
          batch_stats={**new_state.batch_stats, **moved}), metrics
  return parallel.data_parallel(step, parallel.AXIS, in_axes=(None, 0),
                                out_axes=(None, None),
                                donate_argnums=(0,) if donate else (),
                                num_devices=num_devices)


def create_state(variables, tx: optax.GradientTransformation) -> TrainState:
  """Step 0 with `variables` ({'params', 'batch_stats'}) and a fresh
  optimizer state."""
  return TrainState(step=jnp.asarray(0, jnp.int32),
                    params=variables["params"],
                    batch_stats=variables["batch_stats"],
                    opt_state=tx.init(variables["params"]))
