"""Times ACNN's train step in PyTorch: the project's independent reference.

The network is benchmarks/reference/torch_acnn.py (written from the
published definitions, not from our Flax code), trained as acnn-jax trains
it: the stage-summed, joint-weighted MSE, Torch7's RMSProp, each phase's
frozen part (`torch_acnn.set_phase`). The step runs with channels_last
tensors, cuDNN's autotuner on, in bfloat16 autocast (parameters and the
loss in float32, as JAX's bfloat16 network keeps them) or in float32 with
TF32 convolutions and matmuls (as XLA computes float32 by default); its
mode is "eager" or "compile" (`torch.compile` of the network).

It needs PyTorch and nothing else (no JAX, no numpy), so it runs in any
interpreter that has PyTorch. One measurement, as one JSON line:

  python benchmarks/torch_train_step.py --device=cuda --phase=c --batch=32
  python benchmarks/torch_train_step.py --device=cuda --mode=compile

With --serve it first prints a hello line ({"ready": ...}, or
{"unavailable": reason} when PyTorch or its CUDA is missing), then reads
one JSON request a line on stdin ({"phase", "dtype", "batch", "mode"}) and
answers each with one JSON line, until stdin closes: benchmarks/gpu_check.py
keeps it in a process of its own, apart from JAX's CUDA libraries.
"""

import argparse
import json
import os
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "reference"))

DTYPES = ("bfloat16", "float32")
MODES = ("eager", "compile")
# pose-hg-train's RMSProp rate, as benchmarks/train_step.py's OPTIMIZER.
LEARNING_RATE = 5e-4


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--device", default="cuda", help="cuda or cpu.")
  parser.add_argument("--phase", default="c")
  parser.add_argument("--dtype", default="bfloat16", choices=DTYPES)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--mode", default="eager", choices=MODES)
  parser.add_argument("--input_size", type=int, default=256)
  parser.add_argument("--num_stacks", type=int, default=4)
  parser.add_argument("--features", type=int, default=256)
  parser.add_argument("--num_joints", type=int, default=16)
  parser.add_argument("--hourglass_depth", type=int, default=4)
  parser.add_argument("--attention_features", type=int, default=64)
  parser.add_argument("--steps", type=int, default=10,
                      help="Timed steps (the median is reported).")
  parser.add_argument("--warmup", type=int, default=2,
                      help="Untimed steps after the first.")
  parser.add_argument("--serve", action="store_true",
                      help="Answer JSON requests read from stdin.")
  return parser.parse_args(argv)


def hello(device: str) -> dict:
  """What this interpreter offers: {"ready": True, versions} or
  {"unavailable": why}. Imports torch (seconds)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    return {"unavailable": f"PyTorch is not installed in {sys.executable} "
                           f"({error})"}
  info = {"torch": torch.__version__, "device": device,
          "cuda": torch.version.cuda, "threads": torch.get_num_threads()}
  if device == "cuda":
    if not torch.cuda.is_available():
      return {"unavailable": f"torch {torch.__version__} sees no CUDA device "
                             f"(CUDA build: {torch.version.cuda})", **info}
    info["device_name"] = torch.cuda.get_device_name(0)
  else:
    info["device_name"] = "cpu"
  return {"ready": True, **info}


def _sync(device):
  import torch  # pylint: disable=g-import-not-at-top
  if device == "cuda":
    torch.cuda.synchronize()


def measure(args, phase, dtype, batch, mode) -> dict:
  """Times one train step configuration; returns its JSON record."""
  # pylint: disable=g-import-not-at-top
  import torch
  import torch_acnn
  # pylint: enable=g-import-not-at-top
  if phase not in torch_acnn.PHASES or dtype not in DTYPES or (
      mode not in MODES):
    raise ValueError(f"unknown phase {phase!r}, dtype {dtype!r} or mode "
                     f"{mode!r}")
  device = torch.device(args.device)
  # What XLA does by default: autotuned convolutions, TF32 for float32.
  torch.backends.cudnn.benchmark = True
  torch.set_float32_matmul_precision("high")
  torch.manual_seed(0)
  model = torch_acnn.ACNN(
      num_stacks=args.num_stacks, features=args.features,
      num_joints=args.num_joints, hourglass_depth=args.hourglass_depth,
      attention_features=args.attention_features)
  model = model.to(device, memory_format=torch.channels_last)
  trained = torch_acnn.set_phase(model, phase)
  optimizer = torch_acnn.rmsprop(list(trained.values()), LEARNING_RATE)
  masks_to_one = torch_acnn.PHASES[phase][1]
  size = args.input_size // 4
  images = torch.rand(batch, 3, args.input_size, args.input_size,
                      device=device).contiguous(
                          memory_format=torch.channels_last)
  targets = torch.rand(batch, args.num_joints, size, size,
                       device=device) * 0.1
  weights = torch.ones(batch, args.num_joints, device=device)
  net = torch.compile(model) if mode == "compile" else model

  def step():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16,
                        enabled=dtype == "bfloat16"):
      predictions = net(images, masks_to_one).predictions
    loss = torch_acnn.stage_losses(predictions.float(), targets,
                                   weights).sum()
    loss.backward()
    optimizer.step()
    return loss.detach()

  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
  start = time.perf_counter()
  step()
  _sync(device.type)
  first = time.perf_counter() - start
  for _ in range(args.warmup):
    step()
  _sync(device.type)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    step()
    _sync(device.type)
    times.append(time.perf_counter() - start)
  loss = float(step())
  if loss != loss or loss in (float("inf"), float("-inf")):
    raise FloatingPointError(f"phase {phase} {dtype} {mode}: loss {loss}")
  step_s = statistics.median(times)
  peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
          else None)
  return {"framework": "torch", "measure": "train_step", "mode": mode,
          "phase": phase, "dtype": dtype, "per_device_batch": batch,
          "device": args.device, "torch": torch.__version__,
          "channels_last": True, "first_step_s": round(first, 3),
          "step_s": round(step_s, 5),
          "step_times": [round(t, 4) for t in times],
          "images_per_s": round(batch / step_s, 2),
          "peak_memory_bytes": peak, "loss": loss}


def release(device: str):
  """Hands PyTorch's cached GPU memory back, for JAX's next measurements."""
  if device == "cuda":
    import torch  # pylint: disable=g-import-not-at-top
    torch.cuda.empty_cache()


def serve(args, stdin=sys.stdin, stdout=sys.stdout):
  """The --serve loop: a hello line, then one answer per request line."""
  ready = hello(args.device)
  print(json.dumps(ready), file=stdout, flush=True)
  if not ready.get("ready"):
    return
  for line in stdin:
    if not line.strip():
      continue
    try:
      request = json.loads(line)
      answer = measure(args, request["phase"], request["dtype"],
                       int(request["batch"]), request["mode"])
    except Exception as error:  # pylint: disable=broad-except
      # One configuration failing (out of memory, torch.compile missing a
      # compiler) must not stop the others.
      answer = {"error": f"{type(error).__name__}: {error}"[:1000],
                "traceback": traceback.format_exc()[-2000:]}
    release(args.device)
    print(json.dumps(answer), file=stdout, flush=True)


def main(argv=None):
  args = parse_args(argv)
  if args.serve:
    serve(args)
    return None
  ready = hello(args.device)
  if not ready.get("ready"):
    print(json.dumps(ready), flush=True)
    return ready
  line = {**ready, **measure(args, args.phase, args.dtype, args.batch,
                             args.mode)}
  print(json.dumps(line), flush=True)
  return line


if __name__ == "__main__":
  main()
