"""Times ACNN's train step (and forward pass) on whatever devices JAX sees.

For each phase and compute dtype, prints one JSON line per measurement:

  {"measure": "train_step" | "forward", "phase", "dtype", "platform",
   "device_kind", "devices", "global_batch", "input_size",
   "init_s"      variables (jitted init) + optimizer state, placed,
   "trace_s"     tracing and lowering the step,
   "compile_s"   XLA compilation, or loading from the persistent cache
                 ("from_cache": true),
   "first_step_s", "step_s" (median of --steps after --warmup),
   "dispatch_ms" (median over the same steps of the host's time until the
                 call returns, the device still busy: the Python and
                 argument handling that a fast device waits for),
   "images_per_s", "flops_per_image" (XLA's cost analysis), "tflops"
   (achieved), "peak_tflops" and "mfu" (when the peak is known)}

It needs only JAX, flax, optax and numpy (no TensorFlow, no ml_collections),
so it runs unchanged on a CPU, a GPU or a TPU host: the batches are random,
the step is `acnn_jax.train_step`'s, the network the paper's unless flags
say otherwise, over all local devices (hide some, e.g. CUDA_VISIBLE_DEVICES=0,
to time one). Examples:

  python benchmarks/train_step.py                      # CPU: batch 4, f32
  python benchmarks/train_step.py --batch=12,64 --dtype=bfloat16,float32
  python benchmarks/train_step.py --phases=a --forward --steps=20

The persistent compilation cache is off unless --compilation_cache=DIR, so
compile_s is a cold compile; run twice with a DIR to see a second run's.
"""

import argparse
import contextlib
import json
import os
import sys
import time
import types

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from acnn_jax import compilation_cache
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import parallel
from acnn_jax import phases
from acnn_jax import train_step
# pylint: enable=g-import-not-at-top,wrong-import-position

# Dense peak TFLOP/s per device, by (device kind prefix, dtype), for MFU:
# vendors' data sheets; float32 on GPUs counts TF32 tensor cores, which XLA
# uses for float32 convolutions and matmuls at JAX's default precision.
PEAK_TFLOPS = {
    ("NVIDIA H200", "bfloat16"): 989.0, ("NVIDIA H200", "float32"): 494.5,
    ("NVIDIA H100", "bfloat16"): 989.0, ("NVIDIA H100", "float32"): 494.5,
    ("NVIDIA A100", "bfloat16"): 312.0, ("NVIDIA A100", "float32"): 156.0,
    ("NVIDIA L4", "bfloat16"): 121.0, ("NVIDIA L4", "float32"): 60.5,
    ("Tesla T4", "bfloat16"): 65.0, ("Tesla T4", "float32"): 8.1,
    ("TPU v4", "bfloat16"): 275.0, ("TPU v5 lite", "bfloat16"): 197.0,
    ("TPU v5e", "bfloat16"): 197.0, ("TPU v5p", "bfloat16"): 459.0,
    ("TPU v6 lite", "bfloat16"): 918.0, ("TPU v6e", "bfloat16"): 918.0,
}
# pose-hg-train's RMSProp, as in configs/default.py.
OPTIMIZER = dict(optimizer="rmsprop", learning_rate=5e-4, rmsprop_decay=0.99,
                 rmsprop_eps=1e-8)


def parse_args(argv=None):
  defaults = models.ACNN()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--phases", default="a,b,c")
  parser.add_argument("--dtype", default="float32",
                      help="Comma-separated: float32, bfloat16.")
  parser.add_argument("--batch", default="4",
                      help="Global batch sizes, comma-separated.")
  parser.add_argument("--input_size", type=int, default=256)
  for field in ("num_stacks", "features", "num_joints", "hourglass_depth",
                "attention_features"):
    parser.add_argument(f"--{field}", type=int,
                        default=getattr(defaults, field))
  parser.add_argument("--steps", type=int, default=10,
                      help="Timed steps (the median is reported).")
  parser.add_argument("--warmup", type=int, default=2,
                      help="Untimed steps after the first.")
  parser.add_argument("--forward", action="store_true",
                      help="Also time the forward pass (inference).")
  parser.add_argument("--no_donate", action="store_true",
                      help="Do not donate the state's buffers to the step.")
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="Per-device peak for MFU (default: known "
                      "GPUs/TPUs, none for CPUs).")
  parser.add_argument("--compilation_cache", default="off",
                      help="A folder for JAX's persistent cache, or off.")
  parser.add_argument("--quiet", action="store_true",
                      help="Print no JSON lines (callers that use the "
                      "returned records, e.g. gpu_check.py).")
  return parser.parse_args(argv)


def peak_tflops(args, dtype: str):
  if args.peak_tflops:
    return args.peak_tflops
  kind = jax.devices()[0].device_kind
  for (prefix, peak_dtype), peak in PEAK_TFLOPS.items():
    if kind.startswith(prefix) and peak_dtype == dtype:
      return peak
  return None


def random_batch(rng, global_batch, input_size, num_joints):
  size = input_size // 4
  return {
      "image": rng.uniform(0, 1, (global_batch, input_size, input_size, 3)
                           ).astype(np.float32),
      "heatmaps": (rng.uniform(0, 0.1, (global_batch, size, size, num_joints)
                               ).astype(np.float32)),
      "target_weight": np.ones((global_batch, num_joints), np.float32)}


def flops_of(compiled) -> float:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older JAX: one per program.
    analysis = analysis[0]
  return float((analysis or {}).get("flops", 0.0))


@contextlib.contextmanager
def counting_cache_hits():
  """Counts the programs read from the persistent compilation cache."""
  hits = [0]

  def listener(event, **kwargs):
    del kwargs
    if event == "/jax/compilation_cache/cache_hits":
      hits[0] += 1
  jax.monitoring.register_event_listener(listener)
  try:
    yield hits
  finally:
    jax.monitoring.unregister_event_listener(listener)


def timed(fn, steps, warmup, dispatch=None):
  """(first call's seconds, median of `steps` calls after `warmup`, times).

  `dispatch`, a list, receives each timed call's seconds until `fn`
  returned, before its result is waited for.
  """
  start = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - start
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    out = fn()
    if dispatch is not None:
      dispatch.append(time.perf_counter() - start)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - start)
  return first, float(np.median(times)), times


def dispatch_ms(dispatch) -> float:
  """The median of `timed`'s dispatch seconds, in milliseconds."""
  return round(1e3 * float(np.median(dispatch)), 3)


def record(args, measure, phase, dtype, batch, flops_per_device, step_s,
           **extra):
  devices = jax.local_device_count()
  flops_per_image = flops_per_device * devices / batch
  achieved = flops_per_image * batch / step_s / 1e12
  peak = peak_tflops(args, dtype)
  line = {"measure": measure, "phase": phase, "dtype": dtype,
          "platform": jax.devices()[0].platform,
          "device_kind": jax.devices()[0].device_kind, "devices": devices,
          "global_batch": batch, "input_size": args.input_size,
          **extra, "step_s": round(step_s, 5),
          "images_per_s": round(batch / step_s, 2),
          "flops_per_image": flops_per_image, "tflops": round(achieved, 4),
          "peak_tflops": peak,
          "mfu": round(achieved / (peak * devices), 4) if peak else None}
  if not getattr(args, "quiet", False):
    print(json.dumps(line), flush=True)
  return line


def make_model(args, dtype: str) -> models.ACNN:
  """The ACNN that `args` describes, computing in `dtype`."""
  return models.ACNN(
      num_stacks=args.num_stacks, features=args.features,
      num_joints=args.num_joints, hourglass_depth=args.hourglass_depth,
      attention_features=args.attention_features,
      dtype=models.DTYPES[dtype])


def bench_phase(args, phase_name, dtype, batch, rng, inspect=None):
  """Times one phase's train step (and its forward pass with --forward).

  Args:
    args: `parse_args`'s namespace.
    phase_name: 'a', 'b' or 'c'.
    dtype: the compute dtype's name.
    batch: the global batch.
    rng: a numpy Generator for the random batch.
    inspect: optional, compiled program -> dict of fields added to its
      record (gpu_check.py adds the memory XLA planned).

  Returns:
    The records, as printed.
  """
  phase = phases.PHASES[phase_name]
  model = make_model(args, dtype)
  config = types.SimpleNamespace(**OPTIMIZER)
  learning_rate = lambda step: OPTIMIZER["learning_rate"]  # pylint: disable=unnecessary-lambda-assignment
  start = time.perf_counter()
  shapes = models.variable_shapes(model, args.input_size)
  variables = models.init_variables(model, jax.random.PRNGKey(0),
                                    args.input_size)
  tx = optimizers.create_optimizer(config, shapes["params"], learning_rate,
                                   phase)
  state = parallel.put_state(train_step.create_state(variables, tx))
  jax.block_until_ready(state)
  init_s = time.perf_counter() - start

  step = train_step.make(model, tx, phase, learning_rate,
                         donate=not args.no_donate)
  host = random_batch(rng, batch, args.input_size, args.num_joints)
  device_batch = jax.device_put(parallel.shard(host),
                                parallel.batch_sharding())
  start = time.perf_counter()
  lowered = step.lower(state, device_batch)
  trace_s = time.perf_counter() - start
  with counting_cache_hits() as hits:
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
  flops = flops_of(compiled)
  inspected = inspect(compiled) if inspect else {}

  holder = [state]

  def one_step():
    holder[0], metrics = compiled(holder[0], device_batch)
    return metrics

  dispatch = []
  first, median, times = timed(one_step, args.steps, args.warmup, dispatch)
  loss = float(jax.device_get(one_step())["loss"])
  if not np.isfinite(loss):
    raise FloatingPointError(f"phase {phase_name} {dtype}: loss {loss}")
  lines = [record(args, "train_step", phase_name, dtype, batch, flops, median,
                  init_s=round(init_s, 2), trace_s=round(trace_s, 2),
                  compile_s=round(compile_s, 2), from_cache=hits[0] > 0,
                  first_step_s=round(first, 3),
                  dispatch_ms=dispatch_ms(dispatch),
                  step_times=[round(t, 4) for t in times], **inspected)]
  if args.forward:
    lines.append(bench_forward(args, model, phase, dtype, batch,
                               holder[0], device_batch, inspect))
  return lines


def bench_forward(args, model, phase, dtype, batch, state, device_batch,
                  inspect=None):
  """Inference: the network's forward pass alone, running statistics.

  `state` needs only `params` and `batch_stats`; `device_batch` only its
  "image"; `inspect` as in `bench_phase`.
  """
  def forward(variables, images):
    return model.apply(variables, images, masks_to_one=phase.masks_to_one
                       ).predictions[-1]
  mapped = parallel.data_parallel(forward, parallel.AXIS, in_axes=(None, 0),
                                  out_axes=0)
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  images = device_batch["image"]
  start = time.perf_counter()
  compiled = mapped.lower(variables, images).compile()
  compile_s = time.perf_counter() - start
  inspected = inspect(compiled) if inspect else {}
  first, median, times = timed(lambda: compiled(variables, images),
                               args.steps, args.warmup)
  return record(args, "forward", phase.name, dtype, batch,
                flops_of(compiled), median, compile_s=round(compile_s, 2),
                first_step_s=round(first, 3),
                step_times=[round(t, 4) for t in times], **inspected)


def main(argv=None):
  args = parse_args(argv)
  compilation_cache.enable(args.compilation_cache)
  rng = np.random.default_rng(0)
  lines = []
  for dtype in args.dtype.split(","):
    for batch in (int(b) for b in args.batch.split(",")):
      if batch % jax.local_device_count():
        raise SystemExit(f"--batch={batch} is not a multiple of the "
                         f"{jax.local_device_count()} local devices.")
      for phase_name in args.phases.split(","):
        lines += bench_phase(args, phase_name, dtype, batch, rng)
  return lines


if __name__ == "__main__":
  main()
