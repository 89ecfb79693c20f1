"""Tests of `./launch.sh demo` (`acnn_jax.demo`): what it trains, with which
seed, and what it reports. Training itself is replaced by a recorder; the
phases' training is tested in test_train.py."""

from acnn_jax import demo
from acnn_jax import pckh
from acnn_jax import train
from configs import demo as demo_config


def _recorder(monkeypatch):
  """Replaces train.train_and_evaluate; returns the (config, workdir) list."""
  calls = []

  def fake(config, workdir):
    calls.append((config, workdir))
    table = {key: 0.0 for key in pckh.TABLE_KEYS}
    return {**table, "Mean": 50.0 + len(calls), "num_people": 7}
  monkeypatch.setattr(train, "train_and_evaluate", fake)
  return calls


def test_the_seed_reaches_every_phase_and_nothing_else_changes(
    monkeypatch, tmp_path, capsys):
  calls = _recorder(monkeypatch)
  tables = demo.run(str(tmp_path), "abc", seed=3)
  assert [c.phase for c, _ in calls] == ["a", "b", "c"]
  assert all(w == str(tmp_path) for _, w in calls)
  for config, _ in calls:
    assert config.seed == 3
    default = demo_config.get_config(config.phase)
    # The seed is the only change: same synthetic images, same recipe.
    assert config.synthetic_seed == default.synthetic_seed
    config.seed = default.seed
    assert config.to_dict() == default.to_dict()
  assert [t["Mean"] for t in tables.values()] == [51.0, 52.0, 53.0]
  out = capsys.readouterr().out
  assert "phase A: Mean 51.00" in out and "phase C: Mean 53.00" in out


def test_the_default_seed_is_the_configs(monkeypatch, tmp_path):
  calls = _recorder(monkeypatch)
  demo.run(str(tmp_path), "b")
  assert [(c.phase, c.seed) for c, _ in calls] == [
      ("b", demo_config.get_config("b").seed)]


def test_the_demo_never_mirrors_its_colour_coded_people():
  """The synthetic people's sides are coloured: a mirrored crop (labels
  swapped) contradicts the colour and collapses left onto right (configs/
  demo.py says more). Every phase trains and evaluates unmirrored, on at
  least 500 validation people's worth of images."""
  for phase in "abc":
    config = demo_config.get_config(phase)
    assert config.flip_prob == 0.0 and not config.flip_test, phase
    assert config.synthetic_images >= 2000, phase
