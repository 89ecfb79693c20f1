"""Tests of the tf.data pipeline: batches of the `mpii` data set."""

import numpy as np

from acnn_jax import training_batch
from configs import default
from input_pipeline import pipeline


def _config(**overrides):
  config = default.get_config()
  config.update(dict(input_size=64, batch_size=4, shuffle_buffer=32))
  config.update(overrides)
  return config


def test_train_batches_shapes_and_determinism(tiny_mpii):
  def first_batches(seed):
    ds = pipeline.create_dataset(_config(seed=seed), "train", tiny_mpii)
    return [b for _, b in zip(range(2), ds.as_numpy_iterator())]

  a, b, c = first_batches(0), first_batches(0), first_batches(1)
  batch = a[0]
  # Compact: the device applies the colour and draws the heatmaps.
  assert set(batch) == {"image", "color", "target_joints", "target_weight"}
  assert batch["image"].shape == (4, 64, 64, 3)
  assert batch["image"].dtype == np.uint8
  assert batch["color"].shape == (4, 3)
  assert batch["target_joints"].shape == (4, 16, 2)
  assert batch["target_weight"].shape == (4, 16)
  expanded = training_batch.expand(batch, 1.0)
  assert expanded["heatmaps"].shape == (4, 16, 16, 16)
  assert 0.0 <= expanded["image"].min() and expanded["image"].max() <= 1.0
  assert float(expanded["heatmaps"].max()) > 0.5  # Joints in the crops.
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert not np.array_equal(a[0]["image"], c[0]["image"])


def test_eval_batches_cover_every_person_once(tiny_mpii):
  num = tiny_mpii.info.splits["validation"].num_examples
  assert num > 3
  config = _config(batch_size=3)
  ds = pipeline.create_dataset(config, "validation", tiny_mpii)
  batches = list(ds.as_numpy_iterator())
  assert all(b["image"].shape[0] == 3 for b in batches)
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.sum() == num
  assert len(mask) == 3 * int(np.ceil(num / 3))
  ids = np.concatenate([np.stack([b["index"], b["person"]], -1)
                        for b in batches])[mask > 0]
  assert len({tuple(i) for i in ids}) == num
  again = list((
      pipeline.create_dataset(config, "validation", tiny_mpii)).as_numpy_iterator())
  for x, y in zip(batches, again):
    np.testing.assert_array_equal(x["image"], y["image"])
  for key in ("center", "scale", "joints", "annotated", "head_size"):
    assert key in batches[0]
  assert np.all(np.concatenate([b["head_size"] for b in batches])[mask > 0] > 0)


def test_train_stream_resumes_exactly_at_any_step(tiny_mpii):
  """Resuming at step k yields the batches an uninterrupted run sees from k,
  across epoch boundaries: the stream is a function of (seed, step)."""
  num_train = tiny_mpii.info.splits["train"].num_examples
  config = _config(batch_size=3, shuffle_buffer=4)
  steps = 2 * num_train // 3 + 2  # Over two epochs.

  def batches(start, count):
    ds = pipeline.create_dataset(config, "train", tiny_mpii, start_step=start)
    return [b for _, b in zip(range(count), ds.as_numpy_iterator())]

  whole = batches(0, steps)
  for start in (1, num_train // 3, steps - 2):
    for x, y in zip(whole[start:], batches(start, steps - start)):
      for k in x:
        np.testing.assert_array_equal(x[k], y[k], err_msg=f"{start}, {k}")
