"""When training goes wrong: killed saves, divergence, damaged checkpoints,
reruns with another config. Nothing the user has is lost, and a resumed run
is the run that was interrupted, bit for bit."""

import asyncio
import gc
import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from orbax.checkpoint._src.serialization import serialization
import pytest

from acnn_jax import checkpoints
from acnn_jax import demo
from acnn_jax import errors
from acnn_jax import main as train_command
from acnn_jax import saved_config
from acnn_jax import train
from acnn_jax import train_step
from conftest import PROCESS_TIMEOUT
from conftest import one_device_environment
from conftest import saved_state
from conftest import tiny_config
from input_pipeline import mpii_builder
from input_pipeline import synthetic

DRIVER = os.path.join(os.path.dirname(__file__), "killable_training.py")
TINY_CONFIG = str(pathlib.Path(__file__).resolve().parents[1] / "configs" /
                  "tiny.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """configs/tiny.py's synthetic set, written and prepared once."""
  root = tmp_path_factory.mktemp("tiny_data")
  config = tiny_config("a")
  synthetic.generate(str(root / "raw"), config.synthetic_images,
                     seed=config.synthetic_seed)
  mpii_builder.build(str(root / "raw"), str(root / "tfds"))
  return dict(manual_dir=str(root / "raw"), data_dir=str(root / "tfds"))


def _assert_same(a, b):
  leaves_a = jax.tree_util.tree_leaves_with_path(a)
  leaves_b = jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for (path, x), y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def _process(workdir, overrides, kill=None):
  command = [sys.executable, DRIVER, workdir, json.dumps(overrides)]
  return subprocess.Popen(command + list(kill or ()),
                          env=one_device_environment(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def _finish(process):
  output, _ = process.communicate(timeout=PROCESS_TIMEOUT)
  return process.returncode, output


@pytest.mark.slow
def test_killed_anywhere_in_a_save_resumes_bit_for_bit(data, tmp_path):
  # 6 steps, evaluated (and saved as best) at steps 4 and 6 only: the
  # first two processes die before compiling the evaluation.
  overrides = dict(num_epochs=3, eval_every_epochs=2, num_pictures=0, **data)
  reference_dir, workdir = str(tmp_path / "reference"), str(tmp_path / "run")
  reference = _process(reference_dir, overrides)
  # (where the save dies, of which step, the newest checkpoint after it)
  for where, step, newest in (("tmp", 2, 1), ("rename", 3, 2),
                              ("committed", 4, 4)):
    code, output = _finish(_process(workdir, overrides, (where, str(step))))
    assert code == -9, output[-3000:]
    _, got = saved_state(workdir, "a")
    assert got == newest, (where, step, output[-3000:])
  code, output = _finish(_process(workdir, overrides))
  assert code == 0, output[-3000:]
  code, output = _finish(reference)
  assert code == 0, output[-3000:]
  resumed, step = saved_state(workdir, "a")
  uninterrupted, reference_step = saved_state(reference_dir, "a")
  assert step == reference_step == 6
  _assert_same(resumed, uninterrupted)
  phase = checkpoints.phase_dir(workdir, "a")
  assert not glob.glob(os.path.join(phase, "*", "*tmp*"))  # Cleaned up.
  history = [json.load(open(os.path.join(d, "phase_a", "eval_history.json")))
             for d in (workdir, reference_dir)]
  assert [r["step"] for r in history[0]] == [4, 6]
  assert history[0] == history[1]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
  """A tiny phase A trained for 2 steps (checkpoints 1 and 2), to copy."""
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  train.train_and_evaluate(tiny_config("a", **data), workdir)
  return workdir


def _copy(trained_dir, tmp_path):
  workdir = str(tmp_path / "run")
  shutil.copytree(trained_dir, workdir)
  return workdir


def _nan_loss(original):
  def loss(predictions, targets, weights):
    value, per_stage = original(predictions, targets, weights)
    return value * jnp.nan, per_stage * jnp.nan
  return loss


def _nan_gradient(original):
  def loss(predictions, targets, weights):
    value, per_stage = original(predictions, targets, weights)
    # sqrt'(0) is inf, times 0: the value is the loss, the gradient NaN.
    return value + jnp.sum(jnp.sqrt(predictions * 0.0)), per_stage
  return loss


@pytest.mark.slow
@pytest.mark.parametrize("broken_loss,match", [
    # The loss itself is NaN from step 3 on: found when the metrics are read.
    (_nan_loss, r"loss is nan at or before step 3.*step 2, is kept"),
    # The loss is finite but its gradient NaN: found before the save.
    (_nan_gradient, r"after step 3 holds NaN.*step 2, is kept"),
], ids=["nan_loss", "nan_gradient"])
def test_a_diverged_state_is_never_saved(trained, data, tmp_path,
                                         monkeypatch, broken_loss, match):
  """Step 3 goes wrong: the state after it must not become checkpoint 3,
  checkpoint 2 stays as it was, and the error names it."""
  workdir = _copy(trained, tmp_path)
  before, _ = saved_state(workdir, "a")
  monkeypatch.setattr(train_step, "heatmap_loss",
                      broken_loss(train_step.heatmap_loss))
  with pytest.raises(train.NonFiniteLossError, match=match):
    train.train_and_evaluate(tiny_config("a", num_epochs=2, **data),
                             workdir)
  after, step = saved_state(workdir, "a")
  assert step == 2
  _assert_same(after, before)


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_is_set_aside_not_deleted(
    trained, data, tmp_path, caplog):
  workdir = _copy(trained, tmp_path)
  newest = os.path.join(checkpoints.phase_dir(workdir, "a"), "checkpoints",
                        "2")
  for path in glob.glob(os.path.join(newest, "**", "*"), recursive=True):
    if os.path.isfile(path) and "ocdbt" in path:
      with open(path, "r+b") as f:
        f.truncate(8)
  damaged = {p: open(p, "rb").read() for p in glob.glob(
      os.path.join(newest, "**", "*"), recursive=True) if os.path.isfile(p)}
  with caplog.at_level(logging.WARNING):
    result = train.train_and_evaluate(
        tiny_config("a", num_epochs=2, **data), workdir)
  assert result["step"] == 4
  warnings = [r.getMessage() for r in caplog.records
              if "cannot be used" in r.getMessage()]
  assert len(warnings) == 1 and "checkpoints/2" in warnings[0]
  assert "resuming from step 1" in warnings[0]
  moved = os.path.join(checkpoints.phase_dir(workdir, "a"), "damaged",
                       "checkpoints_2")
  for path, content in damaged.items():
    with open(path.replace(newest, moved), "rb") as f:
      assert f.read() == content
  _, step = saved_state(workdir, "a")
  assert step == 4


def _small_state(step):
  return {"step": jnp.asarray(step, jnp.int32),
          "params": {"w": jnp.full((3,), step, jnp.float32)},
          "batch_stats": {"mean": jnp.zeros((3,), jnp.float32)},
          "opt_state": {"mu": jnp.zeros((3,), jnp.float32)}}


class _Unrelated:
  """Raises in __del__: an unraisable exception that is no restore's."""

  def __del__(self):
    raise ValueError("not a restore's")


def _abandon_reads_of(step_dir, monkeypatch):
  """Makes orbax's reads of `step_dir` fail as a damaged file does, the
  first after the others have started, which are then still in flight: the
  state orbax's closed event loop leaves them in (with real damage, only
  sometimes, depending on timing)."""
  original = serialization._read_shard  # pylint: disable=protected-access
  failed = []

  async def read(t, **kwargs):
    if f"{step_dir}{os.sep}" in str(t.spec()):
      if not failed:
        failed.append(True)
        _Unrelated()
        await asyncio.sleep(0.05)
        raise OSError("DATA_LOSS: cut short")
      await asyncio.sleep(60)
    return await original(t, **kwargs)

  monkeypatch.setattr(serialization, "_read_shard", read)


@pytest.mark.parametrize("reader", ["resume", "inference"])
def test_a_failed_restore_prints_no_coroutine_noise(tmp_path, monkeypatch,
                                                    caplog, reader):
  """Before issue 25 each abandoned read printed 'Exception ignored in:
  <coroutine object _read_array_index_and_device_put>' and 60 lines."""
  last, _ = checkpoints.make_managers(str(tmp_path), keep=3)
  for step in (5, 6):
    checkpoints.save_state(last, step, _small_state(step))
  last.wait_until_finished()
  _abandon_reads_of(tmp_path / "checkpoints" / "6", monkeypatch)
  printed = []
  monkeypatch.setattr(sys, "unraisablehook", printed.append)
  if reader == "resume":
    state = checkpoints.restore_latest(last, _small_state(0))
    step = int(state["step"])
  else:
    _, step, _ = checkpoints.restore_variables(
        str(tmp_path / "checkpoints"))
  gc.collect()
  # Every other unraisable exception is still printed.
  assert [str(u.exc_value) for u in printed] == ["not a restore's"], [
      u.object for u in printed]
  assert sys.unraisablehook == printed.append
  assert step == 5
  # TensorStore's reason, not orbax's 'Encountered error while reading'.
  assert "checkpoints/6 cannot be used (DATA_LOSS: cut short)" in caplog.text


@pytest.mark.slow
def test_rerunning_a_finished_phase_keeps_its_config(trained, data,
                                                     tmp_path, caplog):
  workdir = _copy(trained, tmp_path)
  phase = checkpoints.phase_dir(workdir, "a")
  with open(os.path.join(phase, saved_config.CONFIG_FILE)) as f:
    before = f.read()
  state, _ = saved_state(workdir, "a")
  with caplog.at_level(logging.WARNING):
    train.train_and_evaluate(
        tiny_config("a", learning_rate=0.5, **data), workdir)
  with open(os.path.join(phase, saved_config.CONFIG_FILE)) as f:
    assert f.read() == before
  assert "ignored: learning_rate 0.001 -> 0.5" in caplog.text
  _assert_same(saved_state(workdir, "a")[0], state)
  with pytest.raises(errors.ConfigError, match="features"):
    train.train_and_evaluate(tiny_config("a", features=32, **data), workdir)


# ------------------------------------- where the results go (issue 25)

COMMANDS = {"main": train_command, "demo": demo, "synthetic": synthetic}
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"),
                                reason="needs Linux's /proc")


@pytest.mark.parametrize("command,args,message", [
    pytest.param("main", ["--workdir=FILE"],
                 "--workdir=FILE: FILE is a file, not a folder",
                 id="main_workdir_is_a_file"),
    pytest.param("main", ["--workdir=FILE/run"],
                 "--workdir=FILE/run: cannot create the folder FILE/run: "
                 "FILE is a file, not a folder.", id="main_under_a_file"),
    pytest.param("main", ["--workdir=/proc/acnn_run"],
                 "--workdir=/proc/acnn_run: cannot create the folder "
                 "/proc/acnn_run (", id="main_unwritable", marks=needs_proc),
    pytest.param("demo", ["--workdir=FILE/demo"],
                 "--workdir=FILE/demo: cannot create the folder",
                 id="demo_under_a_file"),
    pytest.param("synthetic", ["--output_dir=FILE"],
                 "--output_dir=FILE: FILE is a file, not a folder",
                 id="synthetic_output_is_a_file"),
])
def test_a_workdir_that_cannot_be_written_is_refused_before_training(
    run_command, tmp_path, command, args, message):
  """In one line, before the devices, the data or the config are used (on
  the code before issue 25: an OSError traceback once training began)."""
  blocker = tmp_path / "file"
  blocker.write_text("a regular file, not a folder\n")
  args = [a.replace("FILE", str(blocker)) for a in args]
  if command == "main":
    args.append(f"--config={TINY_CONFIG}")
  module = COMMANDS[command]
  code, stdout, stderr = run_command(command, module.main,
                                     module.define_flags, args)
  assert code == 1, stderr
  assert "Traceback" not in stderr, stderr
  lines = [l for l in stderr.splitlines() if "error:" in l]
  assert len(lines) == 1 and lines[0].startswith(f"{command}: error: ")
  assert message.replace("FILE", str(blocker)) in lines[0], lines[0]
  assert stdout == "" and os.listdir(tmp_path) == ["file"]
