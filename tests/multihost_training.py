"""One process of a multi-host run of the tiny config, recording what it did.

Used by test_multihost.py, which starts two of these on this machine (JAX's
CPU collectives over localhost, one device each):

  python tests/multihost_training.py PORT PROCESS_ID WORKDIR RECORD_DIR \
      '{"num_epochs": 1, ...}'

The process trains with `train.train_and_evaluate`, as `acnn_jax.main` does,
and writes RECORD_DIR/process_<id>.npz: the host batches it fed its device
(compact: `training_batch.COMPACT_KEYS`),
the parameters before the first step it ran and after each step, the step
it started from, and the people its evaluations scored.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["JAX_PLATFORMS"] = "cpu"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,g-bad-import-order
from acnn_jax import distributed

PORT, PROCESS_ID, WORKDIR, RECORD_DIR = sys.argv[1:5]
OVERRIDES = json.loads(sys.argv[5])
# Before anything else touches JAX's devices, as in acnn_jax.main.
distributed.initialize(f"127.0.0.1:{PORT}", 2, int(PROCESS_ID))

from absl import logging
import jax
import numpy as np

from acnn_jax import cli
from acnn_jax import compilation_cache
from acnn_jax import evaluate as evaluate_lib
from acnn_jax import parallel
from acnn_jax import train
from acnn_jax import train_step as train_step_lib
from acnn_jax import training_batch
from configs import tiny
# pylint: enable=g-import-not-at-top,g-bad-import-order

BATCH_KEYS = training_batch.COMPACT_KEYS
record = {**{k: [] for k in BATCH_KEYS}, "params": [], "evaluated_index": [],
          "evaluated_person": []}


def _flat(params) -> np.ndarray:
  leaves = jax.tree_util.tree_leaves(jax.device_get(params))
  return np.concatenate([np.ravel(leaf) for leaf in leaves])


original_prefetch = parallel.prefetch


def recording_prefetch(batches, size=2):
  def recorded():
    for batch in batches:
      for k in BATCH_KEYS:
        record[k].append(np.asarray(batch[k]))
      yield batch
  return original_prefetch(recorded(), size)


original_make = train_step_lib.make


def recording_make(*args, **kwargs):
  step_fn = original_make(*args, **kwargs)

  def step(state, batch):
    if not record["params"]:
      record["start_step"] = int(jax.device_get(state.step))
      record["params"].append(_flat(state.params))  # Before it is donated.
    state, metrics = step_fn(state, batch)
    record["params"].append(_flat(state.params))
    return state, metrics
  return step


original_evaluate = evaluate_lib.evaluate


def recording_evaluate(*args, **kwargs):
  result = original_evaluate(*args, **kwargs)
  record["evaluated_index"].append(result.index)
  record["evaluated_person"].append(result.person)
  return result


parallel.prefetch = recording_prefetch
train_step_lib.make = recording_make
evaluate_lib.evaluate = recording_evaluate

cli.quiet_library_logs()
compilation_cache.enable()  # The test run's, as the commands use theirs.
logging.set_verbosity(logging.INFO)  # A failure's log shows how far it got.
config = tiny.get_config("a")
config.update(OVERRIDES)
table = train.train_and_evaluate(config, WORKDIR)
steps = len(record["params"]) - 1
np.savez(os.path.join(RECORD_DIR, f"process_{PROCESS_ID}.npz"),
         **{k: np.stack(record[k][:steps]) for k in BATCH_KEYS},
         params=np.stack(record["params"]),
         start_step=record.get("start_step", -1),
         evaluated_index=np.concatenate(record["evaluated_index"]),
         evaluated_person=np.concatenate(record["evaluated_person"]),
         mean=table["Mean"],
         process_count=jax.process_count(),
         device_count=jax.device_count())
