"""launch.sh takes the paths a user gives from the directory they run it in.

Nothing is installed: ACNN_VENV names a fake venv whose `bin/python` prints
its working directory and arguments, with the stamp that makes launch.sh skip
the installation (a copy of setup.py, see `ensure_setup`). PYTHON names no
interpreter, so a bug that reached `setup` would stop at once instead of
installing anything.
"""

import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import PROCESS_TIMEOUT

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = str(REPO / "launch.sh")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None,
                                reason="launch.sh needs bash")


@pytest.fixture
def user(tmp_path):
  """(the user's directory, the fake venv): the user is not in the repo."""
  venv = tmp_path / "venv"
  (venv / "bin").mkdir(parents=True)
  python = venv / "bin" / "python"
  python.write_text('#!/bin/sh\necho "cwd=$PWD"\n'
                    'for a in "$@"; do echo "arg=$a"; done\necho "end"\n')
  python.chmod(0o755)
  shutil.copy(REPO / "setup.py", venv / ".acnn_installed")
  home = tmp_path / "home"
  home.mkdir()
  return home, venv


def _launch(cwd, venv, *args, script=LAUNCH):
  """Runs launch.sh; returns the fake python's calls as lists of arguments
  (it prints its cwd first, which must be the repository)."""
  # HOME is the user's directory too, for paths given as ~/...
  env = dict(os.environ, ACNN_VENV=str(venv), PYTHON="/nonexistent/python3",
             HOME=str(cwd))
  process = subprocess.run(["bash", script, *args], cwd=cwd, env=env,
                           capture_output=True, text=True,
                           timeout=PROCESS_TIMEOUT, check=False)
  assert process.returncode == 0, process.stderr
  calls = []
  for line in process.stdout.splitlines():
    if line.startswith("cwd="):
      assert line == f"cwd={REPO}", line
      calls.append([])
    elif line.startswith("arg="):
      calls[-1].append(line[len("arg="):])
  return calls


def test_train_resolves_paths_from_the_users_directory(user):
  home, venv = user
  calls = _launch(home, venv, "train", "configs/phase_a.py", "runs/x",
                  "--config.manual_dir=data/mpii",
                  "--config.init_from", "./old/phase_a",
                  "--config.data_dir=gs://bucket/tfds",
                  "--config.learning_rate=1e-3")
  assert calls == [[
      "-m", "acnn_jax.main",
      # No configs/phase_a.py where the user is: the repository's.
      f"--config={REPO}/configs/phase_a.py",
      f"--workdir={home}/runs/x",
      f"--config.manual_dir={home}/data/mpii",
      "--config.init_from", f"{home}/old/phase_a",
      "--config.data_dir=gs://bucket/tfds",  # a URL stays as it is
      "--config.learning_rate=1e-3",
  ]]


def test_a_config_of_the_users_own_comes_first(user):
  home, venv = user
  (home / "configs").mkdir()
  (home / "configs" / "phase_a.py").write_text("")
  calls = _launch(home, venv, "train", "configs/phase_a.py:b", "/abs/run",
                  "--workdir=~/elsewhere", "--config.init_from=")
  assert calls == [[
      "-m", "acnn_jax.main", f"--config={home}/configs/phase_a.py:b",
      "--workdir=/abs/run", f"--workdir={home}/elsewhere",
      "--config.init_from=",  # '' (the previous phase) stays ''
  ]]


def test_demo_workdir_positional_flag_or_default(user):
  home, venv = user
  assert _launch(home, venv, "demo", "runs/demo", "--phases=a") == [
      ["-m", "acnn_jax.demo", f"--workdir={home}/runs/demo", "--phases=a"]]
  assert _launch(home, venv, "demo", "--workdir", "out") == [
      ["-m", "acnn_jax.demo", "--workdir", f"{home}/out"]]
  assert _launch(home, venv, "demo") == [
      ["-m", "acnn_jax.demo", f"--workdir={home}/runs/demo"]]


def test_all_runs_the_repository_phases_in_the_users_workdir(user):
  home, venv = user
  calls = _launch(home, venv, "all", "WORKDIR",
                  "--config.manual_dir=../mpii")
  assert calls == [
      ["-m", "acnn_jax.main", f"--config={REPO}/configs/phase_{p}.py",
       f"--workdir={home}/WORKDIR", f"--config.manual_dir={home}/../mpii"]
      for p in "abc"]


def test_a_relative_venv_and_script_path_work_from_elsewhere(user):
  home, venv = user
  script = os.path.relpath(LAUNCH, home)
  calls = _launch(home, os.path.relpath(venv, home), "train",
                  "configs/phase_b.py", "w", script=script)
  assert calls == [["-m", "acnn_jax.main",
                    f"--config={REPO}/configs/phase_b.py",
                    f"--workdir={home}/w"]]


def test_from_the_repository_relative_paths_mean_the_repository(user):
  _, venv = user
  calls = _launch(REPO, venv, "train", "configs/phase_a.py", "runs/x")
  assert calls == [["-m", "acnn_jax.main",
                    f"--config={REPO}/configs/phase_a.py",
                    f"--workdir={REPO}/runs/x"]]


def test_test_files_are_found_from_the_users_directory(user):
  home, venv = user
  (home / "test_mine.py").write_text("")
  calls = _launch(home, venv, "test", "test_mine.py::test_one", "-k", "x")
  assert calls == [["-m", "pytest", "-n", "2", "--dist", "loadgroup",
                    "-q", "-m", "not slow", f"{home}/test_mine.py::test_one",
                    "-k", "x"]]
  # Without a file, the whole of tests/.
  calls = _launch(home, venv, "test")
  assert calls == [["-m", "pytest", "tests", "-n", "2", "--dist", "loadgroup",
                    "-q", "-m", "not slow"]]


def test_test_runs_the_quick_tier_and_all_adds_the_slow_tests(user):
  home, venv = user
  calls = _launch(home, venv, "test", "--all")
  assert calls == [["-m", "pytest", "tests", "-n", "2", "--dist", "loadgroup",
                    "-q"]]
  # A marker expression of the user's comes after the tier's, so it wins.
  calls = _launch(home, venv, "test", "-m", "slow")
  assert calls[0][-4:] == ["-m", "not slow", "-m", "slow"]
