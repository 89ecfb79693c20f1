"""benchmarks/gpu_check.py: its smoke run end to end (in this process, on
the CPU), the plan's order, the budget's skipping, the PyTorch side's
records when PyTorch is missing or runs out of time, and the ratios."""

import importlib.util
import json
import pathlib
import sys

import pytest

_PATH = (pathlib.Path(__file__).resolve().parents[1] / "benchmarks" /
         "gpu_check.py")
_SPEC = importlib.util.spec_from_file_location("gpu_check", _PATH)
gpu_check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(gpu_check)
Item = gpu_check.Item


def test_the_smoke_run_writes_its_report_and_prints_the_table(tmp_path,
                                                              capsys):
  output = tmp_path / "out" / "check.json"
  returned = gpu_check.main(["--smoke", f"--output={output}"])
  report = json.loads(output.read_text())
  assert report == json.loads(json.dumps(returned))
  assert report["schema"] == gpu_check.SCHEMA and report["finished"]
  assert report["smoke"] and report["network"]["features"] == 16
  env = report["environment"]
  assert env["platform"] == "cpu" and env["devices"] == 2  # conftest's.
  for name in ("jax", "jaxlib", "flax", "optax", "numpy", "torch"):
    assert name in env
  assert 0 < report["elapsed_s"] < report["settings"]["budget_s"]

  # One measurement of each kind, in the plan's order.
  results = report["results"]
  assert [(r["framework"], r["measure"], r["mode"], r["per_device_batch"])
          for r in results] == [("jax", "train_step", "jit", 2),
                                ("torch", "train_step", "eager", 2),
                                ("jax", "forward", "jit", 1)]
  train, torch, forward = results
  for jax_record, global_batch in ((train, 4), (forward, 2)):
    assert jax_record["status"] == "ok", jax_record
    assert jax_record["global_batch"] == global_batch  # 2 devices.
    assert jax_record["phase"] == "c" and jax_record["dtype"] == "bfloat16"
    assert jax_record["step_s"] > 0 and jax_record["flops_per_image"] > 0
    # step_s is rounded to 10 us, images_per_s to 0.01 (from the exact
    # step time): allow for both roundings.
    step_s = jax_record["step_s"]
    assert jax_record["images_per_s"] == pytest.approx(
        global_batch / step_s,
        abs=global_batch * 5e-6 / (step_s * (step_s - 5e-6)) + 0.01)
    assert jax_record["mfu"] is None  # No peak known for a CPU.
    memory = jax_record["memory"]
    assert memory["temp_bytes"] > 0 and memory["peak_bytes"] == (
        memory["argument_bytes"] + memory["output_bytes"] -
        memory["alias_bytes"] + memory["temp_bytes"] +
        memory["generated_code_bytes"])
    assert jax_record["elapsed_s"] >= jax_record["compile_s"] > 0
  # The step donates its state: the new state is written over the old.
  assert train["memory"]["alias_bytes"] > 0
  if env["torch"].get("ready"):  # PyTorch in this interpreter: it ran.
    assert torch["status"] == "ok" and torch["step_s"] > 0
  else:
    assert torch["status"] == "skipped"
    assert torch["reason"] == env["torch"]["unavailable"]
    assert "PyTorch is not installed" in torch["reason"]
  [comparison] = report["comparisons"]
  assert comparison["jax_step_s"] == train["step_s"]

  printed = capsys.readouterr().out
  table = printed[printed.index("ACNN GPU check:"):]
  header = next(line for line in table.splitlines()
                if line.startswith("measure"))
  for column in ("step ms", "img/s", "MFU", "memory", "compile s",
                 "torch ms", "jax/torch"):
    assert column in header
  rows = [line.split() for line in table.splitlines()
          if line.startswith(("train_step ", "forward "))]
  assert [row[:4] for row in rows] == [["train_step", "c", "bfloat16", "2"],
                                       ["forward", "c", "bfloat16", "1"]]
  assert rows[0][4] == f"{train['step_s'] * 1e3:.2f}"
  assert rows[1][4] == f"{forward['step_s'] * 1e3:.2f}"
  if torch["status"] == "skipped":
    assert rows[0][-4] == "skipped"  # torch ms.
    assert "skipped (1):" in table and "PyTorch is not installed" in table
  # Progress: one line per measurement as it finished.
  assert printed.count("] ok ") == 2 + (torch["status"] == "ok")


def test_the_plan_puts_the_headline_first_and_has_every_measurement_once():
  items = gpu_check.plan(["c", "a", "b"], ["bfloat16", "float32"],
                         [32, 8, 64], [1, 64])
  assert items[:5] == [Item("jax", "train_step", "c", "bfloat16", 32),
                       Item("torch", "train_step", "c", "bfloat16", 32,
                            "eager"),
                       Item("jax", "train_step", "c", "float32", 32),
                       Item("jax", "forward", "c", "bfloat16", 1),
                       Item("jax", "forward", "c", "bfloat16", 64)]
  assert len(items) == len(set(items))
  combinations = {(p, d, b) for p in "cab" for d in ("bfloat16", "float32")
                  for b in (32, 8, 64)}
  assert {(i.phase, i.dtype, i.batch) for i in items
          if i.kind == "jax train_step jit"} == combinations
  assert {(i.phase, i.dtype, i.batch) for i in items
          if i.kind == "torch train_step eager"} == combinations
  assert {(i.phase, i.batch) for i in items
          if i.kind == "torch train_step compile"} == {
              (p, b) for p in "cab" for b in (32, 8, 64)}
  assert {i.dtype for i in items if i.mode == "compile"} == {"bfloat16"}
  assert {(i.dtype, i.batch) for i in items if i.measure == "forward"} == {
      (d, b) for d in ("bfloat16", "float32") for b in (1, 64)}
  # Each PyTorch step comes after JAX's twin, whose FLOPs its MFU uses.
  for index, item in enumerate(items):
    if item.framework == "torch":
      assert Item("jax", *item.key) in items[:index]
  assert len(items) == 18 + 18 + 9 + 4


class FakeClock:

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_the_budget_skips_what_would_not_fit_and_records_why():
  clock = FakeClock()
  durations = {"jax train_step jit": 100.0, "torch train_step eager": 10.0}
  ran = []

  def run_item(item, deadline):
    assert deadline == 250.0
    ran.append(item)
    clock.now += durations[item.kind]
    return {"step_s": 0.1}

  items = [Item("jax", "train_step", "c", "bfloat16", b) for b in (1, 2)]
  items += [Item("torch", "train_step", "c", "bfloat16", 1, "eager"),
            Item("jax", "train_step", "c", "bfloat16", 3),
            Item("torch", "train_step", "c", "bfloat16", 2, "eager"),
            Item("torch", "train_step", "c", "bfloat16", 3, "eager")]
  seen = []
  results = gpu_check.run_plan(items, run_item, 250.0, clock,
                               on_result=seen.append)
  assert seen == results and len(results) == len(items)
  assert [r["status"] for r in results] == ["ok", "ok", "ok", "skipped",
                                            "ok", "ok"]
  # 210 s spent: 40 s left, under 1.25 x the 100 s a JAX step took; the
  # 10 s PyTorch steps still fit.
  assert results[3]["reason"] == ("budget: 40 s left, a jax train_step jit "
                                  "needs about 125 s (1.25 x the longest so "
                                  "far)")
  assert "elapsed_s" not in results[3]
  assert [r["elapsed_s"] for r in results if r["status"] == "ok"] == [
      100.0, 100.0, 10.0, 10.0, 10.0]
  assert ran == [item for i, item in enumerate(items) if i != 3]
  assert results[0] == {**items[0].fields(), "status": "ok", "step_s": 0.1,
                        "elapsed_s": 100.0}

  # Nothing left: even a kind never timed is skipped.
  clock.now = 300.0
  [late] = gpu_check.run_plan(
      [Item("jax", "forward", "c", "bfloat16", 1)], run_item, 250.0, clock)
  assert late["status"] == "skipped" and late["reason"] == "budget: 0 s left"


def test_a_failing_measurement_is_an_error_and_the_rest_go_on():
  clock = FakeClock()

  def run_item(item, deadline):
    del deadline
    clock.now += 5.0
    if item.batch == 64:
      raise MemoryError("RESOURCE_EXHAUSTED: out of memory")
    if item.framework == "torch":
      return {"status": "skipped", "reason": "no PyTorch"}
    return {"step_s": 0.5}

  items = [Item("jax", "train_step", "c", "float32", 64),
           Item("torch", "train_step", "c", "float32", 8, "eager"),
           Item("jax", "train_step", "c", "float32", 8)]
  error, skipped, ok = gpu_check.run_plan(items, run_item, 100.0, clock)
  assert error["status"] == "error" and error["elapsed_s"] == 5.0
  assert error["reason"] == "MemoryError: RESOURCE_EXHAUSTED: out of memory"
  assert skipped["status"] == "skipped" and skipped["reason"] == "no PyTorch"
  assert ok["status"] == "ok" and ok["step_s"] == 0.5


def _args(*flags):
  return gpu_check.parse_args(["--smoke", *flags])


ITEM = Item("torch", "train_step", "c", "bfloat16", 2, "eager")


def test_without_torch_the_check_records_why(monkeypatch):
  monkeypatch.setattr(gpu_check.importlib.util, "find_spec",
                      lambda name: None)
  side = gpu_check.TorchSide(_args(), "gpu")
  reason = f"PyTorch is not installed in {sys.executable}"
  assert side.status == {"python": sys.executable, "unavailable": reason}
  assert side.run(ITEM, deadline=1e12) == {"status": "skipped",
                                           "reason": reason}
  assert side.worker is None  # No process started for nothing.

  side = gpu_check.TorchSide(_args(), "tpu")
  assert side.run(ITEM, 1e12)["reason"] == (
      "JAX runs on tpu: PyTorch is compared on a GPU (or the CPU) only")
  assert gpu_check.TorchSide(_args("--no_torch"), "gpu").run(
      ITEM, 1e12)["reason"] == "--no_torch"
  side = gpu_check.TorchSide(_args("--torch_python=/no/such/python"), "gpu")
  result = side.run(ITEM, 1e12)
  assert result["status"] == "skipped" and "/no/such/python" in (
      result["reason"]) and side.worker is None


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                    reason="PyTorch is installed here")
def test_an_interpreter_without_torch_says_so_from_its_process(monkeypatch):
  """The worker's own hello line: what --torch_python=<another venv> gives
  when that one lacks PyTorch too."""
  monkeypatch.setattr(gpu_check.importlib.util, "find_spec",
                      lambda name: object())  # Pretend it is there.
  side = gpu_check.TorchSide(_args(), "cpu")
  result = side.run(ITEM, deadline=gpu_check.time.monotonic() + 120)
  assert result["status"] == "skipped"
  assert result["reason"].startswith("PyTorch is not installed in ")
  assert side.status["unavailable"] == result["reason"]
  assert side.worker is None
  assert side.run(ITEM, 1e12) == result  # Once known, no new process.


def test_pytorch_is_stopped_at_the_deadline_and_a_crash_is_an_error():
  side = gpu_check.TorchSide(_args(), "cpu")
  side.unavailable = None
  # A worker that says hello and then never answers.
  side.command = [sys.executable, "-c",
                  "import time; print('chatter'); "
                  "print('{\"ready\": true, \"torch\": \"fake\"}', "
                  "flush=True); time.sleep(600)"]
  start = gpu_check.time.monotonic()
  result = side.run(ITEM, deadline=start + 3.0)
  assert result == {"status": "skipped",
                    "reason": "the budget ran out while PyTorch ran"}
  assert gpu_check.time.monotonic() - start < 30
  assert side.worker is None and side.status["torch"] == "fake"

  side.command = [sys.executable, "-c",
                  "import sys; print('{\"ready\": true}', flush=True); "
                  "sys.stdin.readline(); sys.exit('CUDA error: lost')"]
  with pytest.raises(RuntimeError, match="ended .exit 1.: CUDA error: lost"):
    side.run(ITEM, deadline=gpu_check.time.monotonic() + 60)
  assert side.worker is None


def _result(framework, step_s, batch=32, mode="jit", status="ok", **extra):
  return {"framework": framework, "measure": "train_step", "mode": mode,
          "phase": "c", "dtype": "bfloat16", "per_device_batch": batch,
          "status": status, "step_s": step_s, **extra}


def test_the_ratios_and_pytorchs_mfu_use_jaxs_twin():
  results = [
      _result("jax", 0.08, flops_per_image=2e12, peak_tflops=1000.0),
      _result("torch", 0.1, mode="eager"),
      _result("torch", 0.064, mode="compile"),
      _result("jax", 0.2, batch=64, flops_per_image=2e12, peak_tflops=None),
      _result("torch", None, batch=64, mode="eager", status="skipped"),
      _result("torch", 0.3, batch=8, mode="eager")]  # No JAX twin.
  gpu_check.with_torch_mfu(results)
  assert results[1]["tflops"] == pytest.approx(2e12 * 32 / 0.1 / 1e12)
  assert results[1]["mfu"] == pytest.approx(0.64)
  assert results[2]["mfu"] == pytest.approx(1.0)
  assert "mfu" not in results[4] and "mfu" not in results[5]
  assert gpu_check.comparisons(results) == [
      {"phase": "c", "dtype": "bfloat16", "per_device_batch": 32,
       "jax_step_s": 0.08, "torch_eager_step_s": 0.1,
       "jax_over_torch_eager": 0.8, "torch_compile_step_s": 0.064,
       "jax_over_torch_compile": 1.25},
      {"phase": "c", "dtype": "bfloat16", "per_device_batch": 64,
       "jax_step_s": 0.2, "torch_eager_step_s": None,
       "jax_over_torch_eager": None, "torch_compile_step_s": None,
       "jax_over_torch_compile": None}]
