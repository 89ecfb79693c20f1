"""Tests of the command lines' shared error style (`acnn_jax.cli`).

Usage mistakes exit with 2, a user's mistake found while running with 1 (2 for
a bad config field), each as one `<command>: error:` line without a
traceback; a bug keeps its traceback.
"""

import logging
import os
import pathlib
import subprocess
import sys

import pytest

from acnn_jax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]

FAKE_COMMAND = '''
from absl import flags
from acnn_jax import cli
from acnn_jax import errors

def define_flags():
  flags.DEFINE_string("what", "nothing", "What to raise.")
  flags.DEFINE_integer("count", 1, "A number.")
  flags.DEFINE_string("needed", None, "Required.")
  flags.mark_flag_as_required("needed")

def main(argv):
  what = flags.FLAGS.what
  if what == "input":
    raise errors.InputError("bad.jpg is not an image; pass a JPEG or PNG.")
  if what == "config":
    raise errors.ConfigError("config.phase must be one of ('a', 'b', 'c').")
  if what == "missing":
    raise errors.MissingError("no data in /x\\nDownload it from y.")
  if what == "bug":
    raise KeyError("a bug")
  print("ran")

if __name__ == "__main__":
  cli.run(main, define_flags)
'''


def _run(args, module=None, script=None, timeout=120):
  env = dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS="")
  command = ([sys.executable, "-m", module] if module else
             [sys.executable, str(script)])
  return subprocess.run(command + list(args), cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout,
                        check=False)


def _error_lines(process, command):
  assert "Traceback" not in process.stderr, process.stderr
  return [line for line in process.stderr.splitlines()
          if line.startswith(f"{command}: error:")]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
  path = tmp_path_factory.mktemp("cli") / "fake.py"
  path.write_text(FAKE_COMMAND)
  return path


@pytest.mark.parametrize("args,code,message", [
    (["--needed=1"], 0, None),
    (["--needed=1", "--unknown=3"], 2, "Unknown command line flag 'unknown'"),
    ([], 2, "--needed must have a value"),
    (["--needed=1", "--count=many"], 2, "count"),
    (["--needed=1", "stray"], 2, "unexpected arguments stray"),
    (["--needed=1", "--what=input"], 1, "bad.jpg is not an image"),
    (["--needed=1", "--what=config"], 2, "config.phase must be one of"),
    (["--needed=1", "--what=missing"], 1, "no data in /x"),
])
def test_exit_codes_and_one_error_line(fake, args, code, message):
  process = _run(args, script=fake)
  assert process.returncode == code, process.stderr
  lines = _error_lines(process, "fake")
  if message is None:
    assert process.stdout.strip() == "ran" and not lines
  else:
    assert len(lines) == 1 and message in lines[0], process.stderr


def test_help_after_the_error_line_stays(fake):
  process = _run(["--needed=1", "--what=missing"], script=fake)
  assert process.stderr.splitlines()[-1] == "Download it from y."


def test_verbose_adds_the_traceback_to_a_reported_error(fake):
  process = _run(["--needed=1", "--what=input", "--verbose"], script=fake)
  assert process.returncode == 1
  assert "Traceback" in process.stderr and "InputError" in process.stderr
  assert process.stderr.splitlines()[-1] == (
      "fake: error: bad.jpg is not an image; pass a JPEG or PNG.")


def test_a_bug_keeps_its_traceback(fake):
  process = _run(["--needed=1", "--what=bug"], script=fake)
  assert process.returncode == 1
  assert "Traceback" in process.stderr and "KeyError" in process.stderr


# The light commands start in about a second; the others load JAX and
# TensorFlow first.
COMMANDS = ("acnn_jax.pckh", "input_pipeline.synthetic") + tuple(
    pytest.param(module, marks=pytest.mark.slow)
    for module in ("acnn_jax.main", "acnn_jax.demo", "acnn_jax.evaluate",
                   "acnn_jax.predict"))


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_reports_an_unknown_flag_in_one_line(module):
  process = _run(["--no_such_flag=1"], module=module)
  assert process.returncode == 2, process.stderr
  lines = _error_lines(process, module.split(".")[-1])
  assert len(lines) == 1 and "no_such_flag" in lines[0], process.stderr


@pytest.mark.parametrize("module,args,code,message", [
    ("input_pipeline.synthetic", ["--output_dir=OUT", "--num_images=0"], 1,
     "num_images >= 1"),
    ("acnn_jax.demo", ["--phases=ax"], 2, "unknown phases ['x']"),
    ("acnn_jax.evaluate", ["--workdir=OUT"], 1, "No checkpoint found"),
    ("acnn_jax.main", ["--config=configs/tiny.py", "--workdir=OUT",
                       "--config.phase=d"], 2, "config.phase must be one of"),
])
@pytest.mark.slow
def test_commands_report_user_errors_in_one_line(tmp_path, module, args, code,
                                                 message):
  args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
  process = _run(args, module=module)
  assert process.returncode == code, process.stderr
  lines = _error_lines(process, module.split(".")[-1])
  assert len(lines) == 1 and message in lines[0], process.stderr


def test_library_info_logs_are_dropped_but_their_warnings_kept():
  quiet = cli._QuietLibraries()  # pylint: disable=protected-access

  def record(path, level):
    return logging.LogRecord("x", level, path, 1, "message", None, None)

  orbax = os.path.join("site-packages", "orbax", "checkpoint", "manager.py")
  assert not quiet.filter(record(orbax, logging.INFO))
  assert quiet.filter(record(orbax, logging.WARNING))
  ours = os.path.join("acnn_jax", "train.py")
  assert quiet.filter(record(ours, logging.INFO))


RESTORE_COMMAND = '''
import os
from absl import flags
import jax.numpy as jnp
from acnn_jax import checkpoints
from acnn_jax import cli

def define_flags():
  flags.DEFINE_string("directory", None, "A phase directory to write.")
  flags.DEFINE_bool("damage_all", False, "Damage every checkpoint.")

def main(argv):
  directory = flags.FLAGS.directory
  last, _ = checkpoints.make_managers(directory, 3)
  for step in (1, 2):
    # Several arrays: several reads in flight when the first one fails.
    checkpoints.save_state(last, step, {"step": jnp.asarray(step), "params": {
        f"w{i}": jnp.full((64, 64), step, jnp.float32) for i in range(8)}})
  last.wait_until_finished()
  damaged = ["2", "1"] if flags.FLAGS.damage_all else ["2"]
  for root, _, files in (item for step in damaged for item in os.walk(
      os.path.join(directory, "checkpoints", step))):
    for name in files:
      if "ocdbt" in root or name.endswith(".ocdbt"):
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(8)
  _, step, _ = checkpoints.restore_variables(
      os.path.join(directory, "checkpoints"))
  print("restored", step)

if __name__ == "__main__":
  cli.run(main, define_flags)
'''


@pytest.mark.parametrize("damage_all", [False, True])
def test_damaged_checkpoints_are_one_line_each(tmp_path, damage_all):
  """Not one traceback per failed tensorstore read ('Event loop is
  closed'): one warning line for a skipped checkpoint, one error line when
  none can be used."""
  script = tmp_path / "restore.py"
  script.write_text(RESTORE_COMMAND)
  process = _run([f"--directory={tmp_path / 'phase'}",
                  f"--damage_all={damage_all}"], script=script)
  assert "Traceback" not in process.stderr, process.stderr[-3000:]
  if damage_all:
    assert process.returncode == 1
    assert len(_error_lines(process, "restore")) == 1, process.stderr
  else:
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "restored 1"
    assert process.stderr.count("cannot be used") == 1, process.stderr
