"""Tests of the official MPII release reader and pose-hg-train's valid.h5.

The real-data tests use ../shared/mpii (the `shared_mpii` fixture skips without
it): `valid_annolist.mat` is the official `annorect` nesting of the 2958
validation people, `gt_valid.mat` their ground truth as the evaluation sees it.
"""

import h5py
import numpy as np
import pytest
import scipy.io

from acnn_jax import errors
from acnn_jax import mpii
from input_pipeline import mpii_json
from input_pipeline import mpii_official

# gt_valid.mat holds 0 for these (person, joint, coordinate) of annotated
# joints, where the annotation (valid_annolist.mat and valid.h5 agree) has a
# real value. A quirk of the file the published PCKh numbers were computed on.
GT_VALID_ZEROS = {
    (682, 0, 0), (786, 5, 0), (1081, 9, 1), (1897, 11, 0), (2636, 9, 1),
    (2739, 0, 0), (2763, 0, 0), (2763, 0, 1), (2763, 1, 0), (2763, 1, 1),
    (2763, 4, 0), (2763, 4, 1), (2763, 5, 0), (2763, 5, 1), (2775, 9, 1),
    (2897, 9, 1), (2921, 9, 1),
}


# ------------------------------------------------- handmade MATLAB nesting --


def _empty():
  return np.zeros((0, 0))


def _struct_array(items, shape=None):
  """A MATLAB struct array (numpy structured, object fields) from dicts."""
  names = []
  for item in items:
    names += [k for k in item if k not in names]
  array = np.empty(shape or (1, len(items)), dtype=[(n, "O") for n in names])
  for flat, item in enumerate(items):
    for name in names:
      array.flat[flat][name] = item.get(name, _empty())
  return array


def _point(joint_id, x, y, visible):
  return {"id": np.uint8(joint_id), "x": x, "y": y, "is_visible": visible}


def _handmade_release(path):
  """Writes a RELEASE with every awkward case; returns the expected people."""
  # Image 0: person 0 has 16 points, coordinates as MPII's uint16, visibility
  # as a number, a string and []; person 1 has no annopoints at all.
  points = [_point(j, np.uint16(100 + j), np.uint16(200 + j),
                   [np.uint8(1), "0", _empty()][j % 3]) for j in range(16)]
  person0 = {"x1": np.uint16(10), "y1": np.uint16(20), "x2": np.uint16(30),
             "y2": np.uint16(50),
             "annopoints": _struct_array([{"point": _struct_array(points)}]),
             "scale": 2.5, "objpos": _struct_array([{"x": np.uint16(120),
                                                      "y": np.uint16(230)}])}
  person1 = {"scale": 1.0, "objpos": _struct_array([{"x": 5, "y": 6}])}
  # Image 3: a single point stored as a lone 1x1 struct, visibility '1'.
  lone = {"annopoints": _struct_array(
      [{"point": _struct_array([_point(9, 7.5, 8.5, "1")])}]),
          "scale": 1.5, "objpos": _struct_array([{"x": 9, "y": 9}]),
          "x1": 1, "y1": 2, "x2": 3, "y2": 4}
  annolist = _struct_array([
      {"image": _struct_array([{"name": "a.jpg"}]),
       "annorect": _struct_array([person0, person1])},
      {"image": _struct_array([{"name": "b.jpg"}]), "annorect": _empty()},
      {"image": _struct_array([{"name": "test.jpg"}]),
       "annorect": _struct_array([{"scale": 3.0, "objpos": _struct_array(
           [{"x": 50, "y": 50}])}])},
      {"image": _struct_array([{"name": "d.jpg"}]),
       "annorect": _struct_array([lone])},
  ])
  release = _struct_array([{"annolist": annolist,
                            "img_train": np.array([[1, 1, 0, 1]], np.uint8)}])
  scipy.io.savemat(path, {"RELEASE": release})


def _check_handmade(records):
  assert [(r["image"], r["index"], r["person"]) for r in records] == [
      ("a.jpg", 0, 0), ("d.jpg", 3, 0)]
  full, lone = records
  np.testing.assert_array_equal(
      full["joints"], np.stack([np.arange(16) + 99, np.arange(16) + 199], 1))
  assert full["joints"].dtype == np.float32
  assert full["annotated"].all()
  np.testing.assert_array_equal(full["visible"], [[1, 0, -1][j % 3]
                                                  for j in range(16)])
  np.testing.assert_array_equal(full["center"], [119, 229])
  np.testing.assert_allclose(full["scale"], 2.5)
  np.testing.assert_array_equal(full["head_box"], [9, 19, 29, 49])
  assert lone["annotated"].sum() == 1 and lone["annotated"][mpii.HEAD_TOP]
  np.testing.assert_allclose(lone["joints"][mpii.HEAD_TOP], [6.5, 7.5])
  assert lone["visible"][mpii.HEAD_TOP] == 1
  assert (lone["visible"][~lone["annotated"]] == -1).all()
  assert (lone["joints"][~lone["annotated"]] == 0).all()


def test_release_reader_handles_matlab_nesting(tmp_path):
  path = str(tmp_path / mpii_official.RELEASE_FILE)
  _handmade_release(path)
  _check_handmade(mpii_official.read_release(path))


def test_release_reader_counts_people_without_points(tmp_path):
  path = str(tmp_path / mpii_official.RELEASE_FILE)
  _handmade_release(path)
  records = mpii_official.read_release(path, include_unannotated=True)
  assert [(r["index"], r["person"]) for r in records] == [(0, 0), (0, 1),
                                                          (3, 0)]
  assert not records[1]["annotated"].any()
  np.testing.assert_array_equal(records[1]["center"], [4, 5])


def test_parser_accepts_squeezed_and_mat_struct_loading(tmp_path):
  path = str(tmp_path / mpii_official.RELEASE_FILE)
  _handmade_release(path)
  for kwargs in ({"squeeze_me": True},
                 {"squeeze_me": True, "struct_as_record": False},
                 {"struct_as_record": False}):
    release = mpii_official.structs(scipy.io.loadmat(path, **kwargs)[
        "RELEASE"])[0]
    records = mpii_official.parse_annolist(
        mpii_official.field(release, "annolist"),
        img_train=np.ravel(mpii_official.field(release, "img_train")))
    _check_handmade(records)


def test_number_reads_matlab_scalars():
  number = mpii_official.number
  assert number(np.array([[3]], np.uint8)) == 3.0
  assert number(np.array(["1"])) == 1.0
  assert number(np.array([[np.array(["0"])]], object)) == 0.0
  assert number(np.zeros((0, 0))) is None
  assert number(np.array([1, 2])) is None
  assert number("") is None
  assert number(b"1") == 1.0
  # uint8 must not wrap when converted: 0 - 1 is -1, not 255.
  assert number(np.array([[0]], np.uint8)) - 1 == -1.0


def test_release_without_release_struct_is_an_error(tmp_path):
  path = str(tmp_path / "other.mat")
  scipy.io.savemat(path, {"x": 1})
  with pytest.raises(errors.InputError, match="RELEASE"):
    mpii_official.read_release(path)


# ------------------------------------------------------ real MPII samples --


@pytest.fixture(scope="module")
def gt_valid(shared_mpii):
  return mpii_json.read_gt_valid(str(shared_mpii / "gt_valid.mat"))


def test_valid_annolist_parses_every_validation_person(valid_annolist):
  _, records = valid_annolist
  assert len(records) == 2958
  assert all(r["annotated"].any() for r in records)


def test_valid_annolist_joints_match_gt_valid(valid_annolist, gt_valid):
  _, records = valid_annolist
  joints = np.stack([r["joints"] for r in records]) + 1.0  # 1-based.
  annotated = np.stack([r["annotated"] for r in records])
  np.testing.assert_array_equal(annotated, gt_valid.annotated)
  gt = gt_valid.joints
  zeros = {tuple(i) for i in np.argwhere((gt == 0) & annotated[..., None])}
  assert zeros == GT_VALID_ZEROS
  compare = annotated[..., None] & (gt != 0)
  np.testing.assert_allclose(joints[compare], gt[compare], atol=1e-3)
  assert (joints[~annotated] == 1.0).all()  # 0 in the 0-based record.


def test_valid_annolist_head_boxes_match_gt_valid(valid_annolist, gt_valid):
  _, records = valid_annolist
  boxes = np.stack([r["head_box"] for r in records])
  np.testing.assert_allclose(boxes, gt_valid.head_boxes - 1.0, atol=1e-3)


def test_valid_annolist_center_scale_visible_match_valid_h5(
    valid_annolist, shared_mpii):
  _, records = valid_annolist
  with h5py.File(shared_mpii / "valid.h5", "r") as f:
    center, scale = f["center"][:], f["scale"][:]
    visible = f["visible"][:]
  ours = np.stack([r["center"] for r in records])
  ours_scale = np.array([r["scale"] for r in records])
  # valid.h5 is 1-based, moved down by 15 * scale and scaled by 1.25.
  np.testing.assert_allclose(ours + 1.0 + np.stack(
      [0 * ours_scale, 15 * ours_scale], 1), center, atol=1e-3)
  np.testing.assert_allclose(1.25 * ours_scale, scale, rtol=1e-5)
  flags = np.stack([r["visible"] for r in records])
  known = flags >= 0
  assert known.sum() > 0.75 * flags.size
  np.testing.assert_array_equal(flags[known], visible[known])


def test_read_valid_h5_pairs(shared_mpii, valid_annolist):
  mat, _ = valid_annolist
  pairs = mpii_official.read_valid_h5(str(shared_mpii / "valid.h5"))
  assert len(pairs) == 2958
  assert pairs[0] == (6, 0)
  expected = list(zip(mat["RELEASE_img_index"].ravel().astype(int) - 1,
                      mat["RELEASE_person_index"].ravel().astype(int) - 1))
  assert pairs == expected
  names = mpii_official.read_valid_h5_image_names(
      str(shared_mpii / "valid.h5"))
  assert names == (shared_mpii / "valid_images.txt").read_text().split()


def _record(index, person):
  return mpii_official.make_record(
      image=f"{index}.jpg", index=index, person=person,
      joints=np.ones((16, 2)), annotated=np.ones(16), visible=np.ones(16),
      center=(1, 1), scale=1.0, head_box=(0, 0, 1, 1))


def test_split_records_by_valid_pairs():
  records = [_record(0, 0), _record(0, 1), _record(1, 0), _record(2, 0)]
  split = mpii_official.split_records(records, [(2, 0), (0, 1), (5, 5)])
  pairs = lambda rs: [(r["index"], r["person"]) for r in rs]
  # Validation in valid.h5 order; the other person of image 0 stays in train.
  assert pairs(split.validation) == [(2, 0), (0, 1)]
  assert pairs(split.train) == [(0, 0), (1, 0)]
  assert split.missing == [(5, 5)]


def test_make_record_zeroes_unannotated_joints():
  annotated = np.arange(16) % 2 == 0
  record = mpii_official.make_record(
      image="x.jpg", index=1, person=2, joints=np.full((16, 2), -2.0),
      annotated=annotated, visible=np.ones(16), center=(3, 4), scale=2,
      head_box=(1, 2, 3, 4))
  assert (record["joints"][~annotated] == 0).all()
  assert (record["visible"][~annotated] == -1).all()
  assert record["joints"].dtype == np.float32
  assert record["visible"].dtype == np.int32
  assert record["annotated"].dtype == bool
