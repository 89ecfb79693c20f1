"""Tests of benchmarks/attention_ablation.py's budget split and its table
(the runs themselves are `train.train_and_evaluate`, tested elsewhere)."""

import importlib.util
import pathlib

import pytest

from configs import demo as demo_config

_PATH = (pathlib.Path(__file__).resolve().parents[1] / "benchmarks" /
         "attention_ablation.py")
_SPEC = importlib.util.spec_from_file_location("attention_ablation", _PATH)
ablation = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ablation)


def test_every_variant_spends_the_demos_budget_and_abc_splits_it_as_the_demo():
  steps = {p: s for p, (_, s) in demo_config.PHASES.items()}
  assert ablation.DEMO_STEPS == sum(steps.values())
  for name, shares in ablation.VARIANTS.items():
    assert sum(share for _, share in shares) == pytest.approx(1.0), name
  assert [(p, round(share * ablation.DEMO_STEPS))
          for p, share in ablation.VARIANTS["abc"]] == list(steps.items())
  assert [p for p, _ in ablation.VARIANTS["ac"]] == ["a", "c"]
  assert ablation.VARIANTS["plain"] == (("a", 1.0),)


def _results(mean, at_01, target=None):
  table = {"Mean": mean, "Mean@0.1": at_01}
  table.update({column: mean for column in ("Head", "Shoulder", "Elbow",
                                            "Wrist", "Hip", "Knee", "Ankle")})
  if target is not None:
    table.update({"mask/stage_1/target": target,
                  "mask/stage_1/others": 0.2, "mask/stage_1/background": 0.05,
                  "mask/stage_1/kept": 0.1, "mask/stage_1/joints_kept": 0.97})
  return table


def test_the_table_gives_mean_min_and_max_over_the_seeds():
  runs = {"plain": [(_results(60.0, 20.0), 100.0),
                    (_results(62.0, 23.0), 110.0),
                    (_results(64.5, 21.0), 120.0)],
          "abc": [(_results(61.0, 22.0, 0.7), 200.0),
                  (_results(63.0, 24.0, 0.9), 220.0),
                  (_results(62.0, 26.0, 0.8), 240.0)]}
  header, rows = ablation.summary_rows(runs)
  plain, abc = (dict(zip(header, row)) for row in rows)
  assert plain["Mean"] == "62.17 [60.00, 64.50]"
  assert plain["Mean@0.1"] == "21.33 [20.00, 23.00]"
  assert plain["Elbow"] == "62.17"
  assert plain["M1 target"] == "-" and plain["s/run"] == "110"
  assert abc["Mean"] == "62.00 [61.00, 63.00]"
  assert abc["M1 target"] == "0.800 [0.700, 0.900]"
  assert abc["M1 joints_kept"] == "0.970 [0.970, 0.970]"
