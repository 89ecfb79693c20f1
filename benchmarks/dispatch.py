"""Times the host's dispatch of the train step: pmap against jit(shard_map).

A step call returns before the device has finished (asynchronous dispatch).
What the host spends until then, flattening and checking the ~2000 leaves of
the state (params, BatchNorm statistics, optimizer state) and placing the
arguments, is time a fast accelerator waits for once it outruns the host.
This measures it for the same per-device step (`train_step.train_step`)
mapped three ways, on whatever devices JAX sees:

  data_parallel  `parallel.data_parallel`, as `train_step.make` maps the
                 step for training: jit of shard_map over the devices of
                 one process (pmap over several processes), plain jit on
                 one device.
  pmap           jax.pmap, also on one device.
  shard_map      jax.jit of jax.shard_map over a one-axis mesh of the
                 devices, the state replicated (P()), the batch split.

Each is called as training calls it (the mapped function itself, donating
the state), one call at a time: the host waits for the previous step, then
times the call until it returns ("dispatch_ms", median over --steps rounds
that call every variant once, so that a changing load falls on all alike)
and until its results are ready ("step_ms"). --body=identity maps a
function that only returns the state it got (step + 1): the host's own
work, which on a CPU otherwise shares the cores with the step it has just
started. One JSON line per variant:

  {"measure": "dispatch", "variant", "body", "platform", "devices",
   "phase", "dtype", "input_size", "global_batch", "state_leaves",
   "compile_s" (first call and --warmup), "dispatch_ms",
   "dispatch_ms_quartiles", "step_ms"}

The leaf count, not the image size, sets the dispatch cost: --input_size=64
(the smallest the paper's network takes) keeps the step itself short on a
CPU. With --flops, one more line estimates the step on an accelerator from
XLA's cost analysis of the lowered (not compiled) step at --flops_size,
--flops_batch images per device, --flops_dtype:

  {"measure": "accelerator_estimate", "flops_per_image", "peak_tflops",
   "utilisation", "step_ms", "two_percent_ms"}

With --all_reduces, a line counts the all-reduces of the lowered step over
all devices with BatchNorm statistics across devices and per device.

Examples (2 fake CPU devices, then one):

  python benchmarks/dispatch.py --devices=2 --flops --all_reduces
  python benchmarks/dispatch.py --devices=2 --body=identity --steps=100
  python benchmarks/dispatch.py --devices=1
"""

import argparse
import json
import os
import sys
import time
import types


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--devices", type=int, default=0,
                      help="Fake CPU devices (XLA_FLAGS, set before JAX "
                      "loads); 0: the devices JAX finds.")
  parser.add_argument("--variants", default="data_parallel,pmap,shard_map")
  parser.add_argument("--body", default="step", choices=("step", "identity"),
                      help="What each device runs: the train step, or "
                      "nothing but returning the state (step + 1).")
  parser.add_argument("--phase", default="c")
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--input_size", type=int, default=64)
  parser.add_argument("--per_device_batch", type=int, default=1)
  parser.add_argument("--num_stacks", type=int, default=4)
  parser.add_argument("--features", type=int, default=256)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=1,
                      help="Untimed calls after the first (compiling) one.")
  parser.add_argument("--flops", action="store_true")
  parser.add_argument("--flops_size", type=int, default=256)
  parser.add_argument("--flops_batch", type=int, default=8)
  parser.add_argument("--flops_dtype", default="bfloat16")
  parser.add_argument("--peak_tflops", type=float, default=989.0,
                      help="Dense peak per device (H100 bfloat16).")
  parser.add_argument("--utilisation", type=float, default=0.4)
  parser.add_argument("--all_reduces", action="store_true")
  return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.devices:
  os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") +
      f" --xla_force_host_platform_device_count={ARGS.devices}").strip()
  os.environ.setdefault("JAX_PLATFORMS", "cpu")

# pylint: disable=g-import-not-at-top,wrong-import-position
import functools

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import parallel
from acnn_jax import phases
from acnn_jax import train_step
# pylint: enable=g-import-not-at-top,wrong-import-position

# pose-hg-train's RMSProp, as in configs/default.py.
OPTIMIZER = dict(optimizer="rmsprop", learning_rate=5e-4, rmsprop_decay=0.99,
                 rmsprop_eps=1e-8)


def learning_rate(step):
  del step
  return OPTIMIZER["learning_rate"]


def setup(args, input_size, dtype, placed=True):
  """(model, optimizer, phase, state) of the network `args` describe."""
  phase = phases.PHASES[args.phase]
  model = models.ACNN(num_stacks=args.num_stacks, features=args.features,
                      dtype=models.DTYPES[dtype])
  shapes = models.variable_shapes(model, input_size)
  tx = optimizers.create_optimizer(types.SimpleNamespace(**OPTIMIZER),
                                   shapes["params"], learning_rate, phase)
  if not placed:
    state = jax.eval_shape(lambda v: train_step.create_state(v, tx), shapes)
    return model, tx, phase, state
  variables = models.init_variables(model, jax.random.PRNGKey(0), input_size)
  state = parallel.put_state(train_step.create_state(variables, tx))
  return model, tx, phase, state


def host_batch(global_batch, input_size, dtype=np.float32):
  rng = np.random.default_rng(0)
  size = input_size // 4
  return {"image": rng.uniform(0, 1, (global_batch, input_size, input_size,
                                      3)).astype(dtype),
          "heatmaps": rng.uniform(0, 0.1, (global_batch, size, size, 16)
                                  ).astype(dtype),
          "target_weight": np.ones((global_batch, 16), dtype)}


def per_device_fn(args, model, tx, phase, axis_name):
  """The per-device function of --body: the train step, or one that returns
  the state it got (step + 1) and one averaged metric."""
  if args.body == "step":
    return functools.partial(
        train_step.train_step, model=model.clone(bn_axis_name=axis_name),
        tx=tx, phase=phase, learning_rate_fn=learning_rate,
        axis_name=axis_name)

  def identity(state, batch):
    loss = parallel.pmean(jnp.mean(batch["image"]), axis_name)
    return state.replace(step=state.step + 1), {"loss": loss}
  return identity


def make_step(args, variant, model, tx, phase):
  """The per-device function mapped over all devices as `variant` maps it,
  donating the state."""
  if variant == "data_parallel":
    axis_name = parallel.collective_axis()
    return parallel.data_parallel(
        per_device_fn(args, model, tx, phase, axis_name), parallel.AXIS,
        in_axes=(None, 0), out_axes=(None, None), donate_argnums=(0,))
  fn = per_device_fn(args, model, tx, phase, parallel.AXIS)
  if variant == "pmap":
    return jax.pmap(fn, axis_name=parallel.AXIS, in_axes=(None, 0),
                    out_axes=(None, None), donate_argnums=(0,))
  if variant == "shard_map":
    mesh = jax.sharding.Mesh(np.array(jax.devices()), (parallel.AXIS,))

    def step(state, batch):
      # Each shard of the (devices, B / devices, ...) batch is (1, ...).
      return fn(state, jax.tree_util.tree_map(lambda x: x[0], batch))
    # check_vma=False, as jax.pmap's own shard_map: convolution.py's
    # platform_dependent weight gradient has branches of different
    # varying-axis types, which the check refuses.
    return jax.jit(jax.shard_map(
        step, mesh=mesh, in_specs=(P(), P(parallel.AXIS)),
        out_specs=(P(), P()), check_vma=False), donate_argnums=(0,))
  raise ValueError(f"unknown variant {variant!r}")


def time_variants(args):
  """Times the variants' calls, interleaved (a round calls each once), so
  that a machine's changing load falls on all alike."""
  model, tx, phase, state = setup(args, args.input_size, args.dtype)
  devices = jax.device_count()
  global_batch = args.per_device_batch * devices
  batch = jax.device_put(parallel.shard(host_batch(global_batch,
                                                   args.input_size)),
                         parallel.batch_sharding())
  variants = args.variants.split(",")
  steps, states, compile_s = {}, {}, {}
  for variant in variants:
    steps[variant] = make_step(args, variant, model, tx, phase)
    # Each its own copy: the steps donate (consume) the state they get.
    states[variant] = jax.tree_util.tree_map(jnp.copy, state)
    start = time.perf_counter()
    for _ in range(1 + args.warmup):
      states[variant], metrics = steps[variant](states[variant], batch)
      jax.block_until_ready((states[variant], metrics))
      compile_s.setdefault(variant, time.perf_counter() - start)
  dispatch = {variant: [] for variant in variants}
  total = {variant: [] for variant in variants}
  for _ in range(args.steps):
    for variant in variants:
      start = time.perf_counter()
      states[variant], metrics = steps[variant](states[variant], batch)
      dispatch[variant].append(time.perf_counter() - start)
      jax.block_until_ready((states[variant], metrics))
      total[variant].append(time.perf_counter() - start)
      if not np.isfinite(float(metrics["loss"])):
        raise FloatingPointError(f"{variant}: loss {metrics['loss']}")
  lines = []
  for variant in variants:
    ms = 1e3 * np.asarray(dispatch[variant])
    line = {"measure": "dispatch", "variant": variant, "body": args.body,
            "platform": jax.devices()[0].platform, "devices": devices,
            "phase": args.phase, "dtype": args.dtype,
            "input_size": args.input_size, "global_batch": global_batch,
            "state_leaves": len(jax.tree_util.tree_leaves(state)),
            "compile_s": round(compile_s[variant], 1),
            "dispatch_ms": round(float(np.median(ms)), 3),
            "dispatch_ms_quartiles": [round(float(q), 3) for q in
                                      np.percentile(ms, [25, 75])],
            "step_ms": round(1e3 * float(np.median(total[variant])), 1)}
    print(json.dumps(line), flush=True)
    lines.append(line)
  return lines


def lowered_step(args, input_size, dtype, per_device_batch, **make_kwargs):
  """The project's step over all devices, lowered (traced, not compiled)."""
  model, tx, phase, state = setup(args, input_size, dtype, placed=False)
  devices = jax.device_count()
  batch = host_batch(devices * per_device_batch, input_size)
  batch = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
      parallel.shard(batch))
  step = train_step.make(model, tx, phase, learning_rate, **make_kwargs)
  return step.lower(state, batch)


def accelerator_estimate(args):
  """The step's time at --utilisation of --peak_tflops, from XLA's flops."""
  lowered = lowered_step(args, args.flops_size, args.flops_dtype,
                         args.flops_batch)
  analysis = lowered.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  flops_per_image = float(analysis["flops"]) / args.flops_batch
  step_s = args.flops_batch * flops_per_image / (
      args.utilisation * args.peak_tflops * 1e12)
  line = {"measure": "accelerator_estimate", "phase": args.phase,
          "dtype": args.flops_dtype, "input_size": args.flops_size,
          "per_device_batch": args.flops_batch,
          "flops_per_image": flops_per_image,
          "peak_tflops": args.peak_tflops, "utilisation": args.utilisation,
          "step_ms": round(1e3 * step_s, 3),
          "two_percent_ms": round(20 * step_s, 4)}
  print(json.dumps(line), flush=True)
  return line


def count_all_reduces(args):
  counts = {}
  for cross in (True, False):
    text = lowered_step(args, args.input_size, args.dtype,
                        args.per_device_batch,
                        cross_device_batch_norm=cross).as_text()
    counts["cross_device" if cross else "per_device"] = text.count(
        "all_reduce")
  line = {"measure": "all_reduces", "phase": args.phase,
          "devices": jax.device_count(), "num_stacks": args.num_stacks,
          "features": args.features, **counts}
  print(json.dumps(line), flush=True)
  return line


def main(args):
  lines = []
  if args.flops:
    lines.append(accelerator_estimate(args))
  if args.all_reduces and jax.device_count() > 1:
    lines.append(count_all_reduces(args))
  return lines + time_variants(args)


if __name__ == "__main__":
  main(ARGS)
