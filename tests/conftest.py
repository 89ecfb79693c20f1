"""Test set-up: fake CPU devices and a quiet TensorFlow, before anything imports jax."""

import os

# Two fake CPU devices make pmap code testable on any machine. Two, not more:
# on 2-core machines 4 or 8 fake devices were seen to deadlock in collectives.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") +
    " --xla_force_host_platform_device_count=2").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # pylint: disable=g-import-not-at-top

import pytest  # pylint: disable=g-import-not-at-top

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


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
