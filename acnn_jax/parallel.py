"""Data parallelism over all devices: `jax.pmap`'s program, its one-device
twin, and the device axis of the batches they take.

Steps are written once, as per-device functions with an `axis_name` for their
collectives (`lax.pmean` of gradients, metrics and BatchNorm statistics).
`data_parallel` maps them over the devices: each process passes the batches
of its own (local) devices, and the collectives span the devices of every
process (`acnn_jax.distributed`). In one process it builds what `jax.pmap`
builds, `jax.jit` of `jax.shard_map` over a mesh of the devices, and calls
it directly: `jax.pmap` redoes per call, in Python, work that grows with
the number of leaves (flattening, matching `in_axes`, a cache key of them),
for the ~2000 leaves of the training state, time a fast accelerator waits
for (benchmarks/dispatch.py measures it). Over several processes it is
`jax.pmap`, which also converts each process's arrays to global ones and
back. With a single device in all it jits the function itself instead, on
the same input layout (a leading device axis of 1, dropped inside), and
the step is built without collectives (`collective_axis` is None, `pmean`
the identity): XLA:CPU runs pmapped (and shard_mapped) programs far slower
than plain jitted ones, and `jax.vmap` over a one-element axis is slower
to trace (docs/design.md section 7; figures in docs/measurements.md).

Host batches (B, ...) become device batches (devices, B / devices, ...) with
`shard`; `prefetch` keeps a few of them on the devices ahead of the step.
"""

import collections
import itertools
from typing import Iterable, Iterator, Optional

import jax
from jax.sharding import PartitionSpec as P
import numpy as np

# The axis name of the batch's device axis in every mapped step.
AXIS = "batch"


def collective_axis(num_devices: Optional[int] = None) -> Optional[str]:
  """The axis name a step's collectives use: AXIS over several devices (of
  all processes), None (no collective at all) on one, where `data_parallel`
  maps nothing."""
  num_devices = num_devices or jax.device_count()
  return AXIS if num_devices > 1 else None


def pmean(tree, axis_name: Optional[str]):
  """`lax.pmean` over `axis_name`; the identity when it is None."""
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _leading(tree, axes, fn):
  """Applies `fn` to the leaves of the entries of `tree` mapped on axis 0."""
  if axes is None:
    return tree
  if axes == 0:
    return jax.tree_util.tree_map(fn, tree)
  return type(tree)(_leading(t, a, fn) for t, a in zip(tree, axes))


def _placements(axes, mesh: jax.sharding.Mesh, axis_name: str):
  """`jax.pmap`'s placement of each entry of `axes`: 0 (mapped: split
  over the devices) or None (the same on all), in a tuple like `axes`."""
  if axes is None or axes == 0:
    spec = P() if axes is None else P(axis_name)
    return jax.sharding.NamedSharding(mesh, spec)
  return tuple(_placements(a, mesh, axis_name) for a in axes)


def _shard_mapped(per_device, axis_name: str, in_axes, out_axes,
                  donate_argnums):
  """What `jax.pmap` compiles in one process, without its per-call Python:
  `jax.jit` of `jax.shard_map` over the local devices of `per_device`
  (which drops and restores the device axis, of one on each device),
  placed as pmap places it."""
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), (axis_name,))
  in_shardings = _placements(tuple(in_axes), mesh, axis_name)
  out_shardings = _placements(out_axes, mesh, axis_name)

  def specs(shardings):
    return jax.tree_util.tree_map(lambda s: s.spec, shardings)
  # check_vma=False, as pmap's own: the outputs the caller declares the
  # same on every device (out_axes None) are taken as such.
  mapped = jax.shard_map(per_device, mesh=mesh, in_specs=specs(in_shardings),
                         out_specs=specs(out_shardings), check_vma=False)
  return jax.jit(mapped, in_shardings=in_shardings,
                 out_shardings=out_shardings, donate_argnums=donate_argnums)


def data_parallel(fn, axis_name: str, in_axes, out_axes, donate_argnums=(),
                  num_devices: Optional[int] = None):
  """Maps `fn` over the devices (leading axis of the mapped inputs: this
  process's devices).

  Args:
    fn: a per-device function; over several devices its collectives use
      `axis_name`, on one it must use none (`collective_axis`, `pmean`).
    axis_name: the name its collectives use.
    in_axes: per argument, 0 (mapped: a leading device axis) or None
      (the same on every device, passed once).
    out_axes: 0 or None for the output, or a tuple of them for a tuple.
    donate_argnums: arguments whose buffers the outputs may reuse.
    num_devices: default: all devices of all processes; 1 jits `fn` on
      this process's first device.

  Returns:
    The mapped, compiled function (with `.lower`).
  """
  num_devices = num_devices or jax.device_count()
  if num_devices > 1 and jax.process_count() > 1:
    return jax.pmap(fn, axis_name=axis_name, in_axes=in_axes,
                    out_axes=out_axes, donate_argnums=donate_argnums)

  def per_device(*args):
    args = tuple(_leading(a, ax, lambda x: x[0])
                 for a, ax in zip(args, in_axes))
    return _leading(fn(*args), out_axes, lambda x: x[None])
  if num_devices > 1:
    return _shard_mapped(per_device, axis_name, in_axes, out_axes,
                         donate_argnums)
  return jax.jit(per_device, donate_argnums=donate_argnums)


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


def _mesh() -> jax.sharding.Mesh:
  return jax.sharding.Mesh(np.array(jax.local_devices()), (AXIS,))


def batch_sharding() -> jax.sharding.Sharding:
  """Where a sharded batch lives: its device axis over the local devices."""
  if jax.device_count() == 1:
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.sharding.NamedSharding(_mesh(), jax.sharding.PartitionSpec(AXIS))


def state_sharding() -> jax.sharding.Sharding:
  """Where a `data_parallel` step returns its unmapped (out_axes None)
  outputs: the same on every local device."""
  if jax.device_count() == 1:
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.sharding.NamedSharding(_mesh(), jax.sharding.PartitionSpec())


def put_state(tree):
  """`tree` placed as a `data_parallel` step returns its state.

  A step compiles once per placement of its inputs: a state fresh from
  init or a checkpoint, placed otherwise, costs a second full compile at
  the second step.
  """
  return jax.device_put(tree, state_sharding())


def prefetch(batches: Iterable, size: int = 2) -> Iterator:
  """Shards numpy host batches (`shard`) and keeps `size` of them on the
  devices ahead of the step, all placed alike (`batch_sharding`)."""
  sharding = batch_sharding()
  batches = iter(batches)
  queue = collections.deque()

  def enqueue(n):
    for batch in itertools.islice(batches, n):
      queue.append(jax.device_put(shard(batch), sharding))

  enqueue(size)
  while queue:
    yield queue.popleft()
    enqueue(1)
