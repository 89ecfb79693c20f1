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

from absl import flags
from absl.testing import flagsaver
import pytest

from acnn_jax import cli
from acnn_jax import errors
from conftest import PROCESS_TIMEOUT

REPO = pathlib.Path(__file__).resolve().parents[1]


class _Fake:
  """A command of the `cli.run` kind, run in this process: its flags are
  defined once (prefixed, so they clash with no command's), restored after
  each run, and never required (a required flag would bind every later
  parse in the process; the end-to-end test below has one)."""

  @staticmethod
  def define_flags():
    if "fake_what" not in flags.FLAGS:
      flags.DEFINE_string("fake_what", "nothing", "What to raise.")
      flags.DEFINE_integer("fake_count", 1, "A number.")

  @staticmethod
  def main(argv):
    del argv
    what = flags.FLAGS.fake_what
    if what == "input":
      raise errors.InputError("bad.jpg is not an image; pass a JPEG or PNG.")
    if what == "config":
      raise errors.ConfigError("config.phase must be one of ('a', 'b', 'c').")
    if what == "missing":
      raise errors.MissingError("no data in /x\nDownload it from y.")
    if what == "bug":
      raise KeyError("a bug")
    print("ran")


@pytest.fixture
def run_fake(monkeypatch, capsys):
  """Runs `_Fake` through `cli.run` with the given arguments: (exit status,
  stdout, stderr). A bug's exception propagates."""
  def run(args):
    monkeypatch.setattr(sys, "argv", ["fake", *args])
    with flagsaver.flagsaver():
      try:
        cli.run(_Fake.main, _Fake.define_flags)
      except SystemExit as done:
        code = done.code or 0
      finally:
        flags.FLAGS.unparse_flags()
    out = capsys.readouterr()
    return code, out.out, out.err
  return run


def _lines_of(stderr, command):
  assert "Traceback" not in stderr, stderr
  return [line for line in stderr.splitlines()
          if line.startswith(f"{command}: error:")]


@pytest.mark.parametrize("args,code,message", [
    ([], 0, None),
    (["--unknown=3"], 2, "Unknown command line flag 'unknown'"),
    (["--fake_count=many"], 2, "fake_count"),
    (["stray"], 2, "unexpected arguments stray"),
    (["--fake_what=input"], 1, "bad.jpg is not an image"),
    (["--fake_what=config"], 2, "config.phase must be one of"),
    (["--fake_what=missing"], 1, "no data in /x"),
])
def test_exit_codes_and_one_error_line(run_fake, args, code, message):
  got, stdout, stderr = run_fake(args)
  assert got == code, stderr
  lines = _lines_of(stderr, "fake")
  if message is None:
    assert stdout.strip() == "ran" and not lines
  else:
    assert len(lines) == 1 and message in lines[0], stderr


def test_help_after_the_error_line_stays(run_fake):
  _, _, stderr = run_fake(["--fake_what=missing"])
  assert stderr.splitlines()[-2:] == ["fake: error: no data in /x",
                                      "Download it from y."]


def test_verbose_adds_the_traceback_to_a_reported_error(run_fake):
  code, _, stderr = run_fake(["--fake_what=input", "--verbose"])
  assert code == 1
  assert "Traceback" in stderr and "InputError" in stderr
  assert stderr.splitlines()[-1] == (
      "fake: error: bad.jpg is not an image; pass a JPEG or PNG.")


def test_a_bug_keeps_its_traceback(run_fake):
  with pytest.raises(KeyError, match="a bug"):
    run_fake(["--fake_what=bug"])


REQUIRED_FLAG_COMMAND = """
from absl import flags
from acnn_jax import cli

def define_flags():
  flags.DEFINE_string("needed", None, "Required.")
  flags.mark_flag_as_required("needed")

if __name__ == "__main__":
  cli.run(lambda argv: print("ran"), define_flags)
"""


def _run(args, module=None, script=None):
  env = dict(os.environ, PYTHONPATH=str(REPO), XLA_FLAGS="")
  command = ([sys.executable, "-m", module] if module else
             [sys.executable, str(script)])
  return subprocess.run(command + list(args), cwd=REPO, env=env,
                        capture_output=True, text=True,
                        timeout=PROCESS_TIMEOUT, check=False)


def _error_lines(process, command):
  return _lines_of(process.stderr, command)


@pytest.mark.slow
@pytest.mark.parametrize("module,args,code,message", [
    # Every command, as a program: a flag it does not know...
    *[(module, ["--no_such_flag=1"], 2, "no_such_flag")
      for module in ("acnn_jax.pckh", "acnn_jax.main", "acnn_jax.demo",
                     "acnn_jax.evaluate", "acnn_jax.predict",
                     "acnn_jax.export", "input_pipeline.synthetic")],
    # ... and a mistake of the user's found while running.
    ("input_pipeline.synthetic", ["--output_dir=OUT", "--num_images=0"], 1,
     "num_images >= 1"),
    ("acnn_jax.demo", ["--phases=ax"], 2, "unknown phases ['x']"),
    ("acnn_jax.evaluate", ["--workdir=OUT"], 1, "No checkpoint found"),
    ("acnn_jax.predict", ["--workdir=OUT", "--image=OUT/no.jpg"], 1,
     "image file not found"),
    ("acnn_jax.export", ["--workdir=OUT", "--output=OUT/export"], 1,
     "workdir or checkpoint not found"),
    ("acnn_jax.main", ["--config=configs/tiny.py", "--workdir=OUT",
                       "--config.phase=d"], 2, "config.phase must be one of"),
    ("required", [], 2, "--needed must have a value"),
])
def test_commands_report_mistakes_in_one_line_end_to_end(
    tmp_path, module, args, code, message):
  args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
  if module == "required":
    script = tmp_path / "required.py"
    script.write_text(REQUIRED_FLAG_COMMAND)
    process = _run(args, script=script)
  else:
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


@pytest.mark.slow
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
