"""Multi-host training for real: two processes on this machine, one device
each, talking over JAX's CPU collectives (gloo on localhost).

Each process runs tests/multihost_training.py (`train.train_and_evaluate` of
the tiny config, as `acnn_jax.main` runs it) and records its batches, its
parameters after every step and what its evaluation scored.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from acnn_jax import checkpoints
from acnn_jax import distributed
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import parallel
from acnn_jax import phases
from acnn_jax import train_step as train_step_lib
from acnn_jax import training_batch
from conftest import PROCESS_TIMEOUT
from conftest import one_device_environment
from conftest import tiny_config

SCRIPT = os.path.join(os.path.dirname(__file__), "multihost_training.py")
# What the coordinator says when another program took its port between
# `_free_port` and its start (the port is free when chosen, not reserved).
PORT_TAKEN = ("address already in use", "failed to start rpc server",
              "no address added")
STEPS = 3
FIELDS = dict(steps_per_epoch=STEPS, num_epochs=1, checkpoint_every_steps=STEPS,
              eval_every_epochs=1, keep_checkpoints=3)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start_two(argv_of, log_dir, port):
  """Starts two processes, argv_of(port, process id), one device each;
  their output goes to log_dir/process_<i>.log."""
  env = one_device_environment()
  os.makedirs(log_dir, exist_ok=True)
  procs = []
  for i in range(2):
    with open(os.path.join(log_dir, f"process_{i}.log"), "w") as log:
      procs.append(subprocess.Popen(
          argv_of(port, i), env=env, stdout=log, stderr=subprocess.STDOUT,
          start_new_session=True))
  return procs


def _wait_for_both(procs, log_dir):
  """The outputs of both; fails, ending both, when they hang."""
  def outputs():
    return [open(os.path.join(log_dir, f"process_{i}.log")).read()
            for i in range(2)]
  try:
    for proc in procs:
      proc.wait(timeout=PROCESS_TIMEOUT)
  except subprocess.TimeoutExpired:
    for proc in procs:
      os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
      proc.wait()
    tails = "\n".join(f"--- process {i}:\n{out[-3000:]}"
                      for i, out in enumerate(outputs()))
    pytest.fail(f"the two processes did not finish within {PROCESS_TIMEOUT} "
                f"s (a hang); both were killed.\n{tails}")
  return outputs()


def _run_two(argv_of, log_dir, attempts=3):
  """Starts two processes and waits for both: (processes, outputs). Starts
  them again on another port when the chosen one was taken meanwhile."""
  for attempt in range(attempts):
    procs = _start_two(argv_of, log_dir, _free_port())
    outputs = _wait_for_both(procs, log_dir)
    taken = any(message in out.lower() for out in outputs
                for message in PORT_TAKEN)
    if not taken or attempt == attempts - 1:
      return procs, outputs


def _run_two_processes(workdir, records, fields):
  """Trains in two processes to the end; their records."""
  os.makedirs(records, exist_ok=True)
  procs, outputs = _run_two(lambda port, i: [
      sys.executable, SCRIPT, str(port), str(i), str(workdir), str(records),
      json.dumps(fields)], records)
  for i, (proc, out) in enumerate(zip(procs, outputs)):
    assert proc.returncode == 0, f"process {i} failed:\n{out[-6000:]}"
  return [dict(np.load(os.path.join(records, f"process_{i}.npz")))
          for i in range(2)]


def _single_process_params(first_params, batches, fields):
  """The parameters after each step of one process with two devices, fed
  the two processes' host batches as one global batch (process 0's half on
  device 0), from the same initial state."""
  config = tiny_config("a", **fields)
  phase = phases.PHASES["a"]
  model = models.create_model(config)
  lr_fn = optimizers.create_learning_rate_fn(config, STEPS)
  shapes = models.variable_shapes(model, config.input_size)
  tx = optimizers.create_optimizer(config, shapes["params"], lr_fn, phase)
  variables = models.init_variables(model, jax.random.PRNGKey(config.seed),
                                    config.input_size)
  state = parallel.put_state(train_step_lib.create_state(variables, tx))
  step = train_step_lib.make(model, tx, phase, lr_fn,
                             config.attention_sparsity, sigma=config.sigma)
  flat = lambda s: np.concatenate([np.ravel(x) for x in
                                   jax.tree_util.tree_leaves(
                                       jax.device_get(s.params))])
  np.testing.assert_array_equal(flat(state), first_params)
  params = [flat(state)]
  for batch in batches:
    state, _ = step(state, parallel.shard(batch))
    params.append(flat(state))
  return np.stack(params)


@pytest.mark.slow
def test_two_processes_train_as_one_and_resume(tmp_path):
  assert jax.device_count() == 2, "conftest sets 2 fake CPU devices"
  workdir, records = tmp_path / "workdir", tmp_path / "records"
  p0, p1 = _run_two_processes(workdir, records, FIELDS)
  assert p0["process_count"] == 2 and p0["device_count"] == 2

  # Disjoint shares of the data: different examples at every step.
  for s in range(STEPS):
    assert not np.array_equal(p0["image"][s], p1["image"][s]), s
  # One model: the same parameters on both, after every step, and they move.
  assert len(p0["params"]) == STEPS + 1
  np.testing.assert_array_equal(p0["params"], p1["params"])
  assert not np.array_equal(p0["params"][0], p0["params"][-1])
  # The same as one process over the same global batch.
  batches = [{k: np.concatenate([p0[k][s], p1[k][s]])
              for k in training_batch.COMPACT_KEYS}
             for s in range(STEPS)]
  expected = _single_process_params(p0["params"][0], batches, FIELDS)
  np.testing.assert_allclose(p0["params"], expected, rtol=1e-5, atol=1e-6)

  # Evaluation scored every validation person exactly once, on both.
  builder_people = _validation_people(workdir)
  for p in (p0, p1):
    people = sorted(zip(p["evaluated_index"].tolist(),
                        p["evaluated_person"].tolist()))
    assert people == builder_people
  assert p0["mean"] == p1["mean"]

  # One checkpoint for both processes, and one set of files.
  phase_dir = checkpoints.phase_dir(str(workdir), "a")
  assert sorted(os.listdir(os.path.join(phase_dir, "checkpoints"))) == [
      str(STEPS)]
  assert len(json.load(open(os.path.join(phase_dir,
                                         "eval_history.json")))) == 1
  events = [f for f in os.listdir(phase_dir) if f.startswith("events.")]
  assert len(events) == 1, events

  # A rerun with more epochs resumes from it, on both processes.
  q0, q1 = _run_two_processes(workdir, tmp_path / "records2",
                              dict(FIELDS, num_epochs=2))
  for q in (q0, q1):
    assert q["start_step"] == STEPS
    np.testing.assert_array_equal(q["params"][0], p0["params"][-1])
  np.testing.assert_array_equal(q0["params"], q1["params"])
  assert sorted(os.listdir(os.path.join(phase_dir, "checkpoints")),
                key=int) == [str(STEPS), str(2 * STEPS)]


def _validation_people(workdir):
  """(index, person) of every person of the workdir's validation split."""
  # pylint: disable=g-import-not-at-top
  from input_pipeline import mpii_builder
  import tensorflow_datasets as tfds
  # pylint: enable=g-import-not-at-top
  builder = mpii_builder.build(str(workdir / "synthetic_mpii"),
                               str(workdir / "tfds"))
  return sorted((int(ex["index"]), int(ex["person"])) for ex in tfds.as_numpy(
      builder.as_dataset(split="validation")))


_AGREEMENT = """
import sys
from acnn_jax import distributed
distributed.initialize(f"127.0.0.1:{sys.argv[1]}", 2, int(sys.argv[2]))
try:
  distributed.check_agreement(sys.argv[3])
except distributed.DistributedError as error:
  print("ERROR:", error)
"""


@pytest.mark.slow
def test_processes_with_different_configs_fail_clearly(tmp_path):
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  procs, outputs = _run_two(lambda port, i: [
      sys.executable, "-c", f"import sys; sys.path.insert(0, {repo!r})\n" +
      _AGREEMENT, str(port), str(i), '{"batch_size": %d}' % (4 + 4 * i)],
                            tmp_path)
  for proc, out in zip(procs, outputs):
    assert proc.returncode == 0, out
    assert ("ERROR: Process(es) [1] run another config than process 0: "
            "start every process with the same --config") in out, out


# What SLURM's srun and Open MPI's mpirun give each process (two of them).
_SLURM = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "node[1-2]",
          "SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_LOCALID": "0"}
_OPEN_MPI = {"OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.96.0.1:34911",
             "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1",
             "OMPI_COMM_WORLD_LOCAL_RANK": "0"}


def _no_cluster(monkeypatch):
  """A recorder in place of jax.distributed.initialize, in an environment
  with no set-up and no cluster."""
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
               "JAX_PROCESS_ID", "KUBERNETES_SERVICE_HOST", *_SLURM,
               *_OPEN_MPI):
    monkeypatch.delenv(name, raising=False)
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize",
                      lambda **kwargs: calls.append(kwargs))
  return calls


def test_single_process_starts_no_runtime(monkeypatch):
  calls = _no_cluster(monkeypatch)
  assert distributed.initialize() is False
  # A SLURM step of one task: JAX finds SLURM, but one process needs no
  # runtime.
  for name, value in dict(_SLURM, SLURM_NTASKS="1", SLURM_PROCID="0").items():
    monkeypatch.setenv(name, value)
  assert distributed.initialize() is False
  assert not calls


@pytest.mark.parametrize("cluster, name", [(_SLURM, "slurm"),
                                           (_OPEN_MPI, "ompi")])
def test_jax_sets_up_a_cluster_of_several_processes(monkeypatch, cluster,
                                                    name):
  calls = _no_cluster(monkeypatch)
  for variable, value in cluster.items():
    monkeypatch.setenv(variable, value)
  assert distributed._cluster() == name  # pylint: disable=protected-access
  collectives = jax.config.jax_cpu_collectives_implementation
  try:
    assert distributed.initialize() is True
  finally:
    jax.config.update("jax_cpu_collectives_implementation", collectives)
  # JAX detects the coordinator, the process count and this process's index.
  assert calls == [dict(coordinator_address=None, num_processes=None,
                        process_id=None)]


@pytest.mark.parametrize("args, message", [
    (dict(coordinator_address="127.0.0.1:1234"), "--num_processes"),
    (dict(num_processes=2, process_id=0), "--coordinator_address"),
    (dict(coordinator_address="h:1", num_processes=2, process_id=2),
     "--process_id=2 is not in 0..1"),
])
def test_incomplete_or_bad_arguments_are_named(monkeypatch, args, message):
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES",
               "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  with pytest.raises(distributed.DistributedError, match=message):
    distributed.initialize(**args)


def test_a_malformed_environment_variable_is_named(monkeypatch):
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
  with pytest.raises(distributed.DistributedError,
                     match=r"\$JAX_NUM_PROCESSES='two' is not an integer"):
    distributed.initialize()


def test_helpers_are_identities_in_one_process():
  rows = np.arange(6.0).reshape(3, 2)
  np.testing.assert_array_equal(distributed.concatenate_rows(rows), rows)
  np.testing.assert_array_equal(distributed.sum_over_processes(rows), rows)
  assert distributed.most_over_processes(4) == 4
  distributed.check_agreement("{}")  # Nothing to compare with.
  distributed.barrier("nothing to wait for")
  calls = []
  assert distributed.primary_first("alone", lambda primary: calls.append(
      primary) or "result") == "result"
  assert calls == [True]  # Once, as process 0.
