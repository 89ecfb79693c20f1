"""Host-side initialisation: flax's distributions without compiling."""

import jax
import numpy as np
import pytest
from scipy import stats

from acnn_jax import initialization
from acnn_jax import models

# Small enough that flax's own jitted init compiles in seconds, with every
# kind of module: stem, hourglass, merges, attention heads.
SMALL = dict(num_stacks=2, features=8, num_joints=4, hourglass_depth=1,
             attention_features=4, attention_bias_init=3.0)
SIZE = 16


@pytest.fixture(scope="module")
def both():
  """(host init, flax's jitted init) of the SMALL network, same key."""
  model = models.ACNN(**SMALL)
  key = jax.random.PRNGKey(0)
  host = models.init_variables(model, key, SIZE)
  dummy = jax.numpy.zeros((1, SIZE, SIZE, 3))
  flax_init = jax.jit(lambda r: model.init(r, dummy))(key)
  return host, flax_init


def _paths(tree):
  return {initialization.path_name(p): np.asarray(v)
          for p, v in jax.tree_util.tree_leaves_with_path(tree)}


def test_same_variables_shapes_and_dtypes_as_flax(both):
  host, flax_init = both
  assert (jax.tree_util.tree_structure(host) ==
          jax.tree_util.tree_structure(flax_init))
  for a, b in zip(jax.tree_util.tree_leaves(host),
                  jax.tree_util.tree_leaves(flax_init)):
    assert a.shape == b.shape and a.dtype == b.dtype


def test_constants_are_flax_constants_and_kernels_its_distribution(both):
  """Every variable flax starts at a constant (BatchNorm, biases, the
  attention heads' last layer) is that constant; every other is a
  truncated normal of variance 1 / fan_in, as flax's lecun_normal."""
  host, flax_init = _paths(both[0]), _paths(both[1])
  drawn = []
  for path, want in flax_init.items():
    got = host[path]
    if np.all(want == want.flat[0]):
      np.testing.assert_array_equal(got, want, err_msg="/".join(path))
      continue
    assert path[-1] == "kernel", path
    std = np.sqrt(1.0 / np.prod(want.shape[:-1]))
    bound = 2 * std / initialization._TRUNCATED_STD  # pylint: disable=protected-access
    assert np.abs(got).max() <= bound * (1 + 1e-6), path
    assert np.abs(want).max() <= bound * (1 + 1e-6), path
    drawn.append(got.ravel() / std)
  # Pooled over all kernels (thousands of values): the standardised values
  # are flax's truncated normal (unit variance after its rescaling).
  pooled = np.concatenate(drawn)
  truncated = stats.truncnorm(-2, 2, scale=1 / initialization._TRUNCATED_STD)  # pylint: disable=protected-access
  assert stats.kstest(pooled, truncated.cdf).pvalue > 1e-3
  assert np.std(pooled) == pytest.approx(1.0, abs=0.05)


def test_values_depend_on_the_key_and_the_path_only():
  key = jax.random.PRNGKey(3)
  full = _paths(models.init_variables(models.ACNN(**SMALL), key, SIZE))
  again = _paths(models.init_variables(models.ACNN(**SMALL), key, SIZE))
  fewer = _paths(models.init_variables(
      models.ACNN(**{**SMALL, "num_stacks": 1}), key, 2 * SIZE))
  other = _paths(models.init_variables(models.ACNN(**SMALL),
                                       jax.random.PRNGKey(4), SIZE))
  for path, value in full.items():
    np.testing.assert_array_equal(again[path], value)
    if path in fewer:
      np.testing.assert_array_equal(fewer[path], value)
    if path[-1] == "kernel" and value.std() > 0:
      assert not np.array_equal(other[path], value), path
  assert set(fewer) < set(full)


def test_typed_keys_are_accepted():
  model = models.ACNN(**SMALL)
  typed = models.init_variables(model, jax.random.key(5), SIZE)
  raw = models.init_variables(model, jax.random.PRNGKey(5), SIZE)
  for a, b in zip(jax.tree_util.tree_leaves(typed),
                  jax.tree_util.tree_leaves(raw)):
    np.testing.assert_array_equal(a, b)


def test_an_unknown_variable_is_an_error():
  shapes = {"params": {"layer": {"weird": jax.ShapeDtypeStruct((2,),
                                                               np.float32)}}}
  with pytest.raises(ValueError, match="params/layer/weird"):
    initialization.host_variables(
        shapes, jax.random.PRNGKey(0),
        lambda path, shape: models._initial_value(models.ACNN(), path, shape))  # pylint: disable=protected-access
