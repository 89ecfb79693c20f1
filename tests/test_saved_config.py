"""Tests of a phase's config.json: loading, resuming, finished phases."""

import json

from absl import logging
import pytest

from acnn_jax import errors
from acnn_jax import saved_config
from conftest import tiny_config


def _read(directory):
  return json.loads((directory / saved_config.CONFIG_FILE).read_text())


def test_configs_of_earlier_versions_still_load(tmp_path):
  with pytest.raises(errors.MissingError, match="config.json is missing"):
    saved_config.load_config(str(tmp_path))
  saved = tiny_config("c").to_dict()
  del saved["attention"]
  saved["dataset"] = "mpii"
  (tmp_path / saved_config.CONFIG_FILE).write_text(json.dumps(saved))
  config = saved_config.load_config(str(tmp_path))
  assert config.attention is True and "dataset" not in config
  assert config.phase == "c" and config.num_stacks == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_a_damaged_config_json_is_named(tmp_path, content):
  (tmp_path / saved_config.CONFIG_FILE).write_text(content)
  with pytest.raises(errors.InputError, match="config.json"):
    saved_config.load_config(str(tmp_path))


def test_resuming_with_another_network_names_the_fields(tmp_path):
  saved_config.save_config(tiny_config("a"), str(tmp_path))
  saved_config.check_resumable(tiny_config("a", learning_rate=1e-4),
                               str(tmp_path))
  with pytest.raises(errors.ConfigError,
                     match=r"features 16 -> 32.*--config\.features=16"):
    saved_config.check_resumable(tiny_config("a", features=32),
                                 str(tmp_path))


def test_a_finished_phase_keeps_the_config_that_trained_it(tmp_path, caplog):
  original = tiny_config("a")
  saved_config.save_config(original, str(tmp_path))
  before = _read(tmp_path)
  changed = tiny_config("a", learning_rate=1e-4, flip_test=False,
                        manual_dir="/elsewhere")
  with caplog.at_level(logging.WARNING):
    used = saved_config.settle_config(changed, str(tmp_path), step=4,
                                      finished=True)
  assert _read(tmp_path) == before
  assert used.learning_rate == original.learning_rate
  assert used.flip_test == original.flip_test
  assert used.manual_dir == "/elsewhere"  # Where the data is now.
  assert "ignored: flip_test True -> False, learning_rate" in caplog.text


def test_a_resumed_phase_goes_on_with_changed_fields(tmp_path, caplog):
  saved_config.save_config(tiny_config("a"), str(tmp_path))
  before = _read(tmp_path)
  changed = tiny_config("a", learning_rate=1e-4)
  with caplog.at_level(logging.WARNING):
    used = saved_config.settle_config(changed, str(tmp_path), step=2,
                                      finished=False)
  assert used.learning_rate == 1e-4
  assert _read(tmp_path)["learning_rate"] == 1e-4
  kept = tmp_path / "config_until_step2.json"
  assert json.loads(kept.read_text()) == before
  assert "changed fields: learning_rate" in caplog.text
