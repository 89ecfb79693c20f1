"""Tests for input_pipeline.synthetic: the files must look like MPII's own.

The .mat is read here with plain scipy (not the project's reader) and compared
with the nesting of the real release sample in ../shared/mpii, so a reader
written against the real files reads these unchanged.
"""

import filecmp
import json
import os
import pathlib
import subprocess
import sys

import h5py
import numpy as np
from PIL import Image
import pytest
import scipy.io

from acnn_jax import errors
from acnn_jax import mpii
from conftest import PROCESS_TIMEOUT
from input_pipeline import mpii_official
from input_pipeline import synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL = (200, 280)  # Image widths: small keeps the suite fast.
TRAIN_FIELDS = ("x1", "y1", "x2", "y2", "annopoints", "scale", "objpos")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """One small data set in both layouts, shared by the tests below."""
  out = tmp_path_factory.mktemp("synthetic")
  summary = synthetic.generate(str(out), 16, seed=3, layout="both",
                               image_size=SMALL)
  return out, summary


def _release(path, squeeze):
  mat = scipy.io.loadmat(os.path.join(path, mpii_official.RELEASE_FILE),
                         struct_as_record=False, squeeze_me=squeeze)
  return mat["RELEASE"] if squeeze else mat["RELEASE"][0, 0]


def _scalar(value):
  """A number from a 1x1 array, a numpy scalar or a string such as '1'."""
  return float(np.asarray(value).ravel()[0])


def _people(path):
  """{(index, person): (points {id: (x, y)}, rect)} for train images, and
  the image names; read the unsqueezed way, like the MATLAB code."""
  release = _release(path, squeeze=False)
  people, names = {}, []
  for i, entry in enumerate(release.annolist[0]):
    names.append(str(entry.image[0, 0].name[0]))
    if not release.img_train[0, i]:
      continue
    for p, rect in enumerate(entry.annorect[0]):
      points = {}
      if rect.annopoints.size:
        for point in rect.annopoints[0, 0].point[0]:
          points[int(_scalar(point.id))] = (_scalar(point.x),
                                            _scalar(point.y))
      people[(i, p)] = (points, rect)
  return people, names


def _files(path):
  return sorted(str(p.relative_to(path)) for p in path.rglob("*")
                if p.is_file())


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
  runs = {}
  for name, seed in (("a", 5), ("b", 5), ("c", 6)):
    runs[name] = tmp_path / name
    synthetic.generate(str(runs[name]), 3, seed=seed, layout="both",
                       image_size=SMALL)
  files = _files(runs["a"])
  assert files == _files(runs["b"])
  assert "mpii_human_pose_v1_u12_1.mat" in files and "valid.h5" in files
  _, mismatch, errors = filecmp.cmpfiles(runs["a"], runs["b"], files,
                                         shallow=False)
  assert not mismatch and not errors
  images_a = sorted(os.listdir(runs["a"] / "images"))
  images_c = sorted(os.listdir(runs["c"] / "images"))
  assert images_a != images_c


def test_summary_counts(data):
  _, summary = data
  assert summary["images"] == 16
  assert summary["train_images"] + summary["test_images"] == 16
  assert summary["test_images"] >= 1
  assert summary["valid_people"] >= 1
  assert (summary["train_people"] + summary["valid_people"] ==
          summary["annotated_people"])


def test_release_fields_and_nesting(data):
  out, _ = data
  release = _release(out, squeeze=False)
  # The fields the readers use (the release has more: act, video_list...).
  assert release._fieldnames == ["annolist", "img_train", "single_person"]
  n = 16
  assert release.annolist.shape == (1, n)
  assert release.img_train.shape == (1, n)
  entry = release.annolist[0, 0]
  assert entry._fieldnames == ["image", "annorect"]
  name = entry.image[0, 0].name
  assert name.dtype.kind == "U" and len(name[0]) == 13  # '015601864.jpg'

  seen = set()
  for i, entry in enumerate(release.annolist[0]):
    rects = entry.annorect
    assert rects.ndim == 2 and rects.shape[0] == 1
    if not release.img_train[0, i]:
      # Test images: only scale and objpos, no points, no head box.
      assert rects[0, 0]._fieldnames == ["scale", "objpos"]
      seen.add("test")
      continue
    assert tuple(rects[0, 0]._fieldnames) == TRAIN_FIELDS
    for rect in rects[0]:
      if rect.annopoints.size == 0:
        assert rect.annopoints.shape == (0, 0)  # MATLAB's [].
        seen.add("no points")
        continue
      points = rect.annopoints[0, 0].point
      assert points.shape[0] == 1 and 1 <= points.shape[1] <= 16
      if points.shape[1] < 16:
        seen.add("missing joints")
      for point in points[0]:
        flag = point.is_visible
        if flag.dtype.kind == "U":
          assert flag.shape == (1,) and flag[0] in ("0", "1")
          seen.add("string flag")
        elif flag.size == 0:
          seen.add("empty flag")
        else:
          assert flag.shape == (1, 1) and flag[0, 0] in (0, 1)
        assert point.id.dtype == np.uint8 and 0 <= point.id[0, 0] < 16
  assert seen == {"test", "no points", "missing joints", "string flag",
                  "empty flag"}


def test_squeezed_nesting_collapses_like_the_real_release(data,
                                                          shared_mpii):
  out, _ = data
  real = scipy.io.loadmat(shared_mpii / "valid_annolist.mat",
                          struct_as_record=False, squeeze_me=True)
  real_rect = real["annolist"][0].annorect
  real_point = real_rect.annopoints.point[0]
  release = _release(out, squeeze=True)
  annolist, img_train = release.annolist, release.img_train
  assert annolist.shape == (16,)
  kinds = set()
  for i, entry in enumerate(annolist):
    rects = entry.annorect
    if isinstance(rects, np.ndarray):  # Several people: a 1-D object array.
      assert rects.ndim == 1 and len(rects) > 1
      kinds.add("several")
      continue
    # One person collapses to a lone struct, as in the real sample.
    assert type(rects) is type(real_rect)
    kinds.add("single")
    annopoints = getattr(rects, "annopoints", None)  # Absent: test image.
    if annopoints is not None and not isinstance(annopoints, np.ndarray):
      point = np.atleast_1d(rects.annopoints.point)[0]
      assert type(point) is type(real_point)
      assert isinstance(rects.objpos.x, type(real_rect.objpos.x))
      kinds.add("points")
  assert kinds == {"several", "single", "points"}


def test_single_person_lists_the_separated_people(data):
  """RELEASE.single_person as the release has it: an Nx1 cell, per image a
  column of 1-based annorect indices or []; here the people whose objpos is
  at least half the taller one's height from every other person's."""
  out, summary = data
  release = _release(out, squeeze=False)
  cells = release.single_person
  assert cells.dtype == object and cells.shape == (16, 1)
  kinds, test_people = set(), 0
  for i, entry in enumerate(release.annolist[0]):
    rects = entry.annorect[0]
    cell = cells[i, 0]
    if cell.size:
      assert cell.shape == (cell.size, 1) and cell.dtype == np.float64
    single = sorted(int(v) - 1 for v in cell.ravel())
    position = np.array([[_scalar(r.objpos[0, 0].x), _scalar(r.objpos[0, 0].y)]
                         for r in rects])
    height = 200 * np.array([_scalar(r.scale) for r in rects])
    apart = [all(np.linalg.norm(position[p] - position[q]) >=
                 0.5 * max(height[p], height[q])
                 for q in range(len(rects)) if q != p)
             for p in range(len(rects))]
    assert single == [p for p in range(len(rects)) if apart[p]]
    kinds.add("lone" if len(rects) == 1 else
              "crowded, none single" if not single else
              "crowded, some single")
    if not release.img_train[0, i]:
      test_people += len(single)
  assert kinds == {"lone", "crowded, none single", "crowded, some single"}
  assert test_people == summary["test_people"]


def test_test_json_lists_the_single_people_of_the_test_images(tmp_path):
  # Half test images: `data` has only one, without a single person.
  summary = synthetic.generate(str(tmp_path), 8, seed=3, layout="both",
                               image_size=SMALL, test_fraction=0.5)
  out = tmp_path
  release = _release(out, squeeze=False)
  want = []
  for i, entry in enumerate(release.annolist[0]):
    if release.img_train[0, i]:
      continue
    for p in release.single_person[i, 0].ravel().astype(int) - 1:
      rect = entry.annorect[0, p]
      want.append((str(entry.image[0, 0].name[0]),
                   [_scalar(rect.objpos[0, 0].x),
                    _scalar(rect.objpos[0, 0].y)], _scalar(rect.scale)))
  entries = json.loads((out / "annot" / "test.json").read_text())
  assert len(entries) == len(want) == summary["test_people"] >= 3
  for entry, (name, center, scale) in zip(entries, want):
    # HRNet's test.json: no joints, no release indices.
    assert set(entry) == {"image", "center", "scale"}
    assert entry["image"] == name and entry["center"] == center
    assert entry["scale"] == pytest.approx(scale, abs=1e-6)


def test_valid_h5_matches_release(data):
  out, _ = data
  people, names = _people(out)
  with h5py.File(out / "valid.h5", "r") as f:
    h5 = {k: f[k][()] for k in f}
  # The columns the readers use (pose-hg-train's has more: center, scale...).
  assert set(h5) == {"imgname", "index", "person", "part", "normalize"}
  n = len(h5["index"])
  assert n >= 1 and h5["part"].shape == (n, 16, 2)
  pairs = list(zip(h5["index"].astype(int), h5["person"].astype(int)))
  assert pairs == sorted(set(pairs))
  for k, pair in enumerate(pairs):
    points, rect = people[pair]  # A train image's annotated person.
    assert points
    assert h5["imgname"][k].decode() == names[pair[0]]
    for j in range(16):
      expected = np.floor(points[j]) if j in points else (0, 0)
      np.testing.assert_array_equal(h5["part"][k, j], expected)
    x1, y1, x2, y2 = (_scalar(getattr(rect, c)) for c in ("x1", "y1", "x2",
                                                           "y2"))
    np.testing.assert_allclose(h5["normalize"][k],
                               0.6 * np.hypot(x2 - x1, y2 - y1))


def test_head_box_objpos_and_scale_are_mpii_like(data):
  out, _ = data
  people, _ = _people(out)
  checked = 0
  for points, rect in people.values():
    if mpii.UPPER_NECK not in points or mpii.HEAD_TOP not in points:
      continue
    neck, top = np.array(points[mpii.UPPER_NECK]), np.array(
        points[mpii.HEAD_TOP])
    box = np.array([_scalar(getattr(rect, c)) for c in ("x1", "y1", "x2",
                                                         "y2")])
    head = np.linalg.norm(top - neck)
    # A square around the head, centred between upper neck and head top.
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, (neck + top) / 2,
                               atol=1.5)
    np.testing.assert_allclose(box[2:] - box[:2], [head, head],
                               rtol=0.15, atol=1.5)
    # Head length is ~0.15 of the height (scale * 200).
    assert 0.1 < head / (200 * _scalar(rect.scale)) < 0.2
    checked += 1
  assert checked >= 5


def test_json_layout_matches_gt_valid_and_h5(data):
  out, summary = data
  annot = out / "annot"
  valid = json.loads((annot / "valid.json").read_text())
  train = json.loads((annot / "train.json").read_text())
  gt = scipy.io.loadmat(annot / "gt_valid.mat")
  with h5py.File(out / "valid.h5", "r") as f:
    h5_names = [n.decode() for n in f["imgname"][()]]
    h5_normalize = f["normalize"][()]
  n = len(valid)
  assert n == summary["valid_people"] == len(h5_names)
  assert len(train) == summary["train_people"]
  assert gt["pos_gt_src"].shape == (16, 2, n)
  assert gt["jnt_missing"].shape == (16, n)
  assert gt["headboxes_src"].shape == (2, 2, n)
  for k, entry in enumerate(valid):
    assert set(entry) == {"image", "center", "scale", "joints", "joints_vis"}
    assert entry["image"] == h5_names[k]
    joints, vis = np.array(entry["joints"]), np.array(entry["joints_vis"])
    assert joints.shape == (16, 2)
    np.testing.assert_array_equal(vis, 1 - gt["jnt_missing"][:, k])
    np.testing.assert_allclose(joints[vis == 1],
                               gt["pos_gt_src"][:, :, k][vis == 1])
    assert (joints[vis == 0] == -1).all()  # HRNet's placeholder.
    assert (gt["pos_gt_src"][:, :, k][vis == 0] == 0).all()
    (x1, y1), (x2, y2) = gt["headboxes_src"][:, :, k]
    np.testing.assert_allclose(0.6 * np.hypot(x2 - x1, y2 - y1),
                               h5_normalize[k])
  valid_keys = {(e["image"], tuple(e["center"])) for e in valid}
  assert not valid_keys & {(e["image"], tuple(e["center"])) for e in train}


def test_annotated_joints_lie_inside_the_image(data):
  out, _ = data
  people, names = _people(out)
  count = 0
  for (i, _), (points, _) in people.items():
    width, height = Image.open(out / "images" / names[i]).size
    for x, y in points.values():
      assert 1 <= x <= width and 1 <= y <= height
      count += 1
  assert count > 50


def test_left_and_right_limbs_have_different_colours(tmp_path):
  # One person per image, so nobody else covers the forearms.
  synthetic.generate(str(tmp_path), 8, seed=11, image_size=SMALL,
                     test_fraction=0.0, max_people=1)
  people, names = _people(tmp_path)
  warm, cool = [], []  # red - blue at left / right forearm midpoints
  limbs = ((mpii.L_ELBOW, mpii.L_WRIST, warm),
           (mpii.R_ELBOW, mpii.R_WRIST, cool))
  for (i, _), (points, rect) in people.items():
    image = np.asarray(Image.open(tmp_path / "images" / names[i]), float)
    flags = {int(_scalar(p.id)): _scalar(p.is_visible)
             for p in rect.annopoints[0, 0].point[0]
             if p.is_visible.size}
    for a, b, out in limbs:
      if flags.get(a) == 1 and flags.get(b) == 1:
        x, y = (np.array(points[a]) + points[b]) / 2 - 1  # 0-based pixel.
        r, _, blue = image[int(round(y)), int(round(x))]
        out.append(r - blue)
  assert len(warm) >= 3 and len(cool) >= 3
  assert np.mean(np.array(warm) > 40) >= 0.75
  assert np.mean(np.array(cool) < -40) >= 0.75


@pytest.mark.slow
def test_command_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = subprocess.run(
      [sys.executable, "-m", "input_pipeline.synthetic",
       f"--output_dir={tmp_path}", "--num_images=2", "--seed=1",
       "--layout=json"], cwd=tmp_path, env=env, capture_output=True,
      text=True, check=True, timeout=PROCESS_TIMEOUT)
  summary = json.loads(result.stdout.strip().splitlines()[-1])
  assert summary["images"] == 2
  assert (tmp_path / "annot" / "valid.json").is_file()
  assert not (tmp_path / mpii_official.RELEASE_FILE).exists()
  assert len(os.listdir(tmp_path / "images")) == 2


def test_rejects_unknown_layout(tmp_path):
  with pytest.raises(errors.InputError, match="layout"):
    synthetic.generate(str(tmp_path), 1, layout="coco")
