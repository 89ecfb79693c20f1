"""Several processes, one training run: JAX's distributed runtime.

Multi-host training runs one process per host (per GPU node, per TPU VM
host); together they see every device of every host, `jax.pmap`'s
collectives average gradients and BatchNorm statistics over all of them, and
each process feeds its own devices a disjoint share of the data
(`input_pipeline.pipeline`).

`initialize` is the one place where the runtime starts, before anything else
touches JAX's devices. It starts it

* from the command's flags (`--coordinator_address`, `--num_processes`,
  `--process_id`), or the environment variables JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES and JAX_PROCESS_ID, e.g. for two GPU nodes;
* on the clusters `jax.distributed.initialize()` detects by itself (in JAX
  0.10: SLURM, Open MPI's mpirun, Cloud TPU pod slices on GCE or GKE, and
  Kubernetes jobs with the `kubernetes` package), when the cluster JAX finds
  runs several processes: JAX then chooses the coordinator, the process
  count and this process's index;
* not at all otherwise: one process, as on a laptop, a Colab runtime, a
  SLURM step of one task or a single-host TPU VM.

On CPU the processes talk over gloo (TCP), which is how the tests run two
real processes on one machine.
"""

import hashlib
import os
from typing import Callable, Optional, TypeVar

from absl import logging
import jax
# JAX's own cluster detection, the one `jax.distributed.initialize()` uses:
# it has no public API that says whether it finds a cluster.
from jax._src import clusters
from jax.experimental import multihost_utils
import numpy as np

from acnn_jax import errors

T = TypeVar("T")

# The variables of an explicit set-up (JAX reads only the first itself).
_ENVIRONMENT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
                "JAX_PROCESS_ID")


class DistributedError(errors.UserError):
  """The processes of a multi-host run cannot start or disagree."""


def _cluster() -> Optional[str]:
  """The name of the cluster `jax.distributed.initialize()` would set itself
  up on, when that cluster runs several processes; None otherwise.

  JAX's own choice (its first cluster environment that is present, opt-in
  ones left out), asked without starting anything: one process, such as a
  SLURM step of one task, needs no runtime.

  Raises:
    DistributedError: JAX finds a cluster but cannot count its processes.
  """
  # pylint: disable-next=protected-access
  for env in clusters.ClusterEnv._cluster_types:
    if env.opt_in_only_method or not env.is_env_present():
      continue
    name = env.name or env.__name__
    try:
      count = env.get_process_count()
    except Exception as error:  # pylint: disable=broad-except
      raise DistributedError(
          f"JAX detects a {name} cluster but cannot count its processes "
          f"({type(error).__name__}: {error}). Pass --coordinator_address, "
          "--num_processes and --process_id.") from error
    return name if count > 1 else None
  return None


def _int_variable(name: str) -> Optional[int]:
  """The integer in environment variable `name`, None when it is unset."""
  value = os.environ.get(name)
  if value is None:
    return None
  try:
    return int(value)
  except ValueError:
    raise DistributedError(f"${name}={value!r} is not an integer: unset it "
                           "or give the number.") from None


def initialize(coordinator_address: Optional[str] = None,
               num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> bool:
  """Starts JAX's distributed runtime when this run has several processes.

  Call it once, before any other JAX call that looks at devices.

  Args:
    coordinator_address: 'host:port' of process 0, reachable by every
      process (default: JAX_COORDINATOR_ADDRESS, or auto-detection).
    num_processes: how many processes the run has (JAX_NUM_PROCESSES).
    process_id: this process's index, 0 .. num_processes - 1
      (JAX_PROCESS_ID).

  Returns:
    True when the runtime was started (several processes), False for a
    single-process run.

  Raises:
    DistributedError: the arguments are incomplete or out of range, or the
      processes could not connect; the message says what to pass.
  """
  if jax.distributed.is_initialized():
    return True
  explicit = (coordinator_address is not None or num_processes is not None or
              process_id is not None or
              any(name in os.environ for name in _ENVIRONMENT))
  cluster = None if explicit else _cluster()
  if not explicit and cluster is None:
    return False
  if explicit:
    coordinator_address = (coordinator_address or
                           os.environ.get("JAX_COORDINATOR_ADDRESS"))
    if num_processes is None:
      num_processes = _int_variable("JAX_NUM_PROCESSES")
    if process_id is None:
      process_id = _int_variable("JAX_PROCESS_ID")
    missing = [name for name, value in (
        ("--coordinator_address", coordinator_address),
        ("--num_processes", num_processes), ("--process_id", process_id))
               if value is None]
    if missing:
      raise DistributedError(
          f"A multi-process run needs --coordinator_address, "
          f"--num_processes and --process_id together; {', '.join(missing)} "
          "missing (or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
          "JAX_PROCESS_ID). On a TPU pod or SLURM, pass none of them.")
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise DistributedError(
          f"--process_id={process_id} is not in 0..{num_processes - 1} "
          f"(--num_processes={num_processes}): give each process its own "
          "index, 0 for the one at --coordinator_address.")
  # XLA:CPU has no collectives across processes unless told which (the CPU
  # backend exists beside GPUs and TPUs too, where this changes nothing).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  logging.info("Starting JAX's distributed runtime (%s).",
               f"{cluster} cluster, detected by JAX" if cluster else
               f"process {process_id} of {num_processes}, coordinator "
               f"{coordinator_address}")
  try:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id)
  except (RuntimeError, ValueError) as error:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    raise DistributedError(
        f"JAX's distributed runtime did not start: {first}. Check that "
        f"every process runs with the same --coordinator_address "
        f"({coordinator_address or 'auto-detected'}) and --num_processes, "
        "distinct --process_id values, and that process 0 can be "
        "reached there.") from error
  return True


def is_primary() -> bool:
  """Whether this process writes the run's files (logs, pictures, JSON)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process gets here (nothing to do in one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def primary_first(name: str, fn: Callable[[bool], T]) -> T:
  """`fn(True)` on process 0, then, once it is done, `fn(False)` on the
  others: for work that writes shared files (process 0) and that the others
  then read.

  Args:
    name: names the barrier between the two (for JAX's logs).
    fn: takes whether it runs on process 0.

  Returns:
    What `fn` returned in this process.
  """
  if is_primary():
    result = fn(True)
  barrier(name)
  if not is_primary():
    result = fn(False)
  return result


def _fingerprint(text: str) -> np.ndarray:
  digest = hashlib.sha256(text.encode()).digest()[:8]
  return np.frombuffer(digest, np.int32).copy()


def check_agreement(config_json: str) -> None:
  """Fails when the processes of a run differ where they must agree.

  Every process must see the same number of local devices (the batch is
  split over them evenly) and train the same config; a process started with
  another flag would otherwise train something else, or hang in a
  collective.

  Args:
    config_json: this process's config, serialised the same way on every
      process.

  Raises:
    DistributedError: naming what differs.
  """
  if jax.process_count() == 1:
    return
  counts = multihost_utils.process_allgather(
      np.array([jax.local_device_count()], np.int32))
  counts = np.asarray(counts).reshape(-1)
  if len(set(counts.tolist())) > 1:
    raise DistributedError(
        f"The processes have different numbers of local devices "
        f"({counts.tolist()}, by process): give every process the same "
        "number of devices.")
  prints = np.asarray(multihost_utils.process_allgather(
      _fingerprint(config_json))).reshape(jax.process_count(), -1)
  differ = [i for i in range(len(prints))
            if not np.array_equal(prints[i], prints[0])]
  if differ:
    raise DistributedError(
        f"Process(es) {differ} run another config than process 0: start "
        "every process with the same --config and --config.* flags.")


def _allgather(array: np.ndarray) -> np.ndarray:
  """(processes, ...) stack of every process's `array`, in its dtype.

  JAX carries 32-bit numbers only (x64 is off): 64-bit ones travel as 32-bit
  (indices below 2**31; float64 sums keep float32's 7 digits).
  """
  narrow = {np.dtype(np.int64): np.int32, np.dtype(np.float64): np.float32,
            np.dtype(np.bool_): np.int32}.get(array.dtype, array.dtype)
  gathered = multihost_utils.process_allgather(array.astype(narrow))
  return np.asarray(gathered).astype(array.dtype)


def concatenate_rows(array) -> np.ndarray:
  """Every process's rows of `array`, process 0's first, on every process.

  The processes may hold different numbers of rows (an evaluation split
  shared out unevenly); the rest of the shape must agree.

  Args:
    array: (N_p, ...) this process's rows.

  Returns:
    (sum of N_p, ...) numpy, the same on every process.
  """
  array = np.asarray(array)
  if jax.process_count() == 1:
    return array
  counts = np.asarray(multihost_utils.process_allgather(
      np.array([array.shape[0]], np.int32))).reshape(-1)
  padded = np.zeros((int(counts.max()),) + array.shape[1:], array.dtype)
  padded[:array.shape[0]] = array
  gathered = _allgather(padded)
  return np.concatenate([gathered[p, :n] for p, n in enumerate(counts)])


def sum_over_processes(array) -> np.ndarray:
  """The sum of `array` over the processes, on every process."""
  array = np.asarray(array)
  if jax.process_count() == 1:
    return array
  return _allgather(array).sum(axis=0)


def most_over_processes(value: int) -> int:
  """The largest of the processes' `value`s, on every process."""
  if jax.process_count() == 1:
    return int(value)
  return int(np.max(multihost_utils.process_allgather(
      np.array([value], np.int32))))
