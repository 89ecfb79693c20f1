"""Initial variables drawn on the host with numpy: no compilation.

Flax's `model.init` under `jax.jit` compiles one random-number kernel per
parameter: for the paper's network (1172 variables) that is 22-25 s of XLA
compile on a 2-core CPU, every run, before the first step. Here the shapes
come from `jax.eval_shape` (tracing only) and every value is drawn with
numpy, in well under a second. The distributions are flax's (the test
compares them with the modules' own initialisers); the values differ.

Each random leaf is drawn from a numpy generator seeded by the JAX key and
the leaf's path, so a leaf's value depends only on its path: a network with
fewer stacks gets the same values for the stages it shares.
"""

import zlib
from typing import Callable, Tuple, Union

import jax
import numpy as np

# flax's `variance_scaling(..., "truncated_normal")` draws from N(0, 1)
# truncated to [-2, 2], whose standard deviation is this, and rescales.
_TRUNCATED_STD = 0.87962566103423978

LECUN_NORMAL = "lecun_normal"

# What a leaf starts at: a constant, or LECUN_NORMAL (flax's default kernel
# initialiser: variance 1 / fan_in, truncated normal).
Initial = Union[float, str]


def path_name(path) -> Tuple[str, ...]:
  """('params', 'stage_0', ..., 'kernel') of a tree path."""
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _truncated_normal(generator: np.random.Generator, shape) -> np.ndarray:
  values = generator.standard_normal(shape, dtype=np.float32)
  outside = np.abs(values) > 2.0
  while outside.any():  # Redraw the 4.6% outside [-2, 2] until none are.
    values[outside] = generator.standard_normal(int(outside.sum()),
                                                dtype=np.float32)
    outside = np.abs(values) > 2.0
  return values


def lecun_normal(seed_words, path, shape) -> np.ndarray:
  """flax's `lecun_normal()` draw for one leaf, from numpy.

  Args:
    seed_words: the JAX key's data, as integers.
    path: the leaf's path names (they seed the leaf's own generator).
    shape: the leaf's shape; all but the last axis are its fan-in.
  """
  path_hash = zlib.crc32("/".join(path).encode())
  generator = np.random.default_rng([*seed_words, path_hash])
  fan_in = int(np.prod(shape[:-1]))
  scale = np.float32(np.sqrt(1.0 / fan_in) / _TRUNCATED_STD)
  return _truncated_normal(generator, shape) * scale


def host_variables(shapes, rng, initial_of: Callable[[Tuple[str, ...], tuple],
                                                     Initial]):
  """Concrete variables of the shapes `shapes`, drawn on the host.

  Args:
    shapes: a tree of `jax.ShapeDtypeStruct` (`jax.eval_shape` of an init).
    rng: a JAX PRNG key (typed or raw).
    initial_of: (path names, shape) -> a constant or LECUN_NORMAL.

  Returns:
    The tree with float32 device arrays (on the default device).
  """
  if jax.dtypes.issubdtype(getattr(rng, "dtype", None), jax.dtypes.prng_key):
    rng = jax.random.key_data(rng)
  seed_words = [int(w) for w in np.asarray(rng).ravel()]

  def value(path, leaf):
    names = path_name(path)
    initial = initial_of(names, leaf.shape)
    if initial == LECUN_NORMAL:
      array = lecun_normal(seed_words, names, leaf.shape)
    else:
      array = np.full(leaf.shape, initial, np.float32)
    return array.astype(leaf.dtype)

  return jax.device_put(jax.tree_util.tree_map_with_path(value, shapes))
