"""Tests of config validation, derived values and saved configs."""

import importlib

import ml_collections
import pytest

from acnn_jax import configuration
from acnn_jax import errors
from configs import default
from conftest import tiny_config

CONFIG_FILES = ("default", "phase_a", "phase_b", "phase_c", "demo", "tiny")


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_shipped_config_is_valid(name):
  module = importlib.import_module(f"configs.{name}")
  phases = "abc" if name in ("demo", "tiny") else (None,)
  for phase in phases:
    config = module.get_config() if phase is None else module.get_config(phase)
    configuration.validate(config)
    # Every field the code reads is declared: the variants add none.
    assert set(config) == set(default.get_config()), name


@pytest.mark.parametrize("overrides,match", [
    (dict(rotation_prob=1.5), "config.rotation_prob"),
    (dict(flip_prob=-0.1), "config.flip_prob"),
    (dict(color_low=1.5), "color_low"),
    (dict(num_pictures=-1), "config.num_pictures"),
    (dict(attention_sparsity=-1e-4), "config.attention_sparsity"),
    (dict(eval_batch_size=0), "config.eval_batch_size"),
    (dict(optimizer="sgd"), "config.optimizer"),
    (dict(features=10), "config.features must be divisible by 4"),
    (dict(combine="sum"), "config.combine"),
    (dict(shuffle_buffer=0), "config.shuffle_buffer"),
])
def test_bad_values_name_their_field(overrides, match):
  with pytest.raises(errors.ConfigError, match=match):
    configuration.validate(tiny_config("a", **overrides))


def test_batch_must_split_over_every_device_of_every_host(monkeypatch):
  # A global batch that splits over the devices splits over the hosts too.
  monkeypatch.setattr(configuration.jax, "device_count", lambda: 4)
  with pytest.raises(errors.ConfigError, match="batch_size=6"):
    configuration.validate(tiny_config("a", batch_size=6))
  configuration.validate(tiny_config("a", batch_size=8))


def test_config_errors_are_usage_errors():
  error = errors.ConfigError("config.x")
  assert isinstance(error, ValueError) and error.exit_code == 2


def test_eval_batch_size_defaults_to_batch_size_and_fills_the_devices(
    monkeypatch):
  monkeypatch.setattr(configuration.jax, "device_count", lambda: 4)
  assert configuration.eval_batch_size(tiny_config("a", batch_size=8)) == 8
  assert configuration.eval_batch_size(tiny_config(
      "a", batch_size=8, eval_batch_size=5)) == 8
  assert configuration.eval_batch_size(tiny_config(
      "a", eval_batch_size=12)) == 12


def test_complete_fills_new_fields_and_drops_removed_ones():
  saved = tiny_config("b").to_dict()
  del saved["attention"], saved["synthetic_seed"]  # Added since.
  saved["dataset"] = "mpii"  # Removed since.
  saved["lr_boundaries"] = [3, 5]  # JSON has no tuples.
  config = configuration.complete(ml_collections.ConfigDict(saved))
  assert set(config) == set(default.get_config())
  assert config.attention is True and config.synthetic_seed == 0
  assert config.phase == "b" and config.features == 16
  assert config.lr_boundaries == (3, 5)
  configuration.validate(config)
