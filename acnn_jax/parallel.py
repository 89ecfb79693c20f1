"""Data parallelism over the local devices: `jax.pmap`, its one-device twin,
and the device axis of the batches they take.

Steps are written once, as per-device functions with an `axis_name` for their
collectives (`lax.pmean` of gradients, metrics and BatchNorm statistics).
`data_parallel` maps them over the local devices with `jax.pmap`. With a
single local device it uses `jax.jit(jax.vmap(..., axis_size=1))` instead: the
same program (a collective over a one-element axis is the identity) and the
same input layout (a leading device axis of 1), but XLA:CPU runs pmapped (and
shard_mapped) programs far slower than plain jitted ones: a train step of a
small 2-stack ACNN took 2.36 s under pmap and 0.09 s under jit(vmap) on a
2-core CPU (measured with this project's code, same inputs).

Host batches (B, ...) become device batches (devices, B / devices, ...) with
`shard`; `prefetch` keeps a few of them on the devices ahead of the step.
"""

from typing import Iterable, Iterator, Optional

import flax.jax_utils
import jax
import numpy as np

# The axis name of the batch's device axis in every mapped step.
AXIS = "batch"


def data_parallel(fn, axis_name: str, in_axes, out_axes):
  """Maps `fn` over the local devices (leading axis of the mapped inputs).

  Args:
    fn: a per-device function using `axis_name` collectives.
    axis_name: the name its collectives use.
    in_axes, out_axes: as for `jax.pmap` (None: replicated / identical on
      every device, passed and returned once).

  Returns:
    The mapped, compiled function.
  """
  if jax.local_device_count() > 1:
    return jax.pmap(fn, axis_name=axis_name, in_axes=in_axes,
                    out_axes=out_axes)
  return jax.jit(jax.vmap(fn, axis_name=axis_name, in_axes=in_axes,
                          out_axes=out_axes, axis_size=1))


def shard(batch, num_devices: Optional[int] = None):
  """Reshapes every array of a host batch from (B, ...) to (devices, B /
  devices, ...), the layout `data_parallel` functions take.

  Raises:
    ValueError: B is not a multiple of the device count.
  """
  num_devices = num_devices or jax.local_device_count()

  def reshape(x):
    x = np.asarray(x)
    if x.shape[0] % num_devices:
      raise ValueError(f"A batch of {x.shape[0]} cannot be split over "
                       f"{num_devices} devices: make the batch size a "
                       "multiple of the device count.")
    return x.reshape((num_devices, -1) + x.shape[1:])
  return jax.tree_util.tree_map(reshape, batch)


def prefetch(batches: Iterable, size: int = 2) -> Iterator:
  """Shards numpy host batches and keeps `size` of them on the devices."""
  return flax.jax_utils.prefetch_to_device(map(shard, batches), size)
