"""Tests of the history plots: the cumulative x-axis, sizes and contents."""

import numpy as np

from acnn_jax import plots


def _history():
  """Two phases of two evaluations each; phase B counts from 0 again."""
  history = []
  for phase, means in (("a", (40.0, 60.0)), ("b", (70.0, 75.0))):
    for step, mean in zip((8, 16), means):
      record = {"phase": phase, "step": step, "Mean": mean,
                "Mean@0.1": mean / 2}
      if phase == "b":
        record["mask/stage_1/background"] = 0.9 - step / 40
        record["mask/stage_1/kept"] = 1.0 - step / 40
        record["mask/stage_2/target"] = 0.95
      history.append(record)
  return history


def test_cumulative_steps_offsets_each_phase_by_the_ones_before():
  np.testing.assert_array_equal(plots.cumulative_steps(_history()),
                                [8, 16, 24, 32])
  three = [{"phase": p, "step": s}
           for p, s in (("a", 5), ("a", 10), ("b", 4), ("c", 3), ("c", 6))]
  np.testing.assert_array_equal(plots.cumulative_steps(three),
                                [5, 10, 14, 17, 20])
  assert plots.cumulative_steps([]).shape == (0,)


def test_pckh_plot_is_an_rgb_image_that_follows_the_data():
  history = _history()
  image = plots.pckh_plot(history)
  assert image.shape == (360, 640, 3) and image.dtype == np.uint8
  assert image.min() < 50 and image.max() == 255  # lines and text on white
  history[1]["Mean"] = 20.0
  assert not np.array_equal(plots.pckh_plot(history), image)
  only_mean = [{"phase": "a", "step": 1, "Mean": 50.0}]
  assert plots.pckh_plot(only_mean).shape == (360, 640, 3)
  assert plots.pckh_plot([{"phase": "a", "step": 1}]) is None


def test_mask_plot_draws_what_is_there():
  history = _history()  # phase A has no mask keys, stage 2 only `target`
  image = plots.mask_plot(history)
  assert image.shape == (360, 640, 3) and image.dtype == np.uint8
  history[3]["mask/stage_1/background"] = 0.05
  assert not np.array_equal(plots.mask_plot(history), image)
  # Real MPII: no person regions, only the kept shares; more stages, taller.
  real = [{"phase": "b", "step": s, f"mask/stage_{i}/kept": 0.5,
           f"mask/stage_{i}/joints_kept": 0.9}
          for s in (10, 20) for i in range(1, 5)]
  taller = plots.mask_plot(real)
  assert taller.shape[1] == 640 and taller.shape[0] > 360


def test_mask_plot_without_mask_keys_is_none():
  history = [{"phase": "a", "step": 8, "Mean": 40.0}]
  assert plots.mask_plot(history) is None
  assert plots.mask_plot([]) is None
