"""Test set-up: fake CPU devices and a quiet TensorFlow, before anything imports
jax; shared fixtures; the `slow` marker.

`./launch.sh test` runs everything; `./launch.sh test -m "not slow"` leaves out
the tests marked slow (training runs, subprocesses that load JAX and
TensorFlow, the full-size network, the jitted initialisation).
"""

import os

# Two fake CPU devices make pmap code testable on any machine. Two, not more:
# on 2-core machines 4 or 8 fake devices were seen to deadlock in collectives.
# Tests run a few steps of tiny networks, where compiling is most of the time:
# XLA's backend at -O0 compiles a tiny train step in 8 s instead of 12 (and
# runs it 1.7x slower, which two steps do not notice).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") +
    " --xla_force_host_platform_device_count=2"
    " --xla_backend_optimization_level=0"
    " --xla_llvm_disable_expensive_passes=true").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# pylint: disable=g-import-not-at-top
import fcntl
import functools
import json
import pathlib

import jax
import pytest

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


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: one of the longest tests (training, subprocesses, the "
      "full-size network); deselect with -m 'not slow' for a quick run.")


@functools.lru_cache(maxsize=None)
def _tiny_variables():
  """The variables of `models.ACNN(**TINY)`, initialised once per process.

  Eagerly, unlike `models.init_variables` (tested in test_models.py): on a
  2-core CPU jitted init compiles for 25 s, eager init takes 17 s and leaves
  the eager kernels that the tests' own `apply` calls reuse.
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
  """os.environ for a child process that trains: this run's XLA flags (-O0)
  and compilation cache, but one CPU device instead of the two fake ones."""
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
