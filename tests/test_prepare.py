"""Tests of where a run's data comes from: a user's folder is never written."""

import hashlib
import os

import pytest

from acnn_jax import errors
from input_pipeline import prepare
from input_pipeline import synthetic
from conftest import tiny_config


def _snapshot(directory):
  """{relative path: sha1} of every file under `directory`."""
  found = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        found[os.path.relpath(path, directory)] = hashlib.sha1(
            f.read()).hexdigest()
  return found


def _user_folder(tmp_path):
  """A user's (incomplete) MPII folder: an edited image, no .mat yet."""
  folder = tmp_path / "mpii"
  (folder / "images").mkdir(parents=True)
  (folder / "images" / "000000001.jpg").write_bytes(b"my edited image")
  return folder


@pytest.mark.parametrize("make", [_user_folder,
                                  lambda p: p / "empty"])
def test_a_synthetic_config_never_writes_into_a_users_folder(tmp_path, make):
  folder = make(tmp_path)
  folder.mkdir(exist_ok=True)
  before = _snapshot(folder)
  config = tiny_config("a", manual_dir=str(folder))
  with pytest.raises(errors.ConfigError,
                     match=r"config\.synthetic_images=.*synthetic_images=0"):
    prepare.prepare_builder(config, str(tmp_path / "work"))
  assert _snapshot(folder) == before


def test_the_synthetic_writer_refuses_a_folder_with_other_files(tmp_path):
  folder = _user_folder(tmp_path)
  before = _snapshot(folder)
  with pytest.raises(errors.InputError, match="not a synthetic data set"):
    synthetic.generate(str(folder), 2, seed=0)
  assert _snapshot(folder) == before


def test_a_new_manual_dir_becomes_a_synthetic_folder_once(tmp_path):
  folder = tmp_path / "synthetic"
  config = tiny_config("a", manual_dir=str(folder), synthetic_images=4,
                       data_dir=str(tmp_path / "tfds"))
  builder = prepare.prepare_builder(config, str(tmp_path / "work"))
  assert builder.info.splits["train"].num_examples > 0
  marker = synthetic.read_marker(str(folder))
  assert marker["complete"] and marker["settings"]["num_images"] == 4
  written = _snapshot(folder)
  prepare.prepare_builder(config, str(tmp_path / "work2"))  # Reused as is.
  assert _snapshot(folder) == written
  with pytest.raises(errors.ConfigError, match="synthetic_images=4"):
    config.synthetic_images = 5
    prepare.prepare_builder(config, str(tmp_path / "work3"))
  assert _snapshot(folder) == written
