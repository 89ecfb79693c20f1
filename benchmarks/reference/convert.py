"""acnn-jax variables <-> the PyTorch reference's state, by explicit names.

The map is written out module by module (`name_map`), from the two
networks' definitions: acnn-jax's Flax tree (`params` and `batch_stats`,
NHWC kernels) on one side, `torch_acnn.ACNN`'s state dict (NCHW) on the
other. Converting checks that every Flax leaf and every PyTorch tensor is
used exactly once, with the same shape, so a layer missing on either side,
or one read twice, is an error rather than a silent default.

Layouts: a k x k convolution's kernel is (k, k, in, out) in Flax and
(out, in, k, k) in PyTorch; a 1x1 convolution is a Dense layer in acnn-jax,
kernel (in, out), and a (out, in, 1, 1) convolution in PyTorch. BatchNorm:
scale/bias/mean/var are weight/bias/running_mean/running_var.
"""

from typing import Dict, Iterator, List, NamedTuple, Tuple

from flax import traverse_util
import numpy as np

CONV, DENSE, NORM = "conv", "dense", "norm"


class Entry(NamedTuple):
  """One tensor: its PyTorch name, Flax collection and path, and layout."""
  torch_name: str
  collection: str  # 'params' or 'batch_stats'
  flax_path: Tuple[str, ...]
  layout: str  # 'conv' (k, k, in, out), 'dense' (in, out) or 'vector'


def _layer(torch_prefix: str, flax_path: Tuple[str, ...], kind: str
           ) -> Iterator[Entry]:
  if kind in (CONV, DENSE):
    yield Entry(f"{torch_prefix}.weight", "params", flax_path + ("kernel",),
                kind)
    yield Entry(f"{torch_prefix}.bias", "params", flax_path + ("bias",),
                "vector")
  else:
    for torch_leaf, collection, flax_leaf in (
        ("weight", "params", "scale"), ("bias", "params", "bias"),
        ("running_mean", "batch_stats", "mean"),
        ("running_var", "batch_stats", "var")):
      yield Entry(f"{torch_prefix}.{torch_leaf}", collection,
                  flax_path + (flax_leaf,), "vector")


def _residual(torch_prefix, flax_path, skip=False) -> Iterator[Entry]:
  for i, kind in ((1, DENSE), (2, CONV), (3, DENSE)):
    yield from _layer(f"{torch_prefix}.bn{i}", flax_path + (f"bn{i}",), NORM)
    yield from _layer(f"{torch_prefix}.conv{i}", flax_path + (f"conv{i}",),
                      kind)
  if skip:
    yield from _layer(f"{torch_prefix}.skip", flax_path + ("skip",), DENSE)


def _hourglass(torch_prefix, flax_path, depth) -> Iterator[Entry]:
  yield from _residual(f"{torch_prefix}.up1", flax_path + ("up",))
  yield from _residual(f"{torch_prefix}.low1", flax_path + ("low1",))
  if depth > 1:
    yield from _hourglass(f"{torch_prefix}.low2", flax_path + ("inner",),
                          depth - 1)
  else:
    yield from _residual(f"{torch_prefix}.low2", flax_path + ("low2",))
  yield from _residual(f"{torch_prefix}.low3", flax_path + ("low3",))


def name_map(num_stacks: int, hourglass_depth: int) -> List[Entry]:
  """Every tensor of the network, PyTorch name against Flax path."""
  entries = list(_layer("conv1", ("stem", "conv"), CONV))
  entries += _layer("bn1", ("stem", "bn"), NORM)
  # The stem's widths F/4 -> F/2 -> F/2 -> F: the first and last change.
  entries += _residual("layer1", ("stem", "res1"), skip=True)
  entries += _residual("layer2", ("stem", "res2"))
  entries += _residual("layer3", ("stem", "res3"), skip=True)
  for i in range(num_stacks):
    stage = (f"stage_{i}",)
    entries += _hourglass(f"hg.{i}", stage + ("hourglass",), hourglass_depth)
    entries += _residual(f"res.{i}", stage + ("res",))
    entries += _layer(f"fc.{i}.0", stage + ("lin",), DENSE)
    entries += _layer(f"fc.{i}.1", stage + ("lin_bn",), NORM)
    entries += _layer(f"score.{i}", stage + ("heatmaps",), DENSE)
    if i < num_stacks - 1:
      entries += _layer(f"fc_.{i}", (f"merge_{i}", "features"), DENSE)
      entries += _layer(f"score_.{i}", (f"merge_{i}", "heatmaps"), DENSE)
    head = (f"attention_{i}",)
    entries += _layer(f"attention.{i}.conv1", head + ("conv1",), CONV)
    entries += _layer(f"attention.{i}.bn1", head + ("bn1",), NORM)
    entries += _layer(f"attention.{i}.conv2", head + ("conv2",), CONV)
    entries += _layer(f"attention.{i}.bn2", head + ("bn2",), NORM)
    entries += _layer(f"attention.{i}.score", head + ("logits",), DENSE)
  return entries


def to_torch_layout(value: np.ndarray, layout: str) -> np.ndarray:
  if layout == CONV:
    return np.transpose(value, (3, 2, 0, 1))
  if layout == DENSE:
    return np.transpose(value)[:, :, None, None]
  return value


def to_flax_layout(value: np.ndarray, layout: str) -> np.ndarray:
  if layout == CONV:
    return np.transpose(value, (2, 3, 1, 0))
  if layout == DENSE:
    return np.transpose(value[:, :, 0, 0])
  return value


def to_torch(variables, entries: List[Entry], torch_shapes: Dict[str, tuple]
             ) -> Dict[str, np.ndarray]:
  """The PyTorch state (numpy) of acnn-jax `variables`.

  Args:
    variables: {'params': ..., 'batch_stats': ...} of acnn-jax's ACNN.
    entries: `name_map(...)` of the same network.
    torch_shapes: {name: shape} of the PyTorch model's state dict, less
      BatchNorm's num_batches_tracked counters.

  Raises:
    ValueError: a tensor of either side is unused, used twice or of another
      shape than its counterpart.
  """
  flax_leaves = traverse_util.flatten_dict(
      {c: variables[c] for c in ("params", "batch_stats")})
  state, used = {}, set()
  for entry in entries:
    key = (entry.collection,) + entry.flax_path
    if key not in flax_leaves:
      raise ValueError(f"{'/'.join(key)} (for {entry.torch_name}) is not in "
                       "the Flax variables.")
    if key in used or entry.torch_name in state:
      raise ValueError(f"{'/'.join(key)} or {entry.torch_name} mapped twice.")
    used.add(key)
    value = to_torch_layout(np.asarray(flax_leaves[key]), entry.layout)
    if entry.torch_name not in torch_shapes:
      raise ValueError(f"{entry.torch_name} is not in the PyTorch model.")
    if tuple(value.shape) != tuple(torch_shapes[entry.torch_name]):
      raise ValueError(f"{entry.torch_name}: shape {value.shape} from "
                       f"{'/'.join(key)}, PyTorch has "
                       f"{tuple(torch_shapes[entry.torch_name])}.")
    state[entry.torch_name] = value
  unused = sorted("/".join(k) for k in set(flax_leaves) - used)
  missing = sorted(set(torch_shapes) - set(state))
  if unused or missing:
    raise ValueError(f"Flax leaves never converted: {unused}; PyTorch "
                     f"tensors never set: {missing}.")
  return state


def to_flax(tensors: Dict[str, np.ndarray], entries: List[Entry],
            collection: str) -> dict:
  """The Flax-layout tree of PyTorch tensors of one collection (parameters,
  their gradients, or running statistics), e.g. {'stem': {'conv': ...}}.
  Tensors absent from `tensors` (a frozen part's gradients) are left out."""
  flat = {}
  for entry in entries:
    if entry.collection == collection and entry.torch_name in tensors:
      flat[entry.flax_path] = to_flax_layout(
          np.asarray(tensors[entry.torch_name]), entry.layout)
  return traverse_util.unflatten_dict(flat)
