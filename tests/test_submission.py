"""Tests of the MPII benchmark's submission file (`acnn_jax.submission`) on a
synthetic release with test people, read back with plain scipy the way
MPII's MATLAB toolkit walks it: pred(i).image.name,
pred(i).annorect(r).annopoints.point(k).{x, y, id}.

The set (seed 3, 8 small images, half of them test images) has test images
with one single person among several people (at annorect 3 of 4, or 3 of
3), with a lone person, and with no single person at all, so a prediction
in the wrong slot or a missing image shows.
"""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from acnn_jax import checkpoints
from acnn_jax import errors
from acnn_jax import evaluate
from acnn_jax import submission
from conftest import StandInNetwork
from conftest import tiny_config
from input_pipeline import mpii_builder
from input_pipeline import mpii_json
from input_pipeline import mpii_official
from input_pipeline import synthetic


@pytest.fixture(scope="module")
def release(tmp_path_factory):
  """The synthetic release: (root, RELEASE read by plain scipy)."""
  root = tmp_path_factory.mktemp("submission_set")
  synthetic.generate(str(root / "raw"), 8, seed=3, layout="both",
                     test_fraction=0.5, image_size=(200, 280))
  mat = scipy.io.loadmat(str(root / "raw" / mpii_official.RELEASE_FILE),
                         struct_as_record=False)
  return root, mat["RELEASE"][0, 0]


def _manual_dir(root, layout):
  """One layout's files and the images, in a manual_dir of its own."""
  manual = root / f"manual_{layout}"
  if not manual.exists():
    shutil.copytree(root / "raw" / "images", manual / "images")
    if layout == "official":
      for name in (mpii_official.RELEASE_FILE, mpii_official.VALID_H5_FILE):
        shutil.copy(root / "raw" / name, manual / name)
    else:
      shutil.copytree(root / "raw" / "annot", manual / "annot")
  return manual


@pytest.fixture(scope="module")
def official(release):
  root, _ = release
  return mpii_builder.build(str(_manual_dir(root, "official")),
                            str(root / "tfds_official"))


def _expected(release_struct):
  """{(index, person): (name, objpos)} of the single test people, and the
  test images' (index, name, annorect count), from the release itself."""
  single, images = {}, []
  for i, entry in enumerate(release_struct.annolist[0]):
    if release_struct.img_train[0, i]:
      continue
    name = str(entry.image[0, 0].name[0])
    rects = entry.annorect[0]
    images.append((i, name, len(rects)))
    for p in release_struct.single_person[i, 0].ravel().astype(int) - 1:
      objpos = rects[p].objpos[0, 0]
      single[(i, int(p))] = (name, (float(objpos.x[0, 0]),
                                    float(objpos.y[0, 0])))
  return single, images


def test_the_set_has_the_cases_that_matter(release):
  _, rel = release
  single, images = _expected(rel)
  people = {i: [p for (j, p) in single if j == i] for i, _, _ in images}
  assert any(not p for p in people.values())  # A test image, no single.
  assert any(p and min(p) > 0 for p in people.values())  # Not annorect 1.
  assert any(n > 1 for _, _, n in images)


def _predictions(n):
  """Distinct 0-based joints per row: row r, joint k at (10 r + k, k / 2)."""
  rows = np.arange(n)[:, None] * 10.0 + np.arange(16)[None]
  return np.stack([rows, np.broadcast_to(np.arange(16) / 2.0, rows.shape)],
                  axis=-1)


def test_every_test_person_gets_one_prediction_in_its_slot(
    release, official, tmp_path):
  root, rel = release
  single, images = _expected(rel)
  test = mpii_builder.read_test_split(official)
  n = len(test.people["index"])
  assert n == len(single) >= 3
  path = tmp_path / submission.FILE_NAME
  written = submission.write(str(path), _predictions(n), test.people,
                             test.images)
  assert (written.people, written.images, written.unpredicted) == (
      n, len(images), 0)

  mat = scipy.io.loadmat(str(path), struct_as_record=False)
  pred = mat["pred"]
  assert pred.shape == (1, len(images))  # One entry per test image.
  # The rows of the Python arrays say where each prediction went.
  slots = {(int(i), int(p)): r for r, (i, p) in enumerate(
      zip(mat["index"].ravel(), mat["person"].ravel()))}
  assert set(slots) == set(single)
  filled = 0
  for entry, (index, name, count) in zip(pred[0], images):
    assert str(entry.image[0, 0].name[0]) == name
    rects = entry.annorect
    assert rects.shape == (1, count)  # Every annorect of the release.
    for p, rect in enumerate(rects[0]):
      objpos = rect.objpos[0, 0]  # Kept: the toolkit walks these.
      assert objpos.x.size == 1 and objpos.y.size == 1
      if (index, p) not in single:
        assert rect.annopoints.size == 0
        continue
      assert (float(objpos.x[0, 0]), float(objpos.y[0, 0])) == (
          single[(index, p)][1])
      points = rect.annopoints[0, 0].point
      assert points.shape == (1, 16)
      row = slots[(index, p)]
      want = _predictions(n)[row] + 1.0  # 1-based pixels.
      for k, point in enumerate(points[0]):
        assert int(point.id[0, 0]) == k  # 0-based MPII joint id.
        assert (point.x[0, 0], point.y[0, 0]) == tuple(want[k])
      assert str(mat["image_name"][row, 0][0]) == name
      filled += 1
  assert filled == n
  np.testing.assert_array_equal(mat["preds"], _predictions(n) + 1.0)
  np.testing.assert_allclose(
      mat["center"], [single[pair][1] for pair in zip(
          test.people["index"].tolist(), test.people["person"].tolist())])


def test_validation_people_are_not_in_the_file(release, official, tmp_path):
  root, _ = release
  test = mpii_builder.read_test_split(official)
  path = tmp_path / "pred.mat"
  submission.write(str(path), _predictions(len(test.people["index"])),
                   test.people, test.images)
  mat = scipy.io.loadmat(str(path), struct_as_record=False)
  names = {str(e.image[0, 0].name[0]) for e in mat["pred"][0]}
  pairs = mpii_official.read_valid_h5(
      str(root / "raw" / mpii_official.VALID_H5_FILE))
  valid_images = {str(ex["image_name"].decode()) for ex in
                  tfds.as_numpy(official.as_dataset(
                      split="validation"))}
  assert pairs and valid_images
  assert not names & valid_images
  assert not {i for i, _ in pairs} & set(mat["index"].ravel().tolist())


def test_predict_test_runs_the_test_people_in_order(official, tmp_path):
  """`evaluate.predict_test` (the command's path, without a checkpoint):
  the test split's people through the evaluation pipeline, no PCKh."""
  config = tiny_config("a", eval_batch_size=4)  # 4 people: one full batch.
  loaded = checkpoints.LoadedModel(StandInNetwork(), {"w": jnp.float32(1.0)},
                                   config, True, "unused/1")
  path = tmp_path / "out.mat"
  written = evaluate.predict_test(loaded, official, str(path))
  test = mpii_builder.read_test_split(official)
  assert written.people == len(test.people["index"])
  mat = scipy.io.loadmat(str(path))
  np.testing.assert_array_equal(mat["index"].ravel(), test.people["index"])
  np.testing.assert_array_equal(mat["person"].ravel(), test.people["person"])
  assert mat["preds"].shape == (written.people, 16, 2)
  assert np.isfinite(mat["preds"]).all()
  assert "pred" in mat and "send the file" in submission.describe(written)


def test_json_layout_writes_rows_without_pred(release, tmp_path):
  """HRNet's test.json keeps no release index: the rows, in test.json
  order with what identifies them, and no `pred` the toolkit would take."""
  root, _ = release
  builder = mpii_builder.build(str(_manual_dir(root, "json")),
                               str(root / "tfds_json"))
  test = mpii_builder.read_test_split(builder)
  assert test.images is None and test.layout == "json"
  entries = mpii_json.read_test_json(
      str(root / "raw" / "annot" / "test.json"))
  path = tmp_path / "pred.mat"
  written = submission.write(str(path), _predictions(len(entries)),
                             test.people, test.images)
  assert written.images is None
  assert "No `pred` struct" in submission.describe(written)
  mat = scipy.io.loadmat(str(path))
  assert "pred" not in mat
  assert [str(n[0]) for n in mat["image_name"].ravel()] == [
      e["image"] for e in entries]
  np.testing.assert_allclose(mat["center"],
                             [e["center"] + 1.0 for e in entries])
  np.testing.assert_allclose(mat["scale"].ravel(),
                             [e["scale"] for e in entries], rtol=1e-6)
  assert (mat["index"] == -1).all() and (mat["person"] == -1).all()


def _image(index, name, objpos, single):
  return {"index": index, "name": name, "objpos": objpos,
          "scale": [1.0] * len(objpos), "single_person": single}


def test_annolist_keeps_annorects_without_objpos_and_counts_misses():
  images = [_image(3, "a.jpg", [[5.0, 6.0], None, [7.0, 8.0]], [0, 2]),
            _image(8, "b.jpg", [], [])]
  pred, unpredicted = submission.annolist(
      np.ones((1, 16, 2)), np.array([3]), np.array([2]), images)
  assert unpredicted == 1  # Single person (3, 0) has no row.
  rects = pred[0, 0]["annorect"]
  assert rects.shape == (1, 3)
  assert rects[0, 1]["objpos"].shape == (0, 0)  # As the release has it.
  assert rects[0, 0]["annopoints"].shape == (0, 0)
  assert rects[0, 2]["annopoints"]["point"].shape == (1, 16)
  assert pred[0, 1]["annorect"].shape == (0, 0)  # An image without people.


@pytest.mark.parametrize("index, person, message", [
    ([3, 9], [0, 0], "no annorect"),
    ([3, 3], [0, 0], "twice"),
])
def test_annolist_refuses_rows_the_release_lacks(index, person, message):
  images = [_image(3, "a.jpg", [[5.0, 6.0]], [0])]
  with pytest.raises(errors.InputError, match=message):
    submission.annolist(np.ones((2, 16, 2)), np.array(index),
                        np.array(person), images)


def test_output_path_is_checked_and_replaced(tmp_path):
  with pytest.raises(errors.InputError, match="is a folder"):
    submission.check_output(str(tmp_path))
  # A missing folder is created, as for every output (issue 25)...
  new = tmp_path / "new" / "pred.mat"
  assert submission.check_output(str(new)) == str(new)
  assert os.listdir(new.parent) == []
  # ... unless a file stands in its way.
  new.write_text("a file")
  with pytest.raises(errors.InputError, match="is a file, not a folder"):
    submission.check_output(str(new / "x.mat"))
  new.unlink()
  new.parent.rmdir()
  path = tmp_path / "pred.mat"
  path.write_text("old")
  people = {"image_name": np.array(["x.jpg"], object),
            "index": np.array([-1]), "person": np.array([-1]),
            "center": np.zeros((1, 2)), "scale": np.ones(1)}
  submission.write(str(path), np.zeros((1, 16, 2)), people, None)
  assert scipy.io.loadmat(str(path))["preds"].shape == (1, 16, 2)
  assert os.listdir(tmp_path) == ["pred.mat"]  # No temporary left.
