"""Tests of data parallelism: the device axis of batches."""

import numpy as np
import pytest

from acnn_jax import parallel


def test_shard_reshapes_for_devices_and_rejects_uneven_batches():
  batch = {"image": np.zeros((6, 8, 8, 3)), "w": np.zeros((6, 16))}
  sharded = parallel.shard(batch, num_devices=2)
  assert sharded["image"].shape == (2, 3, 8, 8, 3)
  assert sharded["w"].shape == (2, 3, 16)
  with pytest.raises(ValueError, match="multiple of the device count"):
    parallel.shard(batch, num_devices=4)
