"""Tests of data parallelism: the device axis of batches."""

import jax
import jax.numpy as jnp
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


def test_data_parallel_computes_and_places_what_pmap_does():
  """Over the 2 devices of one process (jit of shard_map, not jax.pmap):
  each device gets its share without the device axis and the unmapped
  argument whole, collectives span the devices, and the outputs come back
  as jax.pmap returns them, the unmapped one placed as `put_state` places
  a state; numpy arguments are placed too."""
  assert jax.device_count() == 2

  def fn(state, batch):
    total = jax.lax.psum(jnp.sum(batch), parallel.AXIS)
    return state + total, batch * 2 + state

  mapped = parallel.data_parallel(fn, parallel.AXIS, in_axes=(None, 0),
                                  out_axes=(None, 0))
  batch = parallel.shard(np.arange(4, dtype=np.float32))
  expected = jax.pmap(fn, parallel.AXIS, in_axes=(None, 0),
                      out_axes=(None, 0))(np.float32(1), batch)
  placed = mapped(parallel.put_state(jnp.float32(1)),
                  jax.device_put(batch, parallel.batch_sharding()))
  for got in (placed, mapped(np.float32(1), batch)):
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
  np.testing.assert_array_equal(placed[1], [[1, 3], [5, 7]])
  assert float(placed[0]) == 7
  assert placed[0].sharding == parallel.state_sharding()
  assert placed[1].sharding == parallel.batch_sharding()
