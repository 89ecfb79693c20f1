"""ACNN's three training phases (docs/design.md section 2) as data.

A: the heatmap network learns with every mask frozen at one;
B: the attention heads learn with the heatmap network frozen;
C: both learn jointly. B starts from A's checkpoint, C from B's.
"""

import dataclasses
from typing import Optional, Tuple

from acnn_jax import models


@dataclasses.dataclass(frozen=True)
class Phase:
  """What one phase trains.

  Attributes:
    name: 'a', 'b' or 'c'.
    trained: the tasks whose parameters and BatchNorm statistics move.
    masks_to_one: run the network with every mask exactly one.
    previous: the phase whose checkpoint this one starts from.
  """
  name: str
  trained: Tuple[str, ...]
  masks_to_one: bool
  previous: Optional[str]

  @property
  def frozen_task(self) -> Optional[str]:
    """The task kept bit-for-bit unchanged (None when both learn)."""
    frozen = [t for t in models.TASKS if t not in self.trained]
    return frozen[0] if frozen else None


PHASES = {
    "a": Phase("a", (models.HEATMAP_TASK,), masks_to_one=True, previous=None),
    "b": Phase("b", (models.ATTENTION_TASK,), masks_to_one=False,
               previous="a"),
    "c": Phase("c", models.TASKS, masks_to_one=False, previous="b"),
}
NAMES = tuple(PHASES)  # In training order.
