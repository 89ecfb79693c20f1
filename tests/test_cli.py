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
from ml_collections import config_flags
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
      config_flags.DEFINE_config_file("fake_config", None, "A config file.")

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
    if what == "show_config":
      print(flags.FLAGS.fake_config)
    print("ran")


@pytest.fixture
def run_fake(run_command):
  """Runs `_Fake` through `cli.run` with the given arguments: (exit status,
  stdout, stderr). A bug's exception propagates."""
  return lambda args: run_command("fake", _Fake.main, _Fake.define_flags,
                                  args)


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


# ------------------------------------------------- config flags' mistakes

CONFIG_FILES = {
    "good.py": """
import ml_collections

def get_config(phase="a"):
  if phase not in ("a", "b"):
    raise ValueError(f"no phase {phase!r} here; use a or b")
  return ml_collections.ConfigDict(
      {"phase": phase, "batch_size": 4, "model": {"features": 16}})
""",
    "raises.py": "def get_config():\n  return {}['learning_rate']\n",
    "syntax.py": "def get_config(:\n  pass\n",
    "imports.py": "import no_such_module_here\n",
    "nothing.py": "CONFIG = {}\n",
    "none.py": "def get_config():\n  config = {}\n",
    "rejects.py": """
from acnn_jax import errors

def get_config(size):
  raise errors.ConfigError(f"config.size must be small or large, not {size}.")
""",
}


@pytest.fixture
def config_dir(tmp_path, monkeypatch):
  """A current folder holding configs/ with CONFIG_FILES."""
  (tmp_path / "configs").mkdir()
  for name, text in CONFIG_FILES.items():
    (tmp_path / "configs" / name).write_text(text)
  monkeypatch.chdir(tmp_path)
  return tmp_path


GOOD = "--fake_config=configs/good.py"
# Each: one bad --fake_config, and what its one error line must say. On
# the code before issue 25 every one of them but the last ended in a
# traceback (ml_collections' AttributeError, SyntaxError, KeyError...), in
# a line holding a traceback, or, for a missing file, in no error until the
# config was used.
CONFIG_MISTAKES = [
    pytest.param(
        ["--fake_config=configs/nope.py"],
        "--fake_config=configs/nope.py: no config file configs/nope.py in "
        "CWD (relative to the current folder); configs/ has good.py, "
        "imports.py", id="missing_file"),
    pytest.param(["--fake_config=configs"],
                 "configs is a folder, not a config file", id="a_folder"),
    pytest.param(
        [GOOD, "--fake_config.batchsize=8"],
        "--fake_config.batchsize=8: fake_config has no field batchsize; did "
        "you mean fake_config.batch_size?", id="unknown_field"),
    pytest.param(
        [GOOD, "--fake_config.model.featurs=8"],
        "fake_config.model has no field featurs; did you mean "
        "fake_config.model.features?", id="unknown_nested_field"),
    pytest.param(
        [GOOD, "--fake_config.batch_size.x=8"],
        "fake_config.batch_size is the int 4: it has no field x.",
        id="field_of_an_int"),
    pytest.param(
        ["--fake_config=configs/good.py:c"],
        "--fake_config=configs/good.py:c: get_config('c') of "
        "configs/good.py raised ValueError: no phase 'c' here; use a or b "
        "(configs/good.py line 6).", id="get_config_rejects_its_arg"),
    pytest.param(["--fake_config=configs/good.py:a:b"],
                 "get_config('a:b') of", id="arg_with_a_colon"),
    pytest.param(
        ["--fake_config=configs/rejects.py:huge"],
        "--fake_config=configs/rejects.py:huge: config.size must be small "
        "or large, not huge.", id="arg_rejected_as_a_config_error"),
    pytest.param(
        ["--fake_config=configs/rejects.py"],
        "configs/rejects.py's get_config(size) cannot be called as "
        "get_config(); add ':VALUE' to configs/rejects.py.",
        id="arg_missing"),
    pytest.param(
        ["--fake_config=configs/raises.py"],
        "get_config() of configs/raises.py raised KeyError: "
        "'learning_rate' (configs/raises.py line 2).",
        id="get_config_raises"),
    pytest.param(
        ["--fake_config=configs/syntax.py"],
        "--fake_config=configs/syntax.py: configs/syntax.py line 1: "
        "invalid syntax.", id="syntax_error"),
    pytest.param(
        ["--fake_config=configs/imports.py"],
        "configs/imports.py raised ModuleNotFoundError: No module named "
        "'no_such_module_here' (configs/imports.py line 1).",
        id="import_fails"),
    pytest.param(["--fake_config=configs/nothing.py"],
                 "configs/nothing.py defines no get_config()",
                 id="no_get_config"),
    pytest.param(["--fake_config=configs/none.py"],
                 "get_config() of configs/none.py returned None",
                 id="returns_none"),
    # Already one line before issue 25 (absl's own message): kept so.
    pytest.param(
        [GOOD, "--fake_config.batch_size=abc"],
        "flag --fake_config.batch_size=abc: invalid literal for int()",
        id="wrong_type"),
]


@pytest.mark.parametrize("args,message", CONFIG_MISTAKES)
def test_config_mistakes_are_one_usage_error_line(run_fake, config_dir, args,
                                                  message):
  code, stdout, stderr = run_fake(args)
  assert code == 2, stderr
  lines = _lines_of(stderr, "fake")
  assert len(lines) == 1, stderr
  assert message.replace("CWD", str(config_dir)) in lines[0], lines[0]
  assert stdout == ""


def test_a_good_config_and_its_overrides_still_load(run_fake, config_dir):
  code, stdout, stderr = run_fake(
      ["--fake_config=configs/good.py:b", "--fake_config.batch_size=8",
       "--fake_config.model.features=32", "--fake_what=show_config"])
  assert code == 0, stderr
  assert "batch_size: 8" in stdout and "features: 32" in stdout
  assert "phase: b" in stdout


def test_verbose_shows_the_config_files_traceback(run_fake, config_dir):
  code, _, stderr = run_fake(["--fake_config=configs/raises.py",
                              "--verbose"])
  assert code == 2
  assert "Traceback" in stderr and "configs/raises.py\", line 2" in stderr
  assert stderr.splitlines()[-1].startswith(
      "fake: error: --fake_config=configs/raises.py: get_config() of")


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
    # (--output's folder OUT is created first: the workdir is OUT/run.)
    ("acnn_jax.export", ["--workdir=OUT/run", "--output=OUT/export"], 1,
     "workdir or checkpoint not found"),
    ("acnn_jax.main", ["--config=configs/tiny.py", "--workdir=OUT",
                       "--config.phase=d"], 2, "config.phase must be one of"),
    # Issue 25: config flags' mistakes, outputs that cannot be written.
    ("acnn_jax.main", ["--config=configs/tiny.py", "--workdir=OUT",
                       "--config.batchsize=8"], 2,
     "--config.batchsize=8: config has no field batchsize; did you mean "
     "config.batch_size?"),
    ("acnn_jax.evaluate", ["--workdir=OUT", "--config=configs/nope.py"], 2,
     f"--config=configs/nope.py: no config file configs/nope.py in {REPO} "
     "(relative to the current folder)"),
    ("acnn_jax.predict", ["--workdir=OUT", "--image=OUT/no.jpg",
                          "--output=README.md/pose.png"], 1,
     f"--output=README.md/pose.png: cannot create the folder "
     f"{REPO / 'README.md'}: {REPO / 'README.md'} is a file"),
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
