"""Trains one tiny phase and SIGKILLs itself at a chosen point of a save.

Used by test_reliability_training.py as a separate process, so that the kill
is a real one (no `finally`, no flush):

  python tests/killable_training.py WORKDIR '{"num_epochs": 3, ...}' [WHERE STEP]

WHERE is where the save of checkpoints/STEP dies:
  start      when the training loop asks for the save (nothing written yet);
  tmp        right after orbax made its temporary directory;
  rename     with every array written, before the rename that commits it;
  committed  right after the rename (the checkpoint is complete).
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,g-bad-import-order
from orbax.checkpoint._src.path import atomicity

from acnn_jax import checkpoints
from acnn_jax import cli
from acnn_jax import compilation_cache
from acnn_jax import train
from configs import tiny
# pylint: enable=g-import-not-at-top,g-bad-import-order


def _die():
  os.kill(os.getpid(), signal.SIGKILL)


def _is_target(path, step) -> bool:
  return path.name == str(step) and path.parent.name == "checkpoints"


def _arm(where: str, step: int) -> None:
  """Patches the save path so that the process dies at `where` of `step`."""
  cls = atomicity.AtomicRenameTemporaryPath
  if where == "start":
    original_save = checkpoints.save_state

    def save_state(manager, at, state, metrics=None):
      if at == step and manager.directory.name == "checkpoints":
        _die()
      original_save(manager, at, state, metrics)
    checkpoints.save_state = save_state
  elif where == "tmp":
    original_create = cls.create

    async def create(self, *args, **kwargs):
      made = await original_create(self, *args, **kwargs)
      if _is_target(self._final_path, step):  # pylint: disable=protected-access
        _die()
      return made
    cls.create = create
  elif where in ("rename", "committed"):
    original_finalize = cls.finalize

    async def finalize(self, *args, **kwargs):
      target = _is_target(self._final_path, step)  # pylint: disable=protected-access
      if target and where == "rename":
        _die()
      await original_finalize(self, *args, **kwargs)
      if target:
        _die()
    cls.finalize = finalize
  else:
    raise ValueError(f"unknown kill point {where!r}")


def main():
  workdir, overrides = sys.argv[1], json.loads(sys.argv[2])
  if len(sys.argv) > 3:
    _arm(sys.argv[3], int(sys.argv[4]))
  config = tiny.get_config(overrides.pop("phase", "a"))
  config.update(overrides)
  cli.quiet_library_logs()
  # The test run's cache ($ACNN_COMPILATION_CACHE), as the commands use
  # theirs: the reference and the resumed processes compile nothing again.
  compilation_cache.enable()
  train.train_and_evaluate(config, workdir)


if __name__ == "__main__":
  main()
