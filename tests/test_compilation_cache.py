"""JAX's persistent compilation cache: where it lives, its switch, its use."""

import json
import os
import subprocess
import sys

import jax
import pytest

from acnn_jax import compilation_cache
from conftest import PROCESS_TIMEOUT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def restore_jax_config():
  names = ("jax_compilation_cache_dir",
           "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")
  before = {name: getattr(jax.config, name) for name in names}
  yield
  for name, value in before.items():
    jax.config.update(name, value)


def test_default_folder_follows_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv(compilation_cache.ENVIRONMENT_VARIABLE, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compilation_cache.default_directory() == str(
      tmp_path / "acnn_jax" / "xla")
  monkeypatch.delenv("XDG_CACHE_HOME")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert compilation_cache.default_directory() == str(
      tmp_path / "home" / ".cache" / "acnn_jax" / "xla")
  monkeypatch.setenv(compilation_cache.ENVIRONMENT_VARIABLE, "off")
  assert compilation_cache.default_directory() == "off"


@pytest.mark.parametrize("switch", ["off", "OFF", "0", "none", ""])
def test_off_leaves_jax_alone(switch, restore_jax_config):
  before = jax.config.jax_compilation_cache_dir
  assert compilation_cache.enable(switch) is None
  assert jax.config.jax_compilation_cache_dir == before


def test_enable_makes_the_folder_and_points_jax_at_it(tmp_path,
                                                      restore_jax_config):
  folder = tmp_path / "cache" / "xla"
  assert compilation_cache.enable(str(folder)) == str(folder)
  assert folder.is_dir()
  assert jax.config.jax_compilation_cache_dir == str(folder)
  assert (jax.config.jax_persistent_cache_min_compile_time_secs ==
          compilation_cache.MIN_COMPILE_SECONDS)


def test_a_folder_that_cannot_be_made_turns_it_off_with_a_warning(
    tmp_path, restore_jax_config, caplog):
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  before = jax.config.jax_compilation_cache_dir
  assert compilation_cache.enable(str(blocker / "xla")) is None
  assert jax.config.jax_compilation_cache_dir == before
  assert "compilation cache is off" in caplog.text


# The benchmark as a program, with the cache's threshold at 0 s: the tiny
# network's step compiles in about the default threshold, so on a fast
# machine it would never be written and the test would test nothing.
_BENCHMARK = """
import runpy, sys
from acnn_jax import compilation_cache
compilation_cache.MIN_COMPILE_SECONDS = 0.0
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _benchmark(cache):
  """One run of the benchmark on a tiny network: its JSON lines."""
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  result = subprocess.run(
      [sys.executable, "-c", _BENCHMARK,
       os.path.join(REPO, "benchmarks", "train_step.py"),
       "--phases=b", "--num_stacks=2", "--features=8", "--hourglass_depth=1",
       "--attention_features=4", "--input_size=32", "--batch=2", "--steps=1",
       "--warmup=0", f"--compilation_cache={cache}"],
      capture_output=True, text=True, timeout=PROCESS_TIMEOUT, check=True,
      env=env)
  return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.slow
def test_a_second_process_loads_the_train_step_from_the_cache(tmp_path):
  """The second run compiles nothing of the step: it is read from the
  folder (`from_cache` counts JAX's cache hits while compiling)."""
  cache = str(tmp_path / "xla")
  first = _benchmark(cache)
  assert not first[0]["from_cache"]
  assert os.listdir(cache)
  second = _benchmark(cache)
  assert second[0]["from_cache"]
  assert first[0]["flops_per_image"] == second[0]["flops_per_image"] > 0
  off = _benchmark("off")
  assert not off[0]["from_cache"]
