"""End-to-end tests of three-phase training on 2 fake CPU devices (tiny config)."""

import json
import os

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from acnn_jax import checkpoints
from acnn_jax import configuration
from acnn_jax import errors
from acnn_jax import evaluate
from acnn_jax import mask_stats
from acnn_jax import models
from acnn_jax import optimizers
from acnn_jax import parallel
from acnn_jax import phases
from acnn_jax import pckh
from acnn_jax import train
from acnn_jax import train_step
from conftest import TINY_INPUT
from conftest import TRAINED
from conftest import saved_state
from conftest import tiny_config
from conftest import tiny_model
from input_pipeline import pipeline
from input_pipeline import prepare


def _leaves_by_task(tree):
  labels = models.task_labels(tree)
  out = {task: [] for task in models.TASKS}
  for (path, leaf), label in zip(jax.tree_util.tree_leaves_with_path(tree),
                                 jax.tree_util.tree_leaves(labels)):
    out[label].append((jax.tree_util.keystr(path), np.asarray(leaf)))
  return out


def _pairs(got, want):
  """zip of two `_leaves_by_task` lists that hold the same, non-empty
  leaves (so a comparison over the pairs cannot pass on nothing)."""
  assert got and [name for name, _ in got] == [name for name, _ in want]
  return zip(got, want)


def _results(workdir, phase):
  with open(os.path.join(checkpoints.phase_dir(workdir, phase),
                         "eval_results.json")) as f:
    return json.load(f)


@TRAINED
@pytest.mark.slow
def test_each_phase_trains_two_steps_and_writes_its_results(trained_workdir):
  path, tables = trained_workdir
  for phase in "abc":
    out = checkpoints.phase_dir(path, phase)
    results = _results(path, phase)
    assert results["step"] == 2 and results["phase"] == phase
    assert results == tables[phase]  # What train_and_evaluate returned.
    # Every validation person of the synthetic set's valid.h5 was scored.
    with h5py.File(os.path.join(path, "synthetic_mpii", "valid.h5")) as f:
      assert results["num_people"] == len(f["index"]) > 0
    assert os.path.exists(os.path.join(out, "config.json"))
    assert os.listdir(os.path.join(out, "pictures"))
    assert any(f.startswith("events.out") for f in os.listdir(out))
    state, step = saved_state(path, phase)
    assert step == 2 and int(state["step"]) == 2


@TRAINED
@pytest.mark.slow
def test_each_phase_results_are_a_fresh_evaluation_of_its_best_checkpoint(
    trained_workdir):
  """What training wrote down is what evaluating its saved checkpoint gives.

  Two steps leave the tiny network's PCKh at zero, so the tables agree
  trivially; the mask statistics of phases B and C (which move by about
  1e-4 per phase) are what tell checkpoints and code paths apart.
  """
  path, _ = trained_workdir
  for phase in "abc":
    results = _results(path, phase)
    loaded = checkpoints.load_for_inference(
        checkpoints.phase_dir(path, phase), prefer_best=True)
    # One evaluation, at the last step: the best checkpoint is step 2's.
    assert loaded.checkpoint.split(os.sep)[-2:] == ["best", "2"]
    config = loaded.config
    batches = pipeline.create_dataset(
        config, "validation", prepare.prepare_builder(config, path),
        batch_size=configuration.eval_batch_size(config))
    fresh = evaluate.evaluate(
        loaded.model, loaded.variables, batches.as_numpy_iterator(),
        input_size=config.input_size, flip_test=config.flip_test,
        flip_shift=config.flip_shift, masks_to_one=loaded.masks_to_one,
        region_stats=True)
    assert all(np.isfinite(v) for v in fresh.table.values())
    assert {k: results[k] for k in pckh.TABLE_KEYS} == fresh.table, phase
    assert mask_stats.select(results) == pytest.approx(
        fresh.mask_stats, rel=1e-6, abs=1e-9), phase
    assert bool(fresh.mask_stats) == (phase != "a")
  # Which the comparison tells apart: B's masks are not C's.
  assert mask_stats.select(_results(path, "b")) != pytest.approx(
      mask_stats.select(_results(path, "c")), rel=1e-6, abs=1e-9)


@TRAINED
@pytest.mark.slow
def test_each_evaluation_records_where_the_masks_look(trained_workdir):
  path, tables = trained_workdir
  for phase in "abc":
    out = checkpoints.phase_dir(path, phase)
    history = json.load(open(os.path.join(out, "eval_history.json")))
    assert [r["step"] for r in history] == [2] and history[0]["phase"] == phase
    masks = {k for k in tables[phase] if k.startswith("mask/")}
    if phase == "a":  # Masks are exactly one: nothing to measure.
      assert not masks
      continue
    # The tiny config has 2 stacks (one gating mask) on synthetic data;
    # `others` needs another annotated person in a validation image.
    names = {f"mask/stage_1/{s}" for s in mask_stats.STATS}
    assert names - {"mask/stage_1/others"} <= masks <= names
    for key in masks:
      assert 0.0 <= tables[phase][key] <= 1.0
      assert history[0][key] == tables[phase][key]
    assert os.path.exists(os.path.join(out, "masks.png"))
  assert os.path.exists(os.path.join(checkpoints.phase_dir(path, "a"),
                                     "pckh.png"))


@TRAINED
@pytest.mark.slow
def test_phase_a_leaves_attention_at_its_initialisation(trained_workdir):
  path, _ = trained_workdir
  state, _ = saved_state(path, "a")
  config = tiny_config("a")
  init = models.init_variables(models.create_model(config),
                               jax.random.PRNGKey(config.seed),
                               config.input_size)
  for collection in ("params", "batch_stats"):
    got = _leaves_by_task(state[collection])
    want = _leaves_by_task(init[collection])
    for (name, a), (_, b) in _pairs(got[models.ATTENTION_TASK],
                                    want[models.ATTENTION_TASK]):
      np.testing.assert_array_equal(a, b, err_msg=name)
    # And the heatmap network did learn.
    changed = [not np.array_equal(a, b) for (_, a), (_, b) in
               _pairs(got[models.HEATMAP_TASK], want[models.HEATMAP_TASK])]
    assert any(changed)


@TRAINED
@pytest.mark.slow
def test_phase_b_leaves_the_heatmap_network_bit_for_bit(trained_workdir):
  path, _ = trained_workdir
  a, _ = saved_state(path, "a")
  b, _ = saved_state(path, "b")
  for collection in ("params", "batch_stats"):
    got = _leaves_by_task(b[collection])
    want = _leaves_by_task(a[collection])
    for (name, x), (_, y) in _pairs(got[models.HEATMAP_TASK],
                                    want[models.HEATMAP_TASK]):
      assert x.dtype == y.dtype and x.shape == y.shape, name
      assert x.tobytes() == y.tobytes(), f"{collection}{name} moved"
  moved = [not np.array_equal(x, y) for (_, x), (_, y) in
           _pairs(_leaves_by_task(b["params"])[models.ATTENTION_TASK],
                  _leaves_by_task(a["params"])[models.ATTENTION_TASK])]
  assert any(moved)
  # Phase C trains both.
  c, _ = saved_state(path, "c")
  for task in models.TASKS:
    assert any(not np.array_equal(x, y) for (_, x), (_, y) in
               _pairs(_leaves_by_task(c["params"])[task],
                      _leaves_by_task(b["params"])[task]))


def test_phase_b_without_phase_a_says_what_to_run(tmp_path):
  with pytest.raises(errors.MissingError, match="configs/phase_a.py"):
    train.train_and_evaluate(tiny_config("b"), str(tmp_path))


@pytest.mark.parametrize("overrides,match", [
    (dict(batch_size=3), "batch_size=3 is not divisible"),
    (dict(phase="d"), "config.phase"),
    (dict(dtype="float16"), "config.dtype"),
    (dict(input_size=72), "input_size=72"),
    (dict(learning_rate=0.0), "config.learning_rate"),
    (dict(mask_mode="hard"), "mask_mode"),
    (dict(lr_boundaries=(3, 1)), "lr_boundaries"),
])
def test_bad_config_values_are_named(tmp_path, overrides, match):
  with pytest.raises(errors.ConfigError, match=match):
    train.train_and_evaluate(tiny_config("a", **overrides), str(tmp_path))
  assert not os.path.exists(os.path.join(str(tmp_path), "phase_a"))


def test_mask_prior_is_the_weighted_mean_of_the_gating_masks():
  masks = jnp.stack([jnp.full((2, 4, 4, 1), 0.25),
                     jnp.full((2, 4, 4, 1), 0.75),
                     jnp.ones((2, 4, 4, 1))])  # The last gates nothing.
  assert float(train_step.mask_prior(masks, 2.0)) == pytest.approx(1.0)
  assert float(train_step.mask_prior(masks, 0.0)) == 0.0
  assert float(train_step.mask_prior(masks[:1], 2.0)) == 0.0  # One stage.


def _distractor_problem():
  """A tiny ACNN and a batch whose right half is a distractor for stage 2.

  The targets are stage 1's own heatmaps on the right half and stage 2's on
  the left (both of the network run with masks at one). So stage 2 can only
  hurt on the right half, and phase B lowers the loss by discarding it
  there; the images' right halves carry a bright stripe pattern the mask
  head can see.
  """
  model, variables = tiny_model(num_stacks=2)
  rng = np.random.RandomState(0)
  images = rng.uniform(0.0, 0.3, (4, TINY_INPUT, TINY_INPUT, 3))
  images[:, :, TINY_INPUT // 2:, :] += 0.6 * (np.arange(TINY_INPUT // 2) % 4
                                              < 2)[None, None, :, None]
  images = jnp.asarray(images, jnp.float32)
  heatmaps = model.apply(variables, images, masks_to_one=True).heatmaps
  half = heatmaps.shape[3] // 2
  right = np.zeros(heatmaps.shape[2:4], bool)
  right[:, half:] = True
  targets = np.where(right[None, :, :, None], heatmaps[0], heatmaps[1])
  batch = {"image": images, "heatmaps": jnp.asarray(targets),
           "target_weight": jnp.ones((4, 16), jnp.float32)}
  return model, variables, batch, right


@pytest.mark.slow
def test_phase_b_discards_a_distractor_and_keeps_the_heatmap_network():
  """The paper's loss alone (no prior) lowers the mask where stage 2 hurts."""
  model, variables, batch, right = _distractor_problem()
  sparsity = 0.0
  config = tiny_config("b", num_stacks=2, optimizer="adam",
                       learning_rate=0.05, attention_sparsity=sparsity)
  phase = phases.PHASES["b"]
  tx = optimizers.create_optimizer(config, variables["params"],
                                   lambda step: config.learning_rate, phase)
  state = train_step.create_state(variables, tx)
  step_fn = train_step.make(model, tx, phase, lambda step: 0.05, sparsity)
  sharded = parallel.shard(batch)
  losses = []
  for _ in range(20):
    state, metrics = step_fn(state, sharded)
    losses.append(float(jax.block_until_ready(metrics)["loss"]))
  masks = model.apply({"params": state.params,
                       "batch_stats": state.batch_stats},
                      batch["image"]).masks[0, ..., 0]  # M_1: (B, h, w)
  on_distractor = float(masks[:, right].mean())
  elsewhere = float(masks[:, ~right].mean())
  assert losses[-1] < 0.5 * losses[0], losses
  # Masks start at sigmoid(4) = 0.98 everywhere.
  assert on_distractor < 0.2 and elsewhere > 2 * on_distractor, (
      on_distractor, elsewhere)
  for (path, a), b in zip(
      jax.tree_util.tree_leaves_with_path(state.params),
      jax.tree_util.tree_leaves(variables["params"])):
    if models.task_of_path(path) == models.HEATMAP_TASK:
      assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), path
