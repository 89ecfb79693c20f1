"""Tests of the ACNN Flax model: shapes, parameter counts, masks and the task split."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from acnn_jax import models
from conftest import TINY
from conftest import TINY_INPUT
from conftest import tiny_model as _tiny


def _images(seed, batch=2, size=64):
  return jax.random.uniform(jax.random.PRNGKey(seed), (batch, size, size, 3))


def _randomize_attention(variables, seed=1, bias=0.0):
  """Random, far-from-one attention heads (the default init gives masks ~1)."""
  params = dict(variables["params"])
  key = jax.random.PRNGKey(seed)
  for name in params:
    if not name.startswith(models.ATTENTION_PREFIX):
      continue
    key, sub = jax.random.split(key)
    logits = dict(params[name]["logits"])
    logits["kernel"] = jax.random.normal(sub, logits["kernel"].shape)
    logits["bias"] = jnp.full_like(logits["bias"], bias)
    params[name] = {**params[name], "logits": logits}
  return {**variables, "params": params}


@pytest.mark.parametrize("height,width", [(64, 64), (128, 128), (64, 128)])
def test_output_shapes(height, width):
  model, variables = _tiny()
  out = model.apply(variables, jnp.zeros((2, height, width, 3)))
  s, k = TINY["num_stacks"], TINY["num_joints"]
  assert out.heatmaps.shape == (s, 2, height // 4, width // 4, k)
  assert out.masks.shape == (s, 2, height // 4, width // 4, 1)
  assert out.predictions.shape == (s, 2, height // 4, width // 4, k)
  for array in out:
    assert array.dtype == jnp.float32


@pytest.mark.slow
def test_init_variables_is_the_jitted_init():
  """`init_variables` (jitted, any image size, float32) gives what the
  module's own init gives."""
  model, variables = _tiny()
  jitted = models.init_variables(model, jax.random.PRNGKey(0),
                                 (TINY_INPUT, 2 * TINY_INPUT), batch_size=2)
  assert (jax.tree_util.tree_structure(jitted) ==
          jax.tree_util.tree_structure(variables))
  for a, b in zip(jax.tree_util.tree_leaves(jitted),
                  jax.tree_util.tree_leaves(variables)):
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_full_size_parameter_counts():
  """Newell's stem, 4 stacks, F=256: 12,858,304 heatmap parameters.

  Counted on abstract shapes (no compile), so the full net costs nothing here.
  """
  model = models.ACNN()
  shapes = jax.eval_shape(
      lambda r: model.init(r, jnp.zeros((1, 256, 256, 3))),
      jax.random.PRNGKey(0))
  assert models.count_params(shapes["params"], models.HEATMAP_TASK) == 12_858_304
  assert models.count_params(shapes["params"], models.ATTENTION_TASK) == 739_076
  plain = models.ACNN(attention=False)
  plain_shapes = jax.eval_shape(
      lambda r: plain.init(r, jnp.zeros((1, 256, 256, 3))),
      jax.random.PRNGKey(0))
  assert models.count_params(plain_shapes["params"]) == 12_858_304


def test_masks_to_one_is_plain_stacked_hourglass():
  model, variables = _tiny()
  variables = _randomize_attention(variables)
  out = model.apply(variables, _images(0), masks_to_one=True)
  np.testing.assert_array_equal(out.masks, 1.0)
  np.testing.assert_array_equal(out.predictions, out.heatmaps)
  # And the attention network truly changes things when it is on.
  attended = model.apply(variables, _images(0))
  assert not np.allclose(attended.heatmaps[1:], out.heatmaps[1:])
  plain, plain_vars = _tiny(attention=False)
  plain_out = plain.apply(plain_vars, _images(0))
  np.testing.assert_array_equal(plain_out.masks, 1.0)
  np.testing.assert_array_equal(plain_out.predictions, plain_out.heatmaps)


def test_gated_combination_holds_stage_by_stage():
  model, variables = _tiny()
  variables = _randomize_attention(variables)
  out = model.apply(variables, _images(3))
  masks = np.asarray(out.masks)
  # Random heads: masks spread over (0, 1), far from the initial ~1.
  assert masks.min() < 0.2 and masks.max() > 0.5
  np.testing.assert_allclose(out.predictions[0], out.heatmaps[0])
  for i in range(1, TINY["num_stacks"]):
    expected = (masks[i - 1] * out.heatmaps[i] +
                (1 - masks[i - 1]) * out.predictions[i - 1])
    np.testing.assert_allclose(out.predictions[i], expected, rtol=1e-5,
                               atol=1e-6)


def test_additive_combination_holds_stage_by_stage():
  model, variables = _tiny(combine="additive")
  variables = _randomize_attention(variables)
  out = model.apply(variables, _images(4))
  masks = np.asarray(out.masks)
  for i in range(1, TINY["num_stacks"]):
    expected = out.heatmaps[i] + (1 - masks[i - 1]) * out.predictions[i - 1]
    np.testing.assert_allclose(out.predictions[i], expected, rtol=1e-5,
                               atol=1e-6)


def test_zero_mask_cuts_the_next_stage_off_the_image():
  model, variables = _tiny(mask_mode="binary")
  # Logit bias far below 0 with zero kernels: every binary mask is exactly 0.
  params = dict(variables["params"])
  for name in params:
    if name.startswith(models.ATTENTION_PREFIX):
      params[name] = {**params[name], "logits": {
          "kernel": jnp.zeros_like(params[name]["logits"]["kernel"]),
          "bias": jnp.full_like(params[name]["logits"]["bias"], -10.0)}}
  variables = {**variables, "params": params}
  a = model.apply(variables, _images(5))
  b = model.apply(variables, _images(6))
  np.testing.assert_array_equal(a.masks, 0.0)
  assert not np.allclose(a.heatmaps[0], b.heatmaps[0])
  np.testing.assert_allclose(a.heatmaps[1:], b.heatmaps[1:], atol=1e-6)
  # A zero mask keeps the earlier prediction everywhere.
  np.testing.assert_allclose(a.predictions[-1], a.predictions[0], atol=1e-6)


@pytest.mark.slow  # A gradient through the whole network: ~17 s.
def test_binary_masks_are_hard_but_pass_gradients():
  model, variables = _tiny(mask_mode="binary")
  variables = _randomize_attention(variables)
  images = _images(7)
  out = model.apply(variables, images)
  values = np.unique(np.asarray(out.masks))
  assert set(values.tolist()) == {0.0, 1.0}

  def loss(params):
    o = model.apply({**variables, "params": params}, images)
    return jnp.mean((o.predictions - 0.5) ** 2)

  # Jitted: one compile is far cheaper than eager backward ops on CPU.
  grads = jax.jit(jax.grad(loss))(variables["params"])
  labels = models.task_labels(grads)
  attention_norm = sum(
      float(jnp.sum(g ** 2)) for g, l in zip(jax.tree_util.tree_leaves(grads),
                                              jax.tree_util.tree_leaves(labels))
      if l == models.ATTENTION_TASK)
  assert attention_norm > 0.0


def test_straight_through_is_exact_and_has_unit_gradient():
  m = jnp.array([0.1, 0.3, 0.5, 0.50001, 0.7, 0.99])
  hard = models.binarize_straight_through(m)
  np.testing.assert_array_equal(hard, [0, 0, 0, 1, 1, 1])
  grad = jax.grad(lambda x: jnp.sum(models.binarize_straight_through(x) * 3))(m)
  np.testing.assert_allclose(grad, 3.0)


def test_task_labels_cover_every_leaf():
  model, variables = _tiny()
  for collection in ("params", "batch_stats"):
    tree = variables[collection]
    labels = models.task_labels(tree)
    assert (jax.tree_util.tree_structure(labels) ==
            jax.tree_util.tree_structure(tree))
    flat = jax.tree_util.tree_leaves_with_path(labels)
    assert {l for _, l in flat} == set(models.TASKS)
    for path, label in flat:
      top = path[0].key
      assert (label == models.ATTENTION_TASK) == top.startswith("attention_")
  # Every attention-head parameter is 'attention', and only those.
  assert (models.count_params(variables["params"], models.ATTENTION_TASK) ==
          sum(models.count_params(variables["params"][f"attention_{i}"])
              for i in range(TINY["num_stacks"])))
  # The labels drive optax.multi_transform: the frozen task stays put.
  tx = optax.multi_transform(
      {models.HEATMAP_TASK: optax.sgd(1.0),
       models.ATTENTION_TASK: optax.set_to_zero()},
      models.task_labels(variables["params"]))
  ones = jax.tree_util.tree_map(jnp.ones_like, variables["params"])
  updates, _ = tx.update(ones, tx.init(variables["params"]))
  for (path, u) in jax.tree_util.tree_leaves_with_path(updates):
    frozen = path[0].key.startswith("attention_")
    assert bool(jnp.all(u == 0)) == frozen


def test_frozen_task_keeps_batch_stats():
  model, variables = _tiny()
  _, updated = model.apply(variables, _images(8), train=True,
                           frozen_task=models.HEATMAP_TASK,
                           mutable=["batch_stats"])
  labels = models.task_labels(variables["batch_stats"])
  moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)),
                                 variables["batch_stats"],
                                 updated["batch_stats"])
  for m, l in zip(jax.tree_util.tree_leaves(moved),
                  jax.tree_util.tree_leaves(labels)):
    if l == models.HEATMAP_TASK:
      assert not m
  assert any(m for m, l in zip(jax.tree_util.tree_leaves(moved),
                               jax.tree_util.tree_leaves(labels))
             if l == models.ATTENTION_TASK)


@pytest.mark.slow  # Compiles the network a second time, in bfloat16.
def test_bfloat16_compute_keeps_float32_params():
  model, variables = _tiny()
  bf16 = model.clone(dtype=jnp.bfloat16)
  # What init makes, traced without compiling it.
  bf16_vars = jax.eval_shape(
      lambda r: bf16.init(r, jnp.zeros((1, TINY_INPUT, TINY_INPUT, 3))),
      jax.random.PRNGKey(0))
  for leaf in jax.tree_util.tree_leaves(bf16_vars):
    assert leaf.dtype == jnp.float32
  out16 = jax.jit(bf16.apply)(variables, _images(9))
  out32 = model.apply(variables, _images(9))
  assert out16.predictions.dtype == jnp.float32
  assert np.all(np.isfinite(out16.predictions))
  scale = float(jnp.max(jnp.abs(out32.predictions)))
  assert float(jnp.max(jnp.abs(out16.predictions - out32.predictions))) < (
      0.1 * scale + 1e-3)


@pytest.mark.parametrize("kwargs,images,match", [
    ({}, jnp.zeros((1, 60, 64, 3)), "divisible by 16"),
    ({}, jnp.zeros((1, 64, 64)), "batch, height, width, 3"),
    ({"mask_mode": "hard"}, jnp.zeros((1, 64, 64, 3)), "mask_mode"),
    ({"combine": "sum"}, jnp.zeros((1, 64, 64, 3)), "combine"),
])
def test_bad_inputs_raise_clear_errors(kwargs, images, match):
  model = models.ACNN(**{**TINY, **kwargs})
  with pytest.raises(ValueError, match=match):
    model.init(jax.random.PRNGKey(0), images)
