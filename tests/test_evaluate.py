"""Tests of evaluation: end to end with a stand-in network that knows the
answers, its output files and its command line."""

import dataclasses
import json
import os
import subprocess
import sys

from absl import app
import h5py
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io

from acnn_jax import checkpoints
from acnn_jax import evaluate
from acnn_jax import models
from acnn_jax import pckh
from acnn_jax import submission
from conftest import PROCESS_TIMEOUT
from conftest import StandInNetwork
from conftest import TRAINED
from conftest import counting_programs
from conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# MPII facts written out here, not taken from the code under test
# (docs/design.md sections 3 and 4).
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
MEAN_JOINTS = [j for j in range(16) if j not in (6, 7)]  # Not pelvis, thorax.
# The PCKh table: each column pools its joints (left and right) by count.
POOLS = {"Head": [9], "Shoulder": [12, 13], "Elbow": [11, 14],
         "Wrist": [10, 15], "Hip": [2, 3], "Knee": [1, 4], "Ankle": [0, 5],
         "Mean": MEAN_JOINTS, "Mean@0.1": MEAN_JOINTS,
         "OfficialHead": [8, 9]}  # The official toolkit's head column.
# Crops of the end-to-end evaluation tests: 256 pixels, 64x64 heatmaps.
INPUT_SIZE, HEATMAP_SIZE = 256, 64


def test_pred_mat_is_one_based_and_readable_by_pckh(tmp_path):
  predictions = np.random.default_rng(0).uniform(0, 100, (3, 16, 2))
  result = evaluate.EvalResult(
      table={}, predictions=predictions, confidences=np.ones((3, 16)),
      index=np.arange(3), person=np.zeros(3, int), pictures=[])
  path = str(tmp_path / "pred.mat")
  evaluate.write_pred_mat(path, result)
  np.testing.assert_allclose(pckh.load_predictions(path), predictions + 1.0)


def test_write_results_writes_the_table_and_extras(tmp_path):
  path = str(tmp_path / "eval_results.json")
  evaluate.write_results(path, {"Mean": 50.0}, phase="b", step=7)
  assert json.load(open(path)) == {"Mean": 50.0, "phase": "b", "step": 7}
  assert os.listdir(tmp_path) == ["eval_results.json"]  # No temporary left.


def test_history_keeps_one_record_per_phase_and_step(tmp_path):
  workdir = tmp_path / "run"
  for phase, steps in (("a", (4, 8)), ("c", (4,))):
    directory = checkpoints.phase_dir(str(workdir), phase)
    os.makedirs(directory)
    path = os.path.join(directory, "eval_history.json")
    for step in reversed(steps):
      evaluate.append_history(path, {"phase": phase, "step": step,
                                     "Mean": float(step)})
  path = os.path.join(checkpoints.phase_dir(str(workdir), "a"),
                      "eval_history.json")
  # A resumed run evaluating step 8 again replaces that record.
  evaluate.append_history(path, {"phase": "a", "step": 8, "Mean": 80.0})
  assert [(r["step"], r["Mean"]) for r in evaluate.read_history(path)] == [
      (4, 4.0), (8, 80.0)]
  # Phase B did not run; A's records come before C's.
  history = evaluate.history_across_phases(str(workdir), "c")
  assert [(r["phase"], r["step"]) for r in history] == [
      ("a", 4), ("a", 8), ("c", 4)]
  assert len(evaluate.history_across_phases(str(workdir), "a")) == 2
  assert evaluate.read_history(str(tmp_path / "none.json")) == []


# The Python calls of `_CountingNetwork.apply`: one per trace.
_TRACES = []


@dataclasses.dataclass(frozen=True)
class _CountingNetwork(StandInNetwork):
  """The stand-in network, counting its traces."""

  def apply(self, variables, images, train=False, masks_to_one=False):
    _TRACES.append(images.shape)
    return super().apply(variables, images, train, masks_to_one)


def test_later_evaluations_compile_nothing():
  """A run evaluates every few epochs with an equal model (`clone`d anew
  each time): the second evaluation traces and compiles nothing."""
  rng = np.random.default_rng(0)
  batch = {"image": rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32),
           "center": rng.uniform(50, 60, (4, 2)).astype(np.float32),
           "scale": np.ones(4, np.float32), "mask": np.float32([1, 1, 1, 0]),
           "joints": rng.uniform(0, 100, (4, 16, 2)).astype(np.float32),
           "annotated": np.ones((4, 16), np.float32),
           "head_size": np.full(4, 30.0, np.float32),
           "index": np.arange(4), "person": np.zeros(4, np.int64)}
  variables = {"w": jnp.float32(2.0)}

  def run():
    return evaluate.evaluate(_CountingNetwork(), variables, [batch],
                             input_size=16)

  del _TRACES[:]
  first = run()
  assert _TRACES
  del _TRACES[:]
  with counting_programs() as count:
    second = run()
  assert not _TRACES and count[0] == 0
  assert second.table == first.table
  np.testing.assert_array_equal(second.predictions, first.predictions)


def test_unscored_evaluation_returns_the_same_predictions_only():
  """score=False (the test split, no joints): no PCKh, no mask statistics,
  the predictions of a scored run."""
  rng = np.random.default_rng(1)
  batch = {"image": rng.uniform(0, 1, (2, 16, 16, 3)).astype(np.float32),
           "center": rng.uniform(50, 60, (2, 2)).astype(np.float32),
           "scale": np.ones(2, np.float32), "mask": np.float32([1, 1]),
           "joints": np.zeros((2, 16, 2), np.float32),
           "annotated": np.zeros((2, 16), np.float32),
           "head_size": np.zeros(2, np.float32),
           "index": np.array([4, 7]), "person": np.array([0, 2])}
  variables = {"w": jnp.float32(2.0)}
  unscored = evaluate.evaluate(_CountingNetwork(), variables, [batch],
                               input_size=16, score=False)
  assert unscored.table == {} and unscored.mask_stats == {}
  batch = dict(batch, annotated=np.ones((2, 16), np.float32),
               head_size=np.ones(2, np.float32))
  scored = evaluate.evaluate(_CountingNetwork(), variables, [batch],
                             input_size=16)
  assert scored.table
  np.testing.assert_array_equal(unscored.predictions, scored.predictions)
  np.testing.assert_array_equal(unscored.person, [0, 2])


@pytest.mark.parametrize("split, submission_path, pred_mat, message", [
    ("validation", "s.mat", None, "add --split=test"),
    ("test", None, None, "needs --submission"),
    ("test", "s.mat", "p.mat", "--pred_mat goes with --split=validation"),
])
def test_outputs_must_go_with_the_split(split, submission_path, pred_mat,
                                        message):
  with pytest.raises(app.UsageError, match=message):
    evaluate.check_outputs(split, submission_path, pred_mat)


@pytest.mark.parametrize("split, submission_path, pred_mat", [
    ("validation", None, None), ("validation", None, "p.mat"),
    ("test", "s.mat", None),
])
def test_outputs_that_go_with_the_split(split, submission_path, pred_mat):
  evaluate.check_outputs(split, submission_path, pred_mat)


def _flip_permutation():
  permutation = np.arange(16)
  for right, left in FLIP_PAIRS:
    permutation[right], permutation[left] = left, right
  return permutation


def _to_heatmap(points, centers, scales):
  """Original pixels -> heatmap pixels of the people's crops, by hand.

  A crop of scale s covers 200 s original pixels around its centre and is
  drawn on HEATMAP_SIZE pixels whose centres sit at 0 .. HEATMAP_SIZE - 1, so
  the crop's centre lands on (HEATMAP_SIZE - 1) / 2.
  """
  factor = HEATMAP_SIZE / (200.0 * scales[:, None, None])
  return (points - centers[:, None]) * factor + (HEATMAP_SIZE - 1) / 2.0


def _gaussians(points):
  """(N, K, 2) heatmap points -> (N, h, w, K) Gaussians, peak 1, sigma 1."""
  grid = np.arange(HEATMAP_SIZE, dtype=np.float64)
  dx = grid[None, None, :, None] - points[:, None, None, :, 0]
  dy = grid[None, :, None, None] - points[:, None, None, :, 1]
  return np.exp(-(dx * dx + dy * dy) / 2.0).astype(np.float32)


class _MemorisedNetwork:
  """A stand-in for `models.ACNN` that knows the answer for every crop.

  Shown a crop, it returns the heatmaps stored for the nearest of the crops it
  memorised (a one-stage network without attention masks).
  """
  num_stacks = 1
  attention = False
  num_joints = 16

  def __init__(self, images, heatmaps):
    self._keys = jnp.asarray(images[:, ::8, ::8])
    self._heatmaps = jnp.asarray(heatmaps)

  def clone(self, **unused_fields):
    return self

  def apply(self, variables, images, train=False, masks_to_one=False):
    del variables, train, masks_to_one
    keys = images[:, ::8, ::8]
    distances = jnp.sum((keys[:, None] - self._keys[None]) ** 2,
                        axis=(2, 3, 4))
    heatmaps = self._heatmaps[jnp.argmin(distances, axis=1)][None]
    return models.ACNNOutput(heatmaps=heatmaps, predictions=heatmaps,
                             masks=jnp.ones(heatmaps.shape[:-1] + (1,)))


def _stand_in(people, points):
  """A network whose heatmaps peak at `points` (heatmap pixels) for each
  person's crop, and at their mirror images for the mirrored crop."""
  mirrored = points[:, _flip_permutation()].copy()
  mirrored[..., 0] = HEATMAP_SIZE - 1 - mirrored[..., 0]
  images = np.concatenate([people["image"], people["image"][:, :, ::-1]])
  keys = images[:, ::8, ::8].reshape(len(images), -1)
  gaps = np.linalg.norm(keys[:, None] - keys[None], axis=-1)
  assert (gaps + np.eye(len(images)) > 0).all(), "two crops look the same"
  return _MemorisedNetwork(
      images, _gaussians(np.concatenate([points, mirrored])))


@pytest.fixture(scope="module")
def validation(tiny_mpii):
  """The synthetic set's validation batches at 256 pixels (6 rows, 2 of them
  padding) and its real people, concatenated."""
  from input_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  config = tiny_config("a", input_size=INPUT_SIZE)
  batches = list(pipeline.create_dataset(config, "validation", tiny_mpii,
                                         batch_size=6).as_numpy_iterator())
  people = {key: np.concatenate([b[key][b["mask"] > 0] for b in batches])
            for key in batches[0]}
  assert len(people["index"]) == 4 and len(batches) == 1
  assert sum(len(b["mask"]) for b in batches) > 4  # Padding to drop.
  return batches, people


def _decoding_error_bound(people):
  """How far a decoded joint may lie from the peak of its Gaussian, in
  original pixels.

  The argmax of a Gaussian sampled on the pixel grid is the nearest pixel in
  x and in y (at most 0.5 off per axis); the quarter-pixel step towards the
  higher neighbour then leaves at most 0.25 per axis, 0.25 * sqrt(2) in all,
  for a peak off the border. One heatmap pixel is 200 s / HEATMAP_SIZE
  original pixels.
  """
  return 0.25 * np.sqrt(2.0) * 200.0 * people["scale"] / HEATMAP_SIZE


@pytest.mark.parametrize("flip_test", [False, True])
def test_ground_truth_heatmaps_score_100(validation, flip_test):
  batches, people = validation
  annotated = people["annotated"] > 0
  points = _to_heatmap(people["joints"], people["center"], people["scale"])
  assert ((points[annotated] >= 1) & (points[annotated] <= 62)).all()
  bound = _decoding_error_bound(people)
  # Every decoded joint lies within 0.1 head sizes of the truth, so the whole
  # table, Mean@0.1 included, must be exactly 100.
  assert (bound < 0.1 * people["head_size"]).all(), (bound, people["head_size"])
  result = evaluate.evaluate(_stand_in(people, points), {}, batches,
                             input_size=INPUT_SIZE, flip_test=flip_test)
  assert result.table == {key: 100.0 for key in pckh.TABLE_KEYS}
  np.testing.assert_array_equal(result.index, people["index"])
  np.testing.assert_array_equal(result.person, people["person"])
  errors = np.linalg.norm(result.predictions - people["joints"], axis=-1)
  assert (errors <= 1.001 * bound[:, None])[annotated].all()
  assert result.mask_stats == {}


def test_displaced_heatmaps_lose_exactly_the_displaced_joints(validation):
  batches, people = validation
  annotated = people["annotated"] > 0
  points = _to_heatmap(people["joints"], people["center"], people["scale"])
  towards_middle = np.where(points[..., 0] < (HEATMAP_SIZE - 1) / 2, 1.0,
                            -1.0)
  head = people["head_size"][:, None] * HEATMAP_SIZE / (
      200.0 * people["scale"][:, None])  # Head sizes in heatmap pixels.

  def moved_by(fraction):
    """The joints moved `fraction` head sizes towards the crop's middle."""
    moved = points.copy()
    moved[..., 0] += towards_middle * fraction * head
    assert ((moved[annotated] >= 1) & (moved[annotated] <= 62)).all()
    return moved

  # The decoding error is under 0.1 head sizes (see above), so a joint moved
  # 0.75 head sizes is wrong at both thresholds, one moved 0.3 head sizes
  # is right at 0.5 and wrong at 0.1.
  assert (_decoding_error_bound(people) < 0.1 * people["head_size"]).all()
  far, near = moved_by(0.75), moved_by(0.3)

  result = evaluate.evaluate(_stand_in(people, far), {}, batches,
                             input_size=INPUT_SIZE)
  assert result.table == {key: 0.0 for key in pckh.TABLE_KEYS}

  # A fixed random third of the joints stays, a third moves near, a third
  # far: each column counts the joints of its pool that are right, out of
  # the pool's annotated joints.
  draw = np.random.default_rng(0).uniform(size=annotated.shape)
  stayed, moved_near = draw < 1 / 3, (draw >= 1 / 3) & (draw < 2 / 3)
  points_drawn = np.where(stayed[..., None], points,
                          np.where(moved_near[..., None], near, far))
  result = evaluate.evaluate(_stand_in(people, points_drawn), {}, batches,
                             input_size=INPUT_SIZE)
  right = (stayed | moved_near) & annotated
  want = {key: 100.0 * right[:, joints].sum() / annotated[:, joints].sum()
          for key, joints in POOLS.items()}
  want["Mean@0.1"] = 100.0 * (stayed & annotated)[:, MEAN_JOINTS].sum() / (
      annotated[:, MEAN_JOINTS].sum())
  assert 0 < want["Mean@0.1"] < want["Mean"] < 100, want
  assert len(set(want.values())) > 5, want
  assert result.table == pytest.approx(want, abs=1e-9)


def _printed_table(stdout):
  """The PCKh table that `pckh.format_table` printed: the line of values
  under the line of column names."""
  lines = stdout.splitlines()
  for names, values in zip(lines, lines[1:]):
    if names.split() == list(pckh.TABLE_KEYS):
      return dict(zip(names.split(), map(float, values.split())))
  raise AssertionError(f"no PCKh table in {stdout!r}")


def _printed_mask_stats(stdout):
  """'Mask M1: kept 0.981, person 0.990' lines -> {'mask/stage_1/kept': ...}."""
  stats = {}
  for line in stdout.splitlines():
    if line.startswith("Mask M"):
      stage, values = line[len("Mask M"):].split(":", 1)
      for item in values.split(","):
        name, value = item.split()
        stats[f"mask/stage_{stage}/{name}"] = float(value)
  return stats


def _evaluate_best(workdir, phase):
  """`evaluate.evaluate` of a phase's best checkpoint, in this process."""
  # pylint: disable=g-import-not-at-top
  from acnn_jax import configuration
  from input_pipeline import pipeline
  from input_pipeline import prepare
  # pylint: enable=g-import-not-at-top
  loaded = checkpoints.load_for_inference(
      checkpoints.phase_dir(workdir, phase), prefer_best=True)
  config = loaded.config
  batches = pipeline.create_dataset(
      config, "validation", prepare.prepare_builder(config, workdir),
      batch_size=configuration.eval_batch_size(config))
  return evaluate.evaluate(
      loaded.model, loaded.variables, batches.as_numpy_iterator(),
      input_size=config.input_size, flip_test=config.flip_test,
      flip_shift=config.flip_shift, masks_to_one=loaded.masks_to_one)


@TRAINED
@pytest.mark.slow
def test_cli_evaluates_a_workdir_and_writes_pred_mat(trained_workdir,
                                                     tmp_path):
  path, _ = trained_workdir
  env = {**os.environ, "XLA_FLAGS": "", "PYTHONPATH": REPO}
  out = subprocess.run(
      [sys.executable, "-m", "acnn_jax.evaluate", f"--workdir={path}",
       "--phase=c", "--config=configs/tiny.py:c",
       f"--pred_mat={tmp_path / 'pred.mat'}"],
      capture_output=True, text=True, env=env, cwd=REPO,
      timeout=PROCESS_TIMEOUT)
  assert out.returncode == 0, out.stderr[-2000:]
  # What it prints is phase C's evaluation of its best checkpoint (its only
  # evaluation, at the last step), which training wrote down.
  with open(os.path.join(checkpoints.phase_dir(path, "c"),
                         "eval_results.json")) as f:
    results = json.load(f)
  printed = _printed_table(out.stdout)
  assert printed.keys() == set(pckh.TABLE_KEYS)
  for key, value in printed.items():
    assert value == pytest.approx(results[key], abs=0.005), key
  masks = {k: v for k, v in results.items() if k.startswith("mask/")}
  assert masks and _printed_mask_stats(out.stdout) == pytest.approx(
      masks, abs=0.00051)
  # pred.mat is scored by the PCKh tool against the synthetic set's own
  # ground truth (pose-hg-train's valid.h5, 1-based) to the same table ...
  pred_mat = str(tmp_path / "pred.mat")
  valid_h5 = os.path.join(path, "synthetic_mpii", "valid.h5")
  scored = pckh.evaluate_files(valid_h5, pred_mat)
  assert scored == pytest.approx(
      {k: results[k] for k in pckh.TABLE_KEYS}, abs=1e-9)
  # ... its rows are valid.h5's people in order, and they are this process's
  # predictions of the same checkpoint, shifted to 1-based pixels. (Two
  # training steps leave every PCKh at 0, so the tables above agree
  # trivially; the mask statistics and these coordinates are the sharp
  # checks.)
  mat = scipy.io.loadmat(pred_mat)
  with h5py.File(valid_h5, "r") as f:
    np.testing.assert_array_equal(mat["index"].ravel(), f["index"][:])
    np.testing.assert_array_equal(mat["person"].ravel(), f["person"][:])
  fresh = _evaluate_best(path, "c")
  np.testing.assert_allclose(mat["preds"], fresh.predictions + 1.0,
                             atol=1e-4)


def _release_test_people(release_path):
  """{(index, person): image name} of the single people of the test images,
  and the number of test images, read with plain scipy."""
  rel = scipy.io.loadmat(release_path, struct_as_record=False)["RELEASE"]
  rel = rel[0, 0]
  people, images = {}, 0
  for i, entry in enumerate(rel.annolist[0]):
    if rel.img_train[0, i]:
      continue
    images += 1
    for p in rel.single_person[i, 0].ravel().astype(int) - 1:
      people[(i, int(p))] = str(entry.image[0, 0].name[0])
  return people, images


@TRAINED
@pytest.mark.slow
def test_cli_writes_the_test_submission(trained_workdir, tmp_path):
  path, _ = trained_workdir
  env = {**os.environ, "XLA_FLAGS": "", "PYTHONPATH": REPO}
  target = tmp_path / submission.FILE_NAME
  command = [sys.executable, "-m", "acnn_jax.evaluate", f"--workdir={path}",
             f"--submission={target}"]
  # Without --split=test: refused before any work, in one line.
  wrong = subprocess.run(command, capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=PROCESS_TIMEOUT)
  assert wrong.returncode == 2, wrong.stderr[-2000:]
  errors_printed = [line for line in wrong.stderr.splitlines()
                    if "evaluate: error:" in line]
  assert len(errors_printed) == 1 and "--split=test" in errors_printed[0]
  assert not target.exists()

  out = subprocess.run(
      command + ["--phase=c", "--config=configs/tiny.py:c", "--split=test"],
      capture_output=True, text=True, env=env, cwd=REPO,
      timeout=PROCESS_TIMEOUT)
  assert out.returncode == 0, out.stderr[-2000:]
  people, num_images = _release_test_people(os.path.join(
      path, "synthetic_mpii", "mpii_human_pose_v1_u12_1.mat"))
  assert people and f"Predicted {len(people)} test people" in out.stdout
  assert str(target) in out.stdout
  assert "Mean" not in out.stdout  # No PCKh without ground truth.
  mat = scipy.io.loadmat(str(target), struct_as_record=False)
  rows = {(int(i), int(p)): r for r, (i, p) in enumerate(
      zip(mat["index"].ravel(), mat["person"].ravel()))}
  assert set(rows) == set(people)
  assert mat["pred"].shape == (1, num_images)
  filled = 0
  for entry in mat["pred"][0]:
    name = str(entry.image[0, 0].name[0])
    for p, rect in enumerate(entry.annorect.ravel()):
      pair = next((k for k, v in people.items() if v == name and k[1] == p),
                  None)
      if pair is None:
        assert rect.annopoints.size == 0
        continue
      points = rect.annopoints[0, 0].point[0]
      got = np.array([[pt.x[0, 0], pt.y[0, 0]] for pt in points])
      assert [int(pt.id[0, 0]) for pt in points] == list(range(16))
      np.testing.assert_array_equal(got, mat["preds"][rows[pair]])
      filled += 1
  assert filled == len(people)
  # The same predictions as this process makes of the same checkpoint.
  # pylint: disable=g-import-not-at-top
  from input_pipeline import prepare
  # pylint: enable=g-import-not-at-top
  loaded = checkpoints.load_for_inference(
      checkpoints.phase_dir(path, "c"), prefer_best=True,
      config=tiny_config("c"))
  fresh = tmp_path / "fresh.mat"
  evaluate.predict_test(loaded, prepare.prepare_builder(loaded.config, path),
                        str(fresh))
  np.testing.assert_allclose(mat["preds"],
                             scipy.io.loadmat(str(fresh))["preds"],
                             atol=1e-4)
