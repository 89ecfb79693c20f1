"""A GPU check in one command: ACNN's speed on the GPU it finds, in 8 min.

What it measures, on the paper's network (4 stacks of 256 features,
256x256 images, 16 joints) over every local device (CUDA_VISIBLE_DEVICES=0
checks one):

- JAX's train step of phases C, A and B, in bfloat16 and float32, at 32, 8
  and 64 images per device (benchmarks/train_step.py's `bench_phase`): the
  median step time, images/s, MFU (XLA's FLOP count of the step against
  the device's data-sheet peak, train_step.py's PEAK_TFLOPS), the memory
  XLA planned for it per device (`compiled.memory_analysis()`: arguments +
  outputs - aliased + temporaries) and the compile time;
- the forward pass (inference, phase C's network) at 1 and 64 images per
  device;
- the same network and step in PyTorch on the same GPU: the project's
  independent reference (benchmarks/reference/torch_acnn.py), timed by
  benchmarks/torch_train_step.py in a process of its own (JAX's and
  PyTorch's CUDA libraries, cuDNN above all, can clash in one process):
  eager with channels_last in bfloat16 autocast (and float32), and
  `torch.compile`d where it works, for the ratio of JAX's step time to
  PyTorch's. PyTorch's MFU counts XLA's FLOPs of the same step. Without
  PyTorch, or without its CUDA, the check records why and goes on.

The time budget (--budget_s, counted from the start of the process,
compiling included) goes to the most telling figures first: phase C in
bfloat16 at 32 a device and PyTorch's twin of it, phase C in float32, the
forward pass, phases A and B, the other batches, float32, the rest of
PyTorch. A measurement that would not fit in the time left (1.25 times the
longest of its kind so far) is skipped, and recorded as skipped; PyTorch's
process is stopped at the deadline.

It needs jax, flax, optax and numpy only (no TensorFlow, ml_collections or
clu), and PyTorch only for the comparison (--torch_python: an interpreter
that has it, e.g. another virtualenv's). From the repository root:

  PYTHONPATH=. python benchmarks/gpu_check.py --output=gpu_check.json
  PYTHONPATH=. python benchmarks/gpu_check.py --smoke --output=/tmp/smoke.json

--smoke checks the check itself on any machine, a CPU included: a tiny
network (2 stacks of 16 features, 64x64 images), 2 images a device, 2
steps, one measurement of each kind, in well under a minute.

It writes --output, one JSON object, rewritten after every measurement (a
run stopped early keeps what it measured): "environment" (versions,
devices, PyTorch's status), "network", "settings", "results" (one record
per planned measurement, in the order run: "status" ok, skipped or error,
with its "reason" when not ok), "comparisons" (JAX's step time over
PyTorch's, per configuration) and "elapsed_s"; and prints them as a table.
"""

import argparse
import collections
import dataclasses
import datetime
import gc
import importlib.util
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
import types
from typing import Callable, Dict, List, Optional

_STARTED = time.monotonic()  # The budget counts the imports too.
# PyTorch's process shares the GPU, and JAX's default takes 75% of it at
# start; JAX's own steps reuse the memory they grew to.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# pylint: disable=g-import-not-at-top,wrong-import-position
import flax
import jax
import jaxlib
import numpy as np
import optax

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
from acnn_jax import models
from acnn_jax import parallel
from acnn_jax import phases
# pylint: enable=g-import-not-at-top,wrong-import-position


def _load(name: str):
  """A module of benchmarks/ by file (benchmarks/ is not a package, and its
  train_step.py would shadow acnn_jax's)."""
  spec = importlib.util.spec_from_file_location(
      f"benchmarks_{name}", os.path.join(HERE, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


bench = _load("train_step")
TORCH_WORKER = os.path.join(HERE, "torch_train_step.py")
SCHEMA = "acnn-jax gpu_check 1"
NETWORK = dict(num_stacks=4, features=256, num_joints=16, hourglass_depth=4,
               attention_features=64, input_size=256)
SMOKE_NETWORK = dict(NETWORK, num_stacks=2, features=16, hourglass_depth=1,
                     attention_features=8, input_size=64)
# What --smoke changes besides the network: one measurement of each kind.
SMOKE_SETTINGS = dict(phases="c", dtypes="bfloat16", batches="2",
                      forward_batches="1", steps=2, warmup=0)
DEFAULT_SETTINGS = dict(phases="c,a,b", dtypes="bfloat16,float32",
                        batches="32,8,64", forward_batches="1,64", steps=10,
                        warmup=3)
# A measurement runs only if the time left is this many times the longest
# of its kind so far (larger batches compile and run a little longer).
MARGIN = 1.25


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output", default="gpu_check.json",
                      help="The JSON file to write.")
  parser.add_argument("--budget_s", type=float, default=480.0,
                      help="Seconds for the whole check; what does not fit "
                      "is skipped (recorded as skipped).")
  parser.add_argument("--smoke", action="store_true",
                      help="A tiny network, 2 images a device, 2 steps: "
                      "checks the script on any machine.")
  parser.add_argument("--phases", help="Comma-separated, the first the "
                      f"headline (default {DEFAULT_SETTINGS['phases']}).")
  parser.add_argument("--dtypes", help="Comma-separated, the first the "
                      f"headline (default {DEFAULT_SETTINGS['dtypes']}).")
  parser.add_argument("--batches", help="Train batches per device, the "
                      f"first the headline (default "
                      f"{DEFAULT_SETTINGS['batches']}).")
  parser.add_argument("--forward_batches", help="Forward-pass batches per "
                      f"device (default {DEFAULT_SETTINGS['forward_batches']})"
                      ".")
  parser.add_argument("--steps", type=int, help="Timed steps, the median "
                      f"reported (default {DEFAULT_SETTINGS['steps']}).")
  parser.add_argument("--warmup", type=int, help="Untimed steps after the "
                      f"first (default {DEFAULT_SETTINGS['warmup']}).")
  parser.add_argument("--torch_python", default=sys.executable,
                      help="The interpreter that runs PyTorch's side.")
  parser.add_argument("--no_torch", action="store_true",
                      help="Skip the PyTorch comparison.")
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="Per-device peak for MFU (default: known GPUs).")
  args = parser.parse_args(argv)
  settings = SMOKE_SETTINGS if args.smoke else DEFAULT_SETTINGS
  for name, value in settings.items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  args.phases = args.phases.split(",")
  args.dtypes = args.dtypes.split(",")
  args.batches = [int(b) for b in args.batches.split(",")]
  args.forward_batches = [int(b) for b in args.forward_batches.split(",")]
  args.network = dict(SMOKE_NETWORK if args.smoke else NETWORK)
  return args


# ---------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class Item:
  """One planned measurement; `batch` is per device."""
  framework: str  # "jax" or "torch".
  measure: str  # "train_step" or "forward".
  phase: str
  dtype: str
  batch: int
  mode: str = "jit"  # JAX: "jit"; PyTorch: "eager" or "compile".

  @property
  def kind(self) -> str:
    """Measurements of one kind take about as long as each other."""
    return f"{self.framework} {self.measure} {self.mode}"

  @property
  def name(self) -> str:
    mode = "" if self.mode == "jit" else f" ({self.mode})"
    return (f"{self.framework} {self.measure}{mode} {self.phase} "
            f"{self.dtype} {self.batch}/device")

  @property
  def key(self):
    """What JAX's and PyTorch's measurements of one step share."""
    return self.measure, self.phase, self.dtype, self.batch

  def fields(self) -> dict:
    return {"framework": self.framework, "measure": self.measure,
            "mode": self.mode, "phase": self.phase, "dtype": self.dtype,
            "per_device_batch": self.batch}


def plan(phase_names: List[str], dtypes: List[str], batches: List[int],
         forward_batches: List[int], torch_modes=("eager", "compile")
         ) -> List[Item]:
  """Every measurement, the most telling first; each list's first entry is
  the headline (phase C, bfloat16, 32 a device by default)."""
  def train(p, d, b):
    return Item("jax", "train_step", p, d, b)

  def torch(p, d, b, mode="eager"):
    return Item("torch", "train_step", p, d, b, mode)

  def forward(d, b):
    return Item("jax", "forward", "c" if "c" in phase_names else p0, d, b)

  p0, d0, b0 = phase_names[0], dtypes[0], batches[0]
  items = [train(p0, d0, b0), torch(p0, d0, b0)]
  items += [train(p0, d, b0) for d in dtypes[1:]]
  items += [forward(d0, b) for b in forward_batches]
  for p in phase_names[1:]:
    items += [train(p, d0, b0), torch(p, d0, b0)]
  if "compile" in torch_modes:
    items.append(torch(p0, d0, b0, "compile"))
  for d in dtypes:
    for b in batches:
      for p in phase_names:
        items += [train(p, d, b), torch(p, d, b)]
  items += [forward(d, b) for d in dtypes[1:] for b in forward_batches]
  if "compile" in torch_modes:
    items += [torch(p, d0, b, "compile") for b in batches for p in
              phase_names]
  return list(dict.fromkeys(items))  # In order, each once.


def run_plan(items: List[Item], run_item: Callable[[Item, float], dict],
             deadline: float, clock: Callable[[], float] = time.monotonic,
             on_result: Optional[Callable[[dict], None]] = None
             ) -> List[dict]:
  """Runs `items` in order until `deadline` (a time of `clock`).

  An item is skipped, with the reason recorded, when no time is left or
  when the time left is under MARGIN times the longest measurement of its
  kind so far; a failing item is recorded as an error and the rest go on.

  Args:
    items: the plan.
    run_item: (item, deadline) -> its record; it may set "status" itself
      ("skipped" or "error", with a "reason").
    deadline: when the budget runs out.
    clock: seconds, monotonic.
    on_result: called with each record as it is made.

  Returns:
    One record per item: `Item.fields()`, "status", "elapsed_s" (for the
    items run) and the measurement's fields or the "reason".
  """
  longest: Dict[str, float] = {}
  results = []
  for item in items:
    left = deadline - clock()
    estimate = MARGIN * longest[item.kind] if item.kind in longest else 0.0
    if left <= 0 or estimate > left:
      reason = f"budget: {max(left, 0.0):.0f} s left"
      if estimate:
        reason += (f", a {item.kind} needs about {estimate:.0f} s "
                   f"({MARGIN:g} x the longest so far)")
      result = {**item.fields(), "status": "skipped", "reason": reason}
    else:
      start = clock()
      try:
        result = {"status": "ok", **run_item(item, deadline)}
        result.update(item.fields())
      except Exception as error:  # pylint: disable=broad-except
        # An out-of-memory batch must not cost the other measurements.
        result = {**item.fields(), "status": "error",
                  "reason": f"{type(error).__name__}: {error}"[:1000]}
      result["elapsed_s"] = round(clock() - start, 2)
      if result["status"] == "ok":
        longest[item.kind] = max(longest.get(item.kind, 0.0),
                                 result["elapsed_s"])
    results.append(result)
    if on_result:
      on_result(result)
  return results


# -------------------------------------------------------------- JAX's side


def planned_memory(compiled) -> dict:
  """The memory XLA planned per device for a compiled program, in bytes."""
  stats = compiled.memory_analysis()
  if isinstance(stats, (list, tuple)):  # One per program on some backends.
    stats = stats[0] if stats else None
  if stats is None:
    return {"memory": None}
  memory = {f"{name}_bytes": int(getattr(stats, f"{name}_size_in_bytes", 0))
            for name in ("argument", "output", "alias", "temp",
                         "generated_code")}
  # What the program holds at once at most: its inputs, its outputs less
  # those written over donated inputs, and its scratch space.
  memory["peak_bytes"] = (
      memory["argument_bytes"] + memory["output_bytes"] -
      memory["alias_bytes"] + memory["temp_bytes"] +
      memory["generated_code_bytes"])
  # XLA's own figure, kept as it comes: on XLA:CPU it was found below the
  # temporaries alone, so it is not the peak above.
  memory["xla_peak_bytes"] = int(getattr(stats, "peak_memory_in_bytes", 0)
                                 or 0)
  return {"memory": memory}


def bench_args(args) -> argparse.Namespace:
  """benchmarks/train_step.py's arguments for this check's network."""
  flags = [f"--{name}={value}" for name, value in args.network.items()]
  return bench.parse_args(flags + [
      f"--steps={args.steps}", f"--warmup={args.warmup}",
      f"--peak_tflops={args.peak_tflops}", "--quiet"])


def run_jax_train(settings, item: Item, rng) -> dict:
  devices = jax.local_device_count()
  [line] = bench.bench_phase(settings, item.phase, item.dtype,
                             item.batch * devices, rng,
                             inspect=planned_memory)
  return line


def run_jax_forward(settings, item: Item, rng) -> dict:
  """The forward pass of freshly initialised variables."""
  devices = jax.local_device_count()
  model = bench.make_model(settings, item.dtype)
  variables = models.init_variables(model, jax.random.PRNGKey(0),
                                    settings.input_size)
  state = types.SimpleNamespace(**parallel.put_state(
      {"params": variables["params"],
       "batch_stats": variables["batch_stats"]}))
  host = bench.random_batch(rng, item.batch * devices, settings.input_size,
                            settings.num_joints)
  images = jax.device_put(parallel.shard({"image": host["image"]}),
                          parallel.batch_sharding())
  return bench.bench_forward(settings, model, phases.PHASES[item.phase],
                             item.dtype, item.batch * devices, state, images,
                             inspect=planned_memory)


# ---------------------------------------------------------- PyTorch's side


class TorchWorker:
  """benchmarks/torch_train_step.py --serve in a process of its own.

  Apart from JAX's CUDA libraries, and stoppable at the deadline. Requests
  and answers are JSON lines; lines that are not JSON objects (a library's
  chatter) are passed over.
  """

  def __init__(self, command: List[str]):
    self.command = command
    self.process = None
    self.lines = queue.Queue()
    self.stderr = collections.deque(maxlen=30)
    self.stderr_thread = None

  def _pump(self, stream, put):
    for line in stream:
      put(line)
    put(None)

  def start(self, deadline: float) -> dict:
    """Starts the process; returns its hello line."""
    self.process = subprocess.Popen(
        self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, bufsize=1)
    threading.Thread(target=self._pump, daemon=True,
                     args=(self.process.stdout, self.lines.put)).start()
    self.stderr_thread = threading.Thread(
        target=self._pump, daemon=True,
        args=(self.process.stderr,
              lambda line: line and self.stderr.append(line)))
    self.stderr_thread.start()
    return self._read(deadline)

  def _ended(self, why: str) -> RuntimeError:
    code = self.process.wait()
    self.stderr_thread.join(timeout=10)  # Its last words are the reason.
    return RuntimeError(f"PyTorch's process {why} (exit {code}): " +
                        "".join(self.stderr)[-800:])

  def _read(self, deadline: float) -> dict:
    while True:
      try:
        line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.0))
      except queue.Empty:
        raise TimeoutError("the budget ran out while PyTorch ran") from None
      if line is None:
        raise self._ended("ended")
      try:
        answer = json.loads(line)
      except ValueError:
        continue
      if isinstance(answer, dict):
        return answer

  def request(self, item: Item, deadline: float) -> dict:
    try:
      self.process.stdin.write(json.dumps(
          {"phase": item.phase, "dtype": item.dtype, "batch": item.batch,
           "mode": item.mode}) + "\n")
      self.process.stdin.flush()
    except OSError:  # It died after its last answer.
      raise self._ended("was gone") from None
    return self._read(deadline)

  def stop(self):
    if self.process and self.process.poll() is None:
      self.process.kill()
      self.process.wait()


class TorchSide:
  """Runs PyTorch's measurements; records why when it cannot."""

  def __init__(self, args, platform_name: str):
    self.status = {"python": args.torch_python}
    self.worker: Optional[TorchWorker] = None
    self.unavailable = None
    device = {"gpu": "cuda", "cpu": "cpu"}.get(platform_name)
    if args.no_torch:
      self.unavailable = "--no_torch"
    elif device is None:
      self.unavailable = (f"JAX runs on {platform_name}: PyTorch is "
                          "compared on a GPU (or the CPU) only")
    elif (args.torch_python == sys.executable and
          importlib.util.find_spec("torch") is None):
      # Saves a process start, and says it plainly.
      self.unavailable = f"PyTorch is not installed in {sys.executable}"
    self.command = [args.torch_python, TORCH_WORKER, "--serve",
                    f"--device={device}", f"--steps={args.steps}",
                    f"--warmup={args.warmup}"] + [
                        f"--{k}={v}" for k, v in args.network.items()]
    if self.unavailable:
      self.status["unavailable"] = self.unavailable

  def run(self, item: Item, deadline: float) -> dict:
    if self.unavailable:
      return {"status": "skipped", "reason": self.unavailable}
    if self.worker is None:
      self.worker = TorchWorker(self.command)
      try:
        hello = self.worker.start(deadline)
      except TimeoutError as error:
        self.stop()
        return {"status": "skipped", "reason": str(error)}
      except (OSError, RuntimeError) as error:  # It could not even start.
        self.stop()
        self.unavailable = str(error)
        self.status["unavailable"] = self.unavailable
        return {"status": "skipped", "reason": self.unavailable}
      self.status.update(hello)
      if not hello.get("ready"):
        self.stop()
        self.unavailable = hello.get("unavailable", "not ready")
        return {"status": "skipped", "reason": self.unavailable}
    try:
      answer = self.worker.request(item, deadline)
    except TimeoutError as error:
      self.stop()  # Mid-measurement: a new process for the next one.
      return {"status": "skipped", "reason": str(error)}
    except RuntimeError:
      self.stop()
      raise
    if "error" in answer:
      return {"status": "error", "reason": answer["error"],
              "traceback": answer.get("traceback")}
    return answer

  def stop(self):
    if self.worker:
      self.worker.stop()
    self.worker = None


# ------------------------------------------------------------- the report


def with_torch_mfu(results: List[dict]) -> None:
  """Adds to PyTorch's records the TFLOP/s and MFU of XLA's FLOP count of
  JAX's same step (same network, same work)."""
  jax_steps = {_key(r): r for r in results
               if r["framework"] == "jax" and r["status"] == "ok"}
  for result in results:
    twin = jax_steps.get(_key(result))
    if result["framework"] != "torch" or result["status"] != "ok" or not twin:
      continue
    tflops = (twin["flops_per_image"] * result["per_device_batch"] /
              result["step_s"] / 1e12)
    peak = twin.get("peak_tflops")
    result.update(flops_per_image=twin["flops_per_image"],
                  tflops=round(tflops, 4), peak_tflops=peak,
                  mfu=round(tflops / peak, 4) if peak else None)


def _key(result):
  return (result["measure"], result["phase"], result["dtype"],
          result["per_device_batch"])


def comparisons(results: List[dict]) -> List[dict]:
  """JAX's step time over PyTorch's (below 1: JAX is faster), per train
  configuration JAX measured."""
  torch_steps = {(_key(r), r["mode"]): r["step_s"] for r in results
                 if r["framework"] == "torch" and r["status"] == "ok"}
  rows = []
  for result in results:
    if (result["framework"], result["measure"], result["status"]) != (
        "jax", "train_step", "ok"):
      continue
    row = {"phase": result["phase"], "dtype": result["dtype"],
           "per_device_batch": result["per_device_batch"],
           "jax_step_s": result["step_s"]}
    for mode in ("eager", "compile"):
      torch_s = torch_steps.get((_key(result), mode))
      row[f"torch_{mode}_step_s"] = torch_s
      row[f"jax_over_torch_{mode}"] = (
          round(result["step_s"] / torch_s, 3) if torch_s else None)
    rows.append(row)
  return rows


def _size(value) -> str:
  if value is None:
    return "-"
  if value >= 2**30:
    return f"{value / 2**30:.2f} GiB"
  return f"{value / 2**20:.1f} MiB"


def _number(value, digits=2) -> str:
  return "-" if value is None else f"{value:.{digits}f}"


def format_table(report: dict) -> str:
  """The report as a text table, with what was skipped or failed."""
  env, settings = report["environment"], report["settings"]
  torch = env["torch"]
  torch_text = (f"torch {torch.get('torch')} on {torch.get('device_name')}"
                if torch.get("ready") else
                f"no PyTorch ({torch.get('unavailable', 'not run')})")
  lines = [
      f"ACNN GPU check: {env['devices']} x {env['device_kind']} "
      f"({env['platform']}), jax {env['jax']}, {torch_text}",
      f"network: {report['network']['num_stacks']} stacks x "
      f"{report['network']['features']} features, "
      f"{report['network']['input_size']}px; median of {settings['steps']} "
      f"steps; {report['elapsed_s']:.0f} s of a {settings['budget_s']:.0f} s "
      "budget", ""]
  header = ("measure", "phase", "dtype", "batch", "step ms", "img/s", "MFU",
            "memory", "compile s", "torch ms", "jax/torch", "compiled ms",
            "jax/compiled")
  torch_results = {(_key(r), r["mode"]): r for r in report["results"]
                   if r["framework"] == "torch"}
  rows = []
  for result in report["results"]:
    if result["framework"] != "jax":
      continue
    ok = result["status"] == "ok"
    row = [result["measure"], result["phase"], result["dtype"],
           str(result["per_device_batch"])]
    if ok:
      row += [_number(result["step_s"] * 1e3),
              _number(result["images_per_s"], 1),
              _number(result.get("mfu"), 3),
              _size((result.get("memory") or {}).get("peak_bytes")),
              _number(result.get("compile_s"), 1)]
    else:
      row += [result["status"]] + ["-"] * 4
    for mode in ("eager", "compile"):
      twin = torch_results.get((_key(result), mode))
      if twin is None:
        row += ["-", "-"]
      elif twin["status"] != "ok":
        row += [twin["status"], "-"]
      else:
        ratio = result["step_s"] / twin["step_s"] if ok else None
        row += [_number(twin["step_s"] * 1e3), _number(ratio, 3)]
    rows.append(row)
  widths = [max(len(r[i]) for r in [header] + rows)
            for i in range(len(header))]
  for row in [header] + rows:
    lines.append("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))))
  lines += ["", "batch: images per device; img/s: all devices; memory: "
            "XLA's plan per device.",
            "jax/torch: JAX's step time over PyTorch's (eager, "
            "channels_last; compiled: torch.compile); below 1: JAX is "
            "faster."]
  for status in ("skipped", "error"):
    missed = [r for r in report["results"] if r["status"] == status]
    if missed:
      lines.append(f"{status} ({len(missed)}):")
      lines += [f"  {_item_name(r)}: {r['reason'][:200]}" for r in missed]
  return "\n".join(lines)


def _item_name(result) -> str:
  return Item(result["framework"], result["measure"], result["phase"],
              result["dtype"], result["per_device_batch"],
              result["mode"]).name


def _progress(result, started) -> str:
  text = f"[{time.monotonic() - started:5.0f} s] {result['status']:7s} "
  text += _item_name(result) + ": "
  if result["status"] != "ok":
    return text + result["reason"][:200]
  text += (f"{result['step_s'] * 1e3:.2f} ms, "
           f"{result['images_per_s']:.1f} img/s")
  if result.get("mfu") is not None:
    text += f", MFU {result['mfu']:.3f}"
  if result.get("memory"):
    text += f", {_size(result['memory']['peak_bytes'])}"
  if result.get("compile_s") is not None:
    text += f", compiled in {result['compile_s']:.1f} s"
  elif result.get("first_step_s") is not None:
    text += f", first step {result['first_step_s']:.1f} s"
  return text


def _commit() -> Optional[str]:
  try:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, text=True,
                          capture_output=True, timeout=10,
                          check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return None  # No git, or a copy of the tree without .git.


def environment() -> dict:
  device = jax.devices()[0]
  return {"python": platform.python_version(), "jax": jax.__version__,
          "jaxlib": jaxlib.__version__, "flax": flax.__version__,
          "optax": optax.__version__, "numpy": np.__version__,
          "platform": device.platform, "device_kind": device.device_kind,
          "devices": jax.local_device_count(),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
          "commit": _commit()}


def write_json(path: str, report: dict) -> None:
  """Writes `report` whole or not at all (a rename)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  temporary = f"{path}.partial"
  with open(temporary, "w") as f:
    json.dump(report, f, indent=1)
  os.replace(temporary, path)


def main(argv=None, started: Optional[float] = None) -> dict:
  """Runs the check; returns the report it wrote to --output.

  Args:
    argv: the command line (default sys.argv[1:]).
    started: when the budget began, a time.monotonic() (default: now).
  """
  args = parse_args(argv)
  started = time.monotonic() if started is None else started
  deadline = started + args.budget_s
  settings = bench_args(args)
  env = environment()
  torch_side = TorchSide(args, env["platform"])
  env["torch"] = torch_side.status
  report = {"schema": SCHEMA,
            "argv": list(sys.argv[1:] if argv is None else argv),
            "started_at": datetime.datetime.now().isoformat(timespec="seconds"),
            "smoke": args.smoke, "environment": env,
            "network": args.network,
            "settings": {"budget_s": args.budget_s, "steps": args.steps,
                         "warmup": args.warmup, "phases": args.phases,
                         "dtypes": args.dtypes, "batches": args.batches,
                         "forward_batches": args.forward_batches},
            "results": [], "comparisons": [], "elapsed_s": 0.0,
            "finished": False}
  items = plan(args.phases, args.dtypes, args.batches, args.forward_batches,
               ("eager",) if args.smoke else ("eager", "compile"))
  rng = np.random.default_rng(0)
  print(f"GPU check: {len(items)} measurements in {args.budget_s:.0f} s on "
        f"{env['devices']} x {env['device_kind']}; writing {args.output}",
        flush=True)
  if env["platform"] == "cpu" and not args.smoke:
    # A GPU machine whose pip installed JAX's CPU build looks just so.
    env["warning"] = (
        "JAX runs on the CPU: no GPU, or JAX's CPU build (install "
        f"\"jax[cuda12]=={jax.__version__}\"); these are CPU figures")
    print(f"WARNING: {env['warning']}.", flush=True)

  def run_item(item: Item, until: float) -> dict:
    try:
      if item.framework == "torch":
        return torch_side.run(item, until)
      if item.measure == "forward":
        return run_jax_forward(settings, item, rng)
      return run_jax_train(settings, item, rng)
    finally:
      gc.collect()  # The last configuration's buffers, before the next.

  def on_result(result):
    report["results"].append(result)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    print(_progress(result, started), flush=True)
    write_json(args.output, report)

  try:
    run_plan(items, run_item, deadline, on_result=on_result)
  finally:
    torch_side.stop()
  with_torch_mfu(report["results"])
  report["comparisons"] = comparisons(report["results"])
  report["elapsed_s"] = round(time.monotonic() - started, 1)
  report["finished"] = True
  write_json(args.output, report)
  print("\n" + format_table(report), flush=True)
  return report


if __name__ == "__main__":
  main(started=_STARTED)
