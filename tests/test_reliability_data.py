"""Damaged MPII files end in one error that says what, where and how to fix.

Every file a user can put in `manual_dir` is damaged here the ways files get
damaged (cut short, another kind of file, a field missing or of the wrong
type, columns that disagree), on a tiny synthetic data set written in MPII's
own formats. Each must end in an `errors.InputError` (or `MissingError`) that
names the file and the entry, and says where to get a good copy, never in a
raw KeyError, h5py or scipy error, or TFDS's "No examples were yielded".
Damaged *people* are not errors: the builder skips and counts them
(tests/test_mpii_builder.py).
"""

import collections
import json
import os
import shutil

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from acnn_jax import errors
from input_pipeline import mpii_builder
from input_pipeline import mpii_json
from input_pipeline import mpii_layouts
from input_pipeline import mpii_official
from input_pipeline import prepare
from input_pipeline import synthetic
from conftest import tiny_config

RELEASE_FIX = "mpii_human_pose_v1_u12_2.zip again"
VALID_H5_FIX = "pose-hg-train again"
JSON_FIX = "HRNet's data/mpii/annot/"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """8 synthetic images in both layouts; valid.h5 holds (0, 0), (2, 1),
  (2, 2), (3, 1), (6, 3): images 2, 3 and 6 have training people too."""
  root = str(tmp_path_factory.mktemp("source"))
  synthetic.generate(root, 8, seed=0, layout="both", valid_fraction=0.5)
  return root


def _copy(source, tmp_path, *names):
  """Copies files of `source` into tmp_path; the path of the last one."""
  for name in names:
    os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
    shutil.copy(os.path.join(source, name), tmp_path / name)
  return str(tmp_path / names[-1])


def _manual_dir(source, tmp_path, layout):
  manual = tmp_path / "manual"
  shutil.copytree(os.path.join(source, "images"), manual / "images")
  names = ((mpii_official.RELEASE_FILE, mpii_official.VALID_H5_FILE)
           if layout == "official" else
           ("annot/train.json", "annot/valid.json", "annot/gt_valid.mat"))
  _copy(source, manual, *names)
  return manual


def _raises(function, *needles, error=errors.InputError):
  """Calls `function`; asserts it raises `error` whose message has each
  needle, and returns the message."""
  with pytest.raises(error) as caught:
    function()
  message = str(caught.value)
  for needle in needles:
    assert needle in message, (needle, message)
  return message


def _cut(path, keep):
  """Keeps the first `keep` (a fraction) of the file's bytes."""
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:int(len(data) * keep)])


# ------------------------------------------------------- the release .mat --


@pytest.mark.parametrize("damage", ["half", "text", "empty"])
def test_unreadable_release_mat_is_named(source, tmp_path, damage):
  path = _copy(source, tmp_path, mpii_official.RELEASE_FILE)
  if damage == "text":
    with open(path, "w") as f:
      f.write("RELEASE = load('mpii.mat');\n" * 20)
  else:
    _cut(path, 0.5 if damage == "half" else 0)
  _raises(lambda: mpii_official.read_release(path), path,
          "not a readable MATLAB .mat file", RELEASE_FIX)


def test_matlab_v73_release_is_refused_by_name(tmp_path):
  path = str(tmp_path / mpii_official.RELEASE_FILE)
  # MATLAB's v7.3: an HDF5 file behind a 512-byte MATLAB header.
  with h5py.File(path, "w", userblock_size=512) as f:
    f.create_group("RELEASE").create_dataset("img_train", data=[1.0])
  with open(path, "r+b") as f:
    f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64")
  _raises(lambda: mpii_official.read_release(path), path, "v7.3",
          "save(..., '-v7')", RELEASE_FIX)


@pytest.mark.parametrize("release,needle", [
    (None, "has no RELEASE struct"),
    (3.0, "RELEASE must be one struct, got a 1x1 float64"),
    ("annolist", "RELEASE must be one struct, got a 1 char"),
])
def test_release_variable_of_the_wrong_kind(tmp_path, release, needle):
  path = str(tmp_path / mpii_official.RELEASE_FILE)
  scipy.io.savemat(path, {"x": 1} if release is None else
                   {"RELEASE": release})
  _raises(lambda: mpii_official.read_release(path), path, needle,
          RELEASE_FIX)


@pytest.mark.parametrize("change,needle", [
    ("no annolist", "RELEASE.annolist is missing"),
    ("number annolist", "RELEASE.annolist is missing or not a struct"),
    ("no img_train", "RELEASE.img_train must hold one 0/1 flag per annolist "
                     "entry (8), got nothing"),
    ("short img_train", "RELEASE.img_train must hold one 0/1 flag"),
])
def test_release_struct_without_its_fields(source, tmp_path, change, needle):
  path = _copy(source, tmp_path, mpii_official.RELEASE_FILE)
  release = scipy.io.loadmat(path)["RELEASE"]
  names = [n for n in release.dtype.names if change != f"no {n}"]
  new = np.empty((1, 1), [(n, object) for n in names])
  for n in names:
    new[n][0, 0] = release[n][0, 0]
  if change == "number annolist":
    new["annolist"][0, 0] = np.array([[7.0]])
  elif change == "short img_train":
    new["img_train"][0, 0] = release["img_train"][0, 0][:, :3]
  scipy.io.savemat(path, {"RELEASE": new})
  _raises(lambda: mpii_official.read_release(path), path, needle,
          RELEASE_FIX)


def test_absent_release_file_is_a_missing_error(tmp_path):
  path = str(tmp_path / mpii_official.RELEASE_FILE)
  _raises(lambda: mpii_official.read_release(path), path, "does not exist",
          RELEASE_FIX, error=errors.MissingError)


# ---------------------------------------------------------------- valid.h5 --


def _replace(f, key, value):
  del f[key]
  f.create_dataset(key, data=value)


@pytest.mark.parametrize("damage,needle", [
    ("half", "it looks truncated or damaged"),
    ("text", "neither HDF5 nor a MATLAB .mat file"),
    ("empty", "neither HDF5 nor a MATLAB .mat file"),
    ("no index", "has no 'index' dataset"),
    ("no person", "has no 'person' dataset"),
    ("short person", "its columns differ in length"),
    ("short imgname", "its columns differ in length"),
    ("text person", "'person' must hold numbers"),
    ("nan index", "row 1 (0-based) holds nan"),
    ("negative person", "row 1 (0-based) holds -1"),
    ("fraction index", "row 1 (0-based) holds 2.5"),
])
def test_damaged_valid_h5_is_named(source, tmp_path, damage, needle):
  path = _copy(source, tmp_path, mpii_official.VALID_H5_FILE)
  if damage in ("half", "empty"):
    _cut(path, 0.5 if damage == "half" else 0)
  elif damage == "text":
    with open(path, "w") as f:
      f.write("index,person\n0,0\n")
  else:
    with h5py.File(path, "r+") as f:
      kind, key = damage.split()
      column = f[key][:]
      if kind == "no":
        del f[key]
      elif kind == "short":
        _replace(f, key, column[:-1])
      elif kind == "text":
        _replace(f, key, np.array([b"first"] * len(column)))
      else:
        column[1] = {"nan": np.nan, "negative": -1, "fraction": 2.5}[kind]
        _replace(f, key, column)
  _raises(lambda: mpii_official.read_valid_h5(path), path, needle,
          VALID_H5_FIX)


# ----------------------------------------------------------- the JSON files --


def _entry_edit(key, value):
  def edit(entries):
    if value is KeyError:
      del entries[1][key]
    else:
      entries[1][key] = value
    return entries
  return edit


@pytest.mark.parametrize("edit,needle", [
    (_entry_edit("joints", KeyError), ".json, entry 1 ("),  # And its image.
    (_entry_edit("joints", KeyError), "the entry lacks joints"),
    (_entry_edit("center", KeyError), "lacks center"),
    (_entry_edit("scale", KeyError), "lacks scale"),
    (_entry_edit("image", KeyError), "entry 1: the entry lacks image"),
    (_entry_edit("joints", [[1.0, 2.0]] * 15), "'joints' must be numbers of "
     "shape (16, 2)"),
    (_entry_edit("joints", [[1.0, 2.0, 3.0]] * 16), "'joints' must be"),
    (_entry_edit("joints", [[1.0, 2.0]] * 15 + [[1.0]]), "'joints' must be"),
    (_entry_edit("center", ["100", "200"]), "'center' must be numbers"),
    (_entry_edit("scale", "1.5"), "'scale' must be numbers"),
    (_entry_edit("joints_vis", [1] * 15), "'joints_vis' must be"),
    (_entry_edit("image", 7), "'image' must be a file name"),
    (lambda entries: entries[:1] + ["000001163.jpg"], "entry 1: an entry "
     "must be an object"),
    (lambda entries: {"annolist": entries}, "holds a JSON dict where a "
     "list of people is expected"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_json_entry_is_named(source, tmp_path, edit, needle):
  path = _copy(source, tmp_path, "annot/train.json")
  with open(path) as f:
    entries = json.load(f)
  with open(path, "w") as f:
    json.dump(edit(entries), f)
  _raises(lambda: mpii_json.read_json(path), path, needle, JSON_FIX)


@pytest.mark.parametrize("damage", ["half", "text", "empty"])
def test_json_file_that_is_not_json_is_named(source, tmp_path, damage):
  path = _copy(source, tmp_path, "annot/valid.json")
  if damage == "text":
    with open(path, "wb") as f:
      f.write(b"\xff\xd8\xff\xe0 a JPEG, not JSON")
  else:
    _cut(path, 0.5 if damage == "half" else 0)
  _raises(lambda: mpii_json.read_json(path), path, "is not a whole JSON "
          "file", JSON_FIX)


def test_json_nulls_and_nans_are_people_to_skip(source, tmp_path):
  # A missing number is one bad person, which the builder skips and counts
  # (nan_coordinates), not a damaged file.
  path = _copy(source, tmp_path, "annot/train.json")
  with open(path) as f:
    entries = json.load(f)
  entries[0]["joints"][0] = [None, 5.0]
  entries[0]["joints_vis"][0] = 1
  entries[1]["scale"] = None
  entries[2]["center"] = [float("nan"), 3.0]
  with open(path, "w") as f:
    json.dump(entries, f)
  records = mpii_json.read_json(path)
  assert [mpii_builder.validate_record(r) for r in records[:3]] == [
      mpii_builder.NAN] * 3


# ------------------------------------------------------------ gt_valid.mat --


@pytest.mark.parametrize("damage,needle", [
    ("half", "neither HDF5 nor a MATLAB .mat file"),
    ("hdf5 half", "it looks truncated or damaged"),
    ("no headboxes_src", "lacks ['headboxes_src']"),
    ("short jnt_missing", "jnt_missing must be (16, 5)"),
    ("text pos_gt_src", "pos_gt_src must hold numbers"),
    ("extra person", "lists 5 validation people but"),
])
def test_damaged_gt_valid_is_named(source, tmp_path, damage, needle):
  json_path = _copy(source, tmp_path, "annot/valid.json")
  path = _copy(source, tmp_path, "annot/gt_valid.mat")
  arrays = scipy.io.loadmat(path)
  arrays = {k: arrays[k] for k in mpii_json.GT_VALID_KEYS}
  if damage == "half":
    _cut(path, 0.5)
  elif damage == "hdf5 half":
    os.remove(path)
    with h5py.File(path, "w") as f:
      for key, value in arrays.items():
        f.create_dataset(key, data=value)
    _cut(path, 0.5)
  else:
    kind, key = damage.split()
    if kind == "no":
      del arrays[key]
    elif kind == "short":
      arrays[key] = arrays[key][:, :-1]
    elif kind == "text":
      arrays[key] = np.full(arrays[key].shape, "x")
    else:
      arrays = {k: np.concatenate([v, v[..., :1]], -1)
                for k, v in arrays.items()}
    scipy.io.savemat(path, arrays)
  _raises(lambda: mpii_json.read_validation(json_path, path), path, needle,
          JSON_FIX)


# --------------------------------------------- the folder as a whole: builds --


def test_split_without_a_usable_person_names_the_folder(source, tmp_path):
  manual = _manual_dir(source, tmp_path, "json")
  shutil.rmtree(manual / "images")
  os.mkdir(manual / "images")
  _raises(lambda: mpii_builder.build(str(manual), str(tmp_path / "data")),
          "mpii train: kept 0 of", "skipped", f"in {manual} was skipped",
          "missing_image", "mpii_human_pose_v1.tar.gz")


def test_empty_annotations_name_the_folder(source, tmp_path):
  manual = _manual_dir(source, tmp_path, "json")
  (manual / "annot" / "train.json").write_text("[]")
  _raises(lambda: mpii_builder.build(str(manual), str(tmp_path / "data")),
          "MPII train: the annotation files in", str(manual), "no people")


# ----------------------------- valid.h5 pairs that name no person: no leak --


def _pairs(records):
  return {(r["index"], r["person"]) for r in records}


def _damage_pairs(path, rows, drop_names=False):
  """Sets valid.h5 rows {row: (index or None, person or None)}."""
  with h5py.File(path, "r+") as f:
    for row, (index, person) in rows.items():
      if index is not None:
        f["index"][row] = index
      if person is not None:
        f["person"][row] = person
    if drop_names:
      del f["imgname"]


@pytest.mark.parametrize("rows,drop_names", [
    ({4: (9999, None)}, False),     # (6, 3): no such image.
    ({1: (None, 99)}, False),       # (2, 1): no such person.
    ({1: (None, 99)}, True),        # The same, told by its index alone.
    ({1: (None, 99), 4: (9999, None)}, False),
])
def test_unmatched_valid_pair_sends_no_validation_person_to_train(
    source, tmp_path, rows, drop_names):
  manual = _manual_dir(source, tmp_path, "official")
  valid_h5 = str(manual / mpii_official.VALID_H5_FILE)
  true_pairs = mpii_official.read_valid_h5(valid_h5)
  _damage_pairs(valid_h5, rows, drop_names)
  splits = mpii_layouts.read_splits(mpii_layouts.find_manual_files(manual))
  train, valid = splits["train"], splits["validation"]
  assert not _pairs(train.records) & set(true_pairs)
  assert len(valid.missing) == len(rows)
  assert len(valid.records) == len(true_pairs) - len(rows)
  # Only the people of the damaged rows' images are held out, and every
  # person is in exactly one of train, validation, held out.
  damaged = {true_pairs[row][0] for row in rows}
  assert {r["index"] for r in train.held_out} == damaged
  everyone = mpii_official.read_release(
      str(manual / mpii_official.RELEASE_FILE), include_unannotated=True)
  split_people = (list(train.records) + list(valid.records) +
                  list(train.held_out))
  assert sorted(_pairs(split_people)) == sorted(_pairs(everyone))
  assert len(split_people) == len(everyone)


def test_unmatched_pair_of_unknown_image_is_an_error(source, tmp_path):
  manual = _manual_dir(source, tmp_path, "official")
  valid_h5 = str(manual / mpii_official.VALID_H5_FILE)
  _damage_pairs(valid_h5, {4: (9999, None)}, drop_names=True)
  files = mpii_layouts.find_manual_files(manual)
  _raises(lambda: mpii_layouts.read_splits(files), valid_h5, "(9999, 3)",
          "could end up in training", VALID_H5_FIX)


def test_build_counts_the_people_held_out(source, tmp_path):
  manual = _manual_dir(source, tmp_path, "official")
  valid_h5 = str(manual / mpii_official.VALID_H5_FILE)
  true_pairs = mpii_official.read_valid_h5(valid_h5)
  _damage_pairs(valid_h5, {4: (9999, None)})
  builder = mpii_builder.build(str(manual), str(tmp_path / "data"))
  train = tfds.as_numpy(builder.as_dataset(split="train", decoders={
      "image": tfds.decode.SkipDecoding()}))
  assert not {(int(e["index"]), int(e["person"])) for e in train} & set(
      true_pairs)
  # Image 6's four people, the one row 4 meant among them.
  assert builder.reports["train"].skipped[mpii_builder.HELD_OUT] == 4
  assert builder.reports["validation"].skipped == {
      mpii_builder.NOT_ANNOTATED: 1}


def test_instructions_give_the_addresses_that_errors_send_to():
  for url in (mpii_official.RELEASE_URL, mpii_official.VALID_H5_URL):
    assert url in mpii_layouts.MANUAL_DOWNLOAD_INSTRUCTIONS


# ------------------------------------- a folder missing part of its images --


def _people_by_image(path):
  """{image: its people} of a JSON annotation file."""
  return collections.Counter(r["image"] for r in mpii_json.read_json(path))


def _summary_warnings(caplog, split):
  """The WARNING lines that sum up a split's skipped people."""
  return [r.getMessage() for r in caplog.records
          if r.levelname == "WARNING" and
          r.getMessage().startswith(f"mpii {split}: kept ")]


def test_folder_missing_many_images_is_refused_unless_allowed(
    source, tmp_path, caplog):
  manual = _manual_dir(source, tmp_path, "json")
  train = _people_by_image(str(manual / "annot" / "train.json"))
  valid = _people_by_image(str(manual / "annot" / "valid.json"))
  # Two images of validation people only: one deleted, one cut short.
  gone, cut = [name for name in valid if name not in train][:2]
  (manual / "images" / gone).unlink()
  _cut(str(manual / "images" / cut), 0.6)
  lost = valid[gone] + valid[cut]
  total = sum(valid.values())
  assert lost / total > mpii_builder.MAX_MISSING_IMAGE_SHARE
  config = tiny_config("a", manual_dir=str(manual), synthetic_images=0,
                       data_dir=str(tmp_path / "tfds"))
  work = str(tmp_path / "work")
  for _ in range(2):  # The refusal leaves nothing a rerun takes as prepared.
    message = _raises(
        lambda: prepare.prepare_builder(config, work),
        f"{lost} of {total} validation people ({lost / total:.1%})",
        f"{gone}, {cut} in {manual / 'images'}", "Restore the images",
        "--config.allow_missing_images")
    assert "\n" not in message and "train people" not in message
    assert not list((tmp_path / "tfds").glob("mpii/*"))

  caplog.clear()
  config.allow_missing_images = True
  builder = prepare.prepare_builder(config, work)
  assert builder.info.splits["validation"].num_examples == total - lost
  names = {e["image_name"].decode() for e in tfds.as_numpy(
      builder.as_dataset(split="validation", decoders={
          "image": tfds.decode.SkipDecoding()}))}
  assert names == set(valid) - {gone, cut}
  assert builder.info.splits["train"].num_examples == sum(train.values())
  assert _summary_warnings(caplog, "validation") == [
      f"mpii validation: kept {total - lost} of {total} people, skipped "
      f"{lost} (corrupt_image {valid[cut]}, missing_image {valid[gone]})"]

  # Reused, the data set says again what it lacks, and needs the opt-in.
  config.allow_missing_images = False
  _raises(lambda: prepare.prepare_builder(config, work),
          str(builder.data_dir), f"{lost} of {total} validation people",
          "--config.allow_missing_images")
  caplog.clear()
  config.allow_missing_images = True
  again = prepare.prepare_builder(config, work)
  assert again.info.splits["validation"].num_examples == total - lost
  assert _summary_warnings(caplog, "validation")
  # Evaluation records say whom the table scored, and whom the data left.
  from acnn_jax import evaluate  # pylint: disable=g-import-not-at-top
  record = evaluate.people_record(again, total - lost)
  assert record["skipped_people"] == lost
  assert evaluate.describe_people(record) == (
      f"Scored {total - lost} validation people; the data set left out "
      f"{lost} of {total} when it was prepared (corrupt_image {valid[cut]}"
      f", missing_image {valid[gone]}).")


@pytest.fixture(scope="module")
def larger_source(tmp_path_factory):
  """24 synthetic images: a train split of some 25 people."""
  root = str(tmp_path_factory.mktemp("larger_source"))
  synthetic.generate(root, 24, seed=0, layout="both", valid_fraction=0.2)
  return root


def test_folder_missing_a_few_images_warns_and_prepares(larger_source,
                                                        tmp_path, caplog):
  manual = _manual_dir(larger_source, tmp_path, "json")
  train = _people_by_image(str(manual / "annot" / "train.json"))
  valid = _people_by_image(str(manual / "annot" / "valid.json"))
  gone = next(name for name, count in train.items()
              if count == 1 and name not in valid)
  (manual / "images" / gone).unlink()
  total = sum(train.values())
  assert 1 / total <= mpii_builder.MAX_MISSING_IMAGE_SHARE
  builder = mpii_builder.build(str(manual), str(tmp_path / "data"))
  assert builder.info.splits["train"].num_examples == total - 1
  assert builder.info.splits["validation"].num_examples == sum(
      valid.values())
  assert _summary_warnings(caplog, "train") == [
      f"mpii train: kept {total - 1} of {total} people, skipped 1 "
      "(missing_image 1)"]
  assert mpii_builder.recorded_skips(builder)["train"].bad_images == [gone]
