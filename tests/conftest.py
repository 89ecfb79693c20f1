"""Test set-up: fake CPU devices and a quiet TensorFlow, before anything imports
jax; shared fixtures; the `slow` marker.

`./launch.sh test` runs the quick tier: every test not marked slow.
`./launch.sh test --all` (CI) adds the slow ones: training runs, subprocesses
that load JAX or TensorFlow, the notebook, the full-size network.
"""

import os

# Two fake CPU devices make pmap code testable on any machine. Two, not more:
# on 2-core machines 4 or 8 fake devices were seen to deadlock in collectives.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") +
    " --xla_force_host_platform_device_count=2").strip()
# Tests run a few steps of tiny networks, where compiling is most of the
# time: XLA's cheap compile (backend at -O0, no expensive LLVM passes) is
# the better trade. The training processes tests start inherit it.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# pylint: disable=g-import-not-at-top
import contextlib
import dataclasses
import fcntl
import functools
import json
import pathlib
import sys
from typing import Optional

from absl import flags
from absl.testing import flagsaver
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import cli
from acnn_jax import compilation_cache
from acnn_jax import models
# pylint: enable=g-import-not-at-top

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
# The tiny network of the model tests, on TINY_INPUT x TINY_INPUT images.
TINY = dict(num_stacks=3, features=16, num_joints=16, hourglass_depth=2,
            attention_features=8)
TINY_INPUT = 64
# Tests that use `trained_workdir` run on one pytest-xdist worker
# (`--dist loadgroup`), so the three phases are trained once per run.
TRAINED = pytest.mark.xdist_group("trained_workdir")
# How long a test waits for a process it started (a training run, a command
# line). It only tells a hang from a slow run: on 2 shared cores a tiny
# training process takes from half a minute to several, so the limit is far
# above any run seen, and a hang still fails the test instead of CI.
PROCESS_TIMEOUT = 1200


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: trains, starts a process that loads JAX or "
      "TensorFlow, runs the notebook or uses the full-size network; only in "
      "`./launch.sh test --all`.")


@functools.lru_cache(maxsize=None)
def _tiny_variables():
  """The variables of `models.ACNN(**TINY)`, initialised once per process.

  Eagerly, unlike `models.init_variables` (tested in test_models.py): eager
  init skips compiling the whole initialisation, and leaves the eager
  kernels that the tests' own `apply` calls reuse.
  """
  images = jax.numpy.zeros((1, TINY_INPUT, TINY_INPUT, 3))
  return models.ACNN(**TINY).init(jax.random.PRNGKey(0), images)


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_of_the_run(tmp_path_factory):
  """One persistent compilation cache for the run's workers and the
  commands they start: the same tiny programs compile once per run, not
  once per test. In the run's temporary folder, never the user's cache."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # The run's folder, shared by its workers.
  folder = str(root / "xla_cache")
  os.environ[compilation_cache.ENVIRONMENT_VARIABLE] = folder
  compilation_cache.enable(folder)
  return folder


def one_device_environment() -> dict:
  """os.environ for a child process that trains: this run's compiler
  settings and compilation cache, but one CPU device instead of two."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = " ".join(
      f for f in env.get("XLA_FLAGS", "").split()
      if "device_count" not in f) + " --xla_force_host_platform_device_count=1"
  return env


def _subset(tree, shapes):
  """The entries of `tree` that `shapes` (a tree of ShapeDtypeStruct) has."""
  if isinstance(shapes, dict):
    return {key: _subset(tree[key], value) for key, value in shapes.items()}
  assert tree.shape == shapes.shape, (tree.shape, shapes.shape)
  return tree


@functools.lru_cache(maxsize=None)
def tiny_model(**fields):
  """A tiny ACNN (TINY with `fields` replaced) and its variables.

  Variables depend only on the module paths, so a network with fewer stacks
  or without attention heads, or another mask mode, combination or dtype,
  takes the matching part of TINY's variables (flax derives each module's
  initialisation from its path, so they equal its own initialisation).
  """
  model = models.ACNN(**{**TINY, **fields})
  return model, _subset(_tiny_variables(),
                        models.variable_shapes(model, TINY_INPUT))


@pytest.fixture(scope="session")
def shared_mpii():
  """The real MPII sample files in ../shared/mpii, or a skip with the reason."""
  path = SHARED / "mpii"
  if not path.is_dir():
    pytest.skip(f"{path} is absent: the real-MPII checks need ../shared/mpii "
                "beside the checkout.")
  return path


@pytest.fixture(scope="session")
def tiny_mpii(tmp_path_factory):
  """A prepared `mpii` TFDS builder over 10 synthetic MPII-format images."""
  # pylint: disable=g-import-not-at-top
  from input_pipeline import mpii_builder
  from input_pipeline import synthetic
  # pylint: enable=g-import-not-at-top
  root = tmp_path_factory.mktemp("tiny_mpii")
  synthetic.generate(str(root / "raw"), 10, seed=0, valid_fraction=0.3)
  return mpii_builder.build(str(root / "raw"), str(root / "tfds"))


def random_heads(variables, seed):
  """`variables` as a network no initialisation gives, one per `seed`.

  Initialised heads have a zero logit kernel, so every mask is sigmoid(4)
  everywhere and a transposed, mirrored or swapped mask goes unseen. Here the
  heads' logit kernels and biases are drawn at random, so masks vary over
  the image and between stages, and every other parameter moves by 5% of its
  spread, so that two seeds are two networks (phases B and C of a workdir).

  Returns:
    A tree of numpy arrays shaped like `variables`.
  """
  rng = np.random.default_rng(seed)

  def move(path, value):
    names = [getattr(key, "key", "") for key in path]
    value = np.asarray(value)
    if names[0] != "params":
      return value
    if "logits" in names:
      spread = 1.0 if names[-1] == "kernel" else 0.5
      return rng.normal(0.0, spread, value.shape).astype(value.dtype)
    noise = 0.05 * np.std(value) * rng.normal(size=value.shape)
    return (value + noise).astype(value.dtype)

  return jax.tree_util.tree_map_with_path(move, variables)


def saved_state(workdir, phase, best=False):
  """(state, step) of a phase's newest checkpoint (of best/ with `best`)."""
  from acnn_jax import checkpoints  # pylint: disable=g-import-not-at-top
  manager_dir, step = checkpoints.resolve(os.path.join(
      checkpoints.phase_dir(workdir, phase), "best" if best else "checkpoints"))
  return checkpoints.restore_raw(manager_dir, step), step


def tiny_config(phase_name, **overrides):
  """configs/tiny.py for `phase_name`, with some fields replaced."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config(phase_name)
  config.update(overrides)
  return config


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
  """One workdir trained through phases A, B and C (2 steps each) on 2 fake
  devices, and the three final PCKh tables. Mark its users with TRAINED.

  Trained once per test run: `--dist loadgroup` sends TRAINED tests to one
  pytest-xdist worker, and should they land on several (another `--dist`),
  the workers share the workdir through a lock file instead of each
  training it.
  """
  # pylint: disable=g-import-not-at-top
  from acnn_jax import train
  # pylint: enable=g-import-not-at-top
  assert jax.local_device_count() == 2, "conftest sets 2 fake CPU devices"
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # The run's folder, shared by its workers.
  path, done = root / "trained_workdir", root / "trained_workdir.json"
  with open(root / "trained_workdir.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      tables = {p: train.train_and_evaluate(tiny_config(p), str(path))
                for p in "abc"}
      done.write_text(json.dumps(tables))
  return str(path), json.loads(done.read_text())


@pytest.fixture(scope="session")
def valid_annolist(shared_mpii):
  """The real `valid_annolist.mat` and its 2958 people as parsed records."""
  # pylint: disable=g-import-not-at-top
  import scipy.io
  from input_pipeline import mpii_official
  # pylint: enable=g-import-not-at-top
  mat = scipy.io.loadmat(str(shared_mpii / "valid_annolist.mat"))
  return mat, mpii_official.parse_annolist(mat["annolist"])


@contextlib.contextmanager
def counting_programs():
  """Counts JAX's traces and XLA compilations (cache loads included) inside
  the block."""
  events = ("/jax/core/compile/jaxpr_trace_duration",
            "/jax/core/compile/backend_compile_duration")
  count = [0]

  def listener(event, duration, **kwargs):
    del duration, kwargs
    count[0] += event in events
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield count
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


@dataclasses.dataclass(frozen=True)
class StandInNetwork:
  """A one-stage network without masks whose heatmaps follow the crop's
  pixels (`variables['w']` times the first channel): enough to run the
  evaluation path, no training. Equal by its fields and `clone`d anew, as a
  flax module is."""
  num_stacks: int = 1
  attention: bool = False
  num_joints: int = 16
  bn_axis_name: Optional[str] = "batch"

  def clone(self, **fields):
    return dataclasses.replace(self, **fields)

  def apply(self, variables, images, train=False, masks_to_one=False):
    del train, masks_to_one
    side = images.shape[1] // 4
    heatmaps = variables["w"] * images[:, ::4, ::4, :1] * jnp.ones(
        (len(images), side, side, self.num_joints))
    return models.ACNNOutput(heatmaps=heatmaps[None],
                             predictions=heatmaps[None],
                             masks=jnp.ones((1,) + heatmaps.shape[:-1] + (1,)))


@pytest.fixture
def run_command(monkeypatch, capsys):
  """Runs a command line in this process, through `cli.run` as `python -m`
  does: run_command(name, main, define_flags, args) -> (exit status, stdout,
  stderr); a bug's exception propagates.

  The command's flags live for the run only (flagsaver deletes the flags
  defined inside it), so commands whose flags share names (--workdir) run
  one after another in one process.
  """
  def run(name, main, define_flags, args):
    monkeypatch.setattr(sys, "argv", [name, *args])
    with flagsaver.flagsaver():
      try:
        cli.run(main, define_flags)
      except SystemExit as done:
        code = done.code or 0
      finally:
        flags.FLAGS.unparse_flags()
    out = capsys.readouterr()
    return code, out.out, out.err
  return run
