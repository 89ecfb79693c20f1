"""Counts the ops of ACNN's train step as lowered for CPU, CUDA and TPU.

`convolution.Conv` picks its weight gradient when a program is lowered
(GEMMs on CPU, XLA's backward-filter convolution elsewhere). This lowers one
phase's train step for each platform on whatever machine runs it (lowering
needs no accelerator, and nothing is compiled) and prints one JSON line per
platform and convolution:

  {"conv": "ours" | "flax", "platform", "phase", "dtype", "batch" (per
   device), "input_size", "num_stacks", "features",
   "convolution", "dot_general", "slice"   stablehlo ops in the program,
   "slice_bytes", "slice_gib"             total size of the slices' results,
   "lower_s"                              seconds to lower}

"flax" is the same network with flax's `nn.Conv` in place of
`convolution.Conv`, for comparison: lowered for a GPU or TPU, "ours" should
have no more dot_generals and slices than it. The step is the one-device
program (`train_step.make(..., num_devices=1)`, a plain `jax.jit`), which is
each device's program of a pmapped step but for the collectives. It needs
only JAX, flax, optax and numpy. Examples:

  python benchmarks/lowered_ops.py                # phase C, bfloat16, 8
  python benchmarks/lowered_ops.py --phase=a --dtype=float32 --batch=4
  python benchmarks/lowered_ops.py --num_stacks=2 --input_size=64 \\
      --platforms=cuda --conv=ours
"""

import argparse
import contextlib
import json
import os
import re
import sys
import time
import types

import flax.linen as nn
import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from acnn_jax import convolution
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import phases
from acnn_jax import train_step
# pylint: enable=g-import-not-at-top,wrong-import-position

# pose-hg-train's RMSProp, as configs/default.py and benchmarks/train_step.py
# (the optimizer adds no convolution, dot_general or slice).
OPTIMIZER = dict(optimizer="rmsprop", learning_rate=5e-4, rmsprop_decay=0.99,
                 rmsprop_eps=1e-8)
COUNTED = ("convolution", "dot_general", "slice")
# `%5 = stablehlo.slice %4 [0:2, ...] : (tensor<...>) -> tensor<2x4x3x5xbf16>`
# (pretty-printed) or `"stablehlo.slice"(%4) ...` (generic form).
_OP = re.compile(r'=\s*"?stablehlo\.(convolution|dot_general|slice)\b')
_RESULT = re.compile(r"->\s*tensor<([^>]*)>\s*$")
_BITS = {"f64": 64, "f32": 32, "bf16": 16, "f16": 16, "i64": 64, "ui64": 64,
         "i32": 32, "ui32": 32, "i16": 16, "ui16": 16, "i8": 8, "ui8": 8,
         "i1": 8}


def flax_conv(features, kernel_size=3, stride=1, dtype=jnp.float32,
              param_dtype=jnp.float32, name=None):
  """`convolution.Conv`'s signature, flax's `nn.Conv`: the same parameters
  under the same names, XLA's gradients on every platform."""
  k = kernel_size
  return nn.Conv(features, (k, k), strides=stride, padding=k // 2,
                 dtype=dtype, param_dtype=param_dtype, name=name)


@contextlib.contextmanager
def flax_convolutions():
  """Inside the block, networks built (traced) use flax's `nn.Conv` where
  they use `convolution.Conv` (hourglass.py looks it up at each call)."""
  ours = convolution.Conv
  convolution.Conv = flax_conv
  try:
    yield
  finally:
    convolution.Conv = ours


def abstract_step(model: models.ACNN, phase_name: str, batch: int,
                  input_size: int):
  """The phase's one-device train step and its arguments' shapes (no
  variables are initialised).

  Returns:
    (jitted step, abstract state, abstract batch with a device axis of 1).
  """
  phase = phases.PHASES[phase_name]
  config = types.SimpleNamespace(**OPTIMIZER)

  def learning_rate(step):
    del step
    return OPTIMIZER["learning_rate"]

  shapes = models.variable_shapes(model, input_size)
  tx = optimizers.create_optimizer(config, shapes["params"], learning_rate,
                                   phase)
  state = jax.eval_shape(lambda v: train_step.create_state(v, tx), shapes)
  size = input_size // 4
  joints = model.num_joints

  def spec(*shape):  # A device axis of 1, then the device's batch.
    return jax.ShapeDtypeStruct((1, batch) + shape, jnp.float32)

  batch_shapes = {"image": spec(input_size, input_size, 3),
                  "heatmaps": spec(size, size, joints),
                  "target_weight": spec(joints)}
  step = train_step.make(model, tx, phase, learning_rate, num_devices=1)
  return step, state, batch_shapes


def count_ops(text: str) -> dict:
  """Convolutions, dot_generals and slices in StableHLO `text`, and the
  total bytes of the slices' results."""
  counts = dict.fromkeys(COUNTED, 0)
  counts["slice_bytes"] = 0
  for line in text.splitlines():
    match = _OP.search(line)
    if not match:
      continue
    counts[match.group(1)] += 1
    if match.group(1) == "slice":
      result = _RESULT.search(line)
      *dims, element = result.group(1).split("x")
      size = _BITS[element] // 8
      for dim in dims:
        size *= int(dim)
      counts["slice_bytes"] += size
  return counts


def lowered_counts(model, phase_name, batch, input_size, platforms,
                   conv="ours"):
  """{platform: count_ops of the step lowered for it} (`conv` 'flax':
  with `flax_conv` for `convolution.Conv`), each with its 'lower_s'."""
  if conv not in ("ours", "flax"):
    raise ValueError(f"conv is 'ours' or 'flax', not {conv!r}.")
  context = flax_convolutions() if conv == "flax" else contextlib.nullcontext()
  with context:
    step, state, batch_shapes = abstract_step(model, phase_name, batch,
                                              input_size)
    traced = step.trace(state, batch_shapes)
  results = {}
  for platform in platforms:
    start = time.perf_counter()
    text = traced.lower(lowering_platforms=(platform,)).as_text()
    results[platform] = {**count_ops(text),
                         "lower_s": round(time.perf_counter() - start, 2)}
  return results


def parse_args(argv=None):
  defaults = models.ACNN()
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--phase", default="c", choices=tuple(phases.PHASES))
  parser.add_argument("--dtype", default="bfloat16",
                      choices=tuple(models.DTYPES))
  parser.add_argument("--batch", type=int, default=8,
                      help="Images per device.")
  parser.add_argument("--input_size", type=int, default=256)
  for field in ("num_stacks", "features", "num_joints", "hourglass_depth",
                "attention_features"):
    parser.add_argument(f"--{field}", type=int,
                        default=getattr(defaults, field))
  parser.add_argument("--platforms", default="cpu,cuda,tpu",
                      help="Comma-separated lowering platforms.")
  parser.add_argument("--conv", default="ours,flax",
                      help="Comma-separated: ours (convolution.Conv), flax "
                      "(nn.Conv).")
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  model = models.ACNN(
      num_stacks=args.num_stacks, features=args.features,
      num_joints=args.num_joints, hourglass_depth=args.hourglass_depth,
      attention_features=args.attention_features,
      dtype=models.DTYPES[args.dtype])
  platforms = args.platforms.split(",")
  lines = []
  for conv in args.conv.split(","):
    counts = lowered_counts(model, args.phase, args.batch, args.input_size,
                            platforms, conv)
    for platform in platforms:
      line = {"conv": conv, "platform": platform, "phase": args.phase,
              "dtype": args.dtype, "batch": args.batch,
              "input_size": args.input_size, "num_stacks": args.num_stacks,
              "features": args.features, **counts[platform]}
      line["slice_gib"] = round(line["slice_bytes"] / 2**30, 3)
      print(json.dumps(line), flush=True)
      lines.append(line)
  return lines


if __name__ == "__main__":
  main()
