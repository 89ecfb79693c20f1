"""Which folders synthetic data may be written into: those marked as ours.

A user's MPII folder must never be written into. `synthetic.generate` writes
only into a new or empty folder, or one that holds its marker file,
`ACNN_SYNTHETIC.json`: written first (with `complete: false`), it records the
arguments of the set, and is completed when the last file is written. So a
folder with the marker is synthetic, and tells whether its set is whole and
which arguments made it.
"""

import json
import os
from typing import Any, Dict, Optional

from acnn_jax import errors

MARKER = "ACNN_SYNTHETIC.json"


def read(directory: str) -> Optional[Dict[str, Any]]:
  """The marker of `directory`: {'settings': {...}, 'complete': bool}, or
  None when there is none (not a synthetic folder). An unreadable marker
  (a crash while writing it) reads as an incomplete set."""
  path = os.path.join(directory, MARKER)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      marker = json.load(f)
  except (OSError, ValueError):
    return {"settings": None, "complete": False}
  if not isinstance(marker, dict):
    return {"settings": None, "complete": False}
  return marker


def write(directory: str, settings: Dict[str, Any], complete: bool) -> None:
  """Writes the marker atomically."""
  path = os.path.join(directory, MARKER)
  with open(path + ".tmp", "w") as f:
    json.dump({"settings": settings, "complete": complete}, f, indent=2)
  os.replace(path + ".tmp", path)


def claim(directory: str, settings: Dict[str, Any]) -> None:
  """Makes `directory` ours before anything is written into it.

  Raises:
    errors.InputError: it exists, is not empty and has no marker: it is
      someone's data, not ours to write into.
  """
  if os.path.isdir(directory) and os.listdir(directory) and read(
      directory) is None:
    raise errors.InputError(
        f"{directory} already holds files that are not a synthetic data set "
        f"(it has no {MARKER}); synthetic data is only written into a new or "
        "empty folder, or one it wrote before. Choose another folder.")
  os.makedirs(directory, exist_ok=True)
  write(directory, settings, complete=False)
