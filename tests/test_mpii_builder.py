"""End-to-end tests of the TFDS builder `mpii` on tiny synthetic data sets.

`input_pipeline.synthetic` writes MPII's own layouts (official release +
valid.h5, and HRNet's JSON + gt_valid.mat), so the builder reads them exactly
as it reads the real files. Each test copies the files it needs into its own
manual_dir and may break some of them on purpose.
"""

import collections
import hashlib
import json
import os
import shutil

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds

from acnn_jax import errors
from input_pipeline import mpii_builder  # Importing it registers 'mpii'.
from input_pipeline import mpii_json
from input_pipeline import mpii_layouts
from input_pipeline import mpii_official
from input_pipeline import synthetic

NUM_IMAGES = 24


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  """One synthetic set in both layouts, and the generator's summary."""
  root = str(tmp_path_factory.mktemp("synthetic"))
  summary = synthetic.generate(root, NUM_IMAGES, seed=0, layout="both",
                               valid_fraction=0.2)
  return root, summary


def _manual_dir(source_root, tmp_path, layout):
  """Copies one layout's files (and the images) into a fresh manual_dir."""
  manual = tmp_path / f"manual_{layout}"
  shutil.copytree(os.path.join(source_root, "images"), manual / "images")
  if layout == "official":
    for name in (mpii_official.RELEASE_FILE, mpii_official.VALID_H5_FILE):
      shutil.copy(os.path.join(source_root, name), manual / name)
  else:
    shutil.copytree(os.path.join(source_root, "annot"), manual / "annot")
  return manual


def _build(manual, tmp_path, **kwargs):
  return mpii_builder.build(str(manual), str(tmp_path / f"data_{manual.name}"),
                            **kwargs)


def _read(builder, split, *keys):
  ds = builder.as_dataset(split=split, decoders={
      "image": tfds.decode.SkipDecoding()})
  return [{k: ex[k] for k in keys} for ex in tfds.as_numpy(ds)]


# ----------------------------------------------------------- clean builds --


def test_builder_is_registered():
  assert mpii_builder.Mpii.name == "mpii"
  assert "mpii" in tfds.list_builders()
  text = mpii_builder.MANUAL_DOWNLOAD_INSTRUCTIONS
  for needle in ("mpii_human_pose_v1.tar.gz", "mpii_human_pose_v1_u12_2.zip",
                 mpii_official.RELEASE_FILE, "valid.h5", "pose-hg-train",
                 "train.json", "valid.json", "gt_valid.mat", "images/"):
    assert needle in text


def test_official_layout_build(source, tmp_path):
  root, summary = source
  builder = _build(_manual_dir(root, tmp_path, "official"), tmp_path)
  splits = builder.info.splits
  assert splits["train"].num_examples == summary["train_people"]
  assert splits["validation"].num_examples == summary["valid_people"]

  # Only the release's people without points are left out, and counted.
  release = os.path.join(root, mpii_official.RELEASE_FILE)
  unannotated = (len(mpii_official.read_release(release, True)) -
                 len(mpii_official.read_release(release)))
  assert unannotated > 0  # The generator leaves some people unlabelled.
  report = builder.reports["train"]
  assert report.skipped == {mpii_builder.NO_JOINTS: unannotated}
  assert report.kept == summary["train_people"]
  assert not builder.reports["validation"].skipped

  # Validation follows valid.h5; the JPEG bytes are the file's own.
  pairs = mpii_official.read_valid_h5(
      os.path.join(root, mpii_official.VALID_H5_FILE))
  examples = _read(builder, "validation", "index", "person", "image",
                   "image_name")
  assert [(e["index"], e["person"]) for e in examples] == pairs
  with open(os.path.join(root, "images",
                         examples[0]["image_name"].decode()), "rb") as f:
    assert examples[0]["image"] == f.read()


def test_examples_carry_the_other_people_of_their_image(source, tmp_path):
  root, _ = source
  builder = _build(_manual_dir(root, tmp_path, "official"), tmp_path)
  release = mpii_official.read_release(
      os.path.join(root, mpii_official.RELEASE_FILE))
  checked_others = 0
  for split in ("train", "validation"):
    for ex in _read(builder, split, "image_name", "index", "person",
                    "other_joints", "other_annotated"):
      others = [r for r in release
                if r["image"] == ex["image_name"].decode() and
                (r["index"], r["person"]) != (ex["index"], ex["person"])]
      # In any order: compare as sets of (joints, annotated).
      got = sorted((j.round(3).tobytes(), a.tobytes()) for j, a in
                   zip(ex["other_joints"], ex["other_annotated"]))
      want = sorted((np.asarray(r["joints"], np.float32).round(3).tobytes(),
                     np.asarray(r["annotated"], bool).tobytes())
                    for r in others)
      assert got == want, (split, ex["image_name"])
      checked_others += len(others)
  assert checked_others > 0  # The synthetic images hold several people.


def test_json_layout_build_agrees_with_official(source, tmp_path):
  root, summary = source
  json_builder = _build(_manual_dir(root, tmp_path, "json"), tmp_path)
  official_builder = _build(_manual_dir(root, tmp_path, "official"), tmp_path)
  splits = json_builder.info.splits
  assert splits["train"].num_examples == summary["train_people"]
  assert splits["validation"].num_examples == summary["valid_people"]
  assert not json_builder.reports["train"].skipped

  keys = ("image_name", "joints", "annotated", "center", "scale", "head_box")
  from_json = _read(json_builder, "validation", *keys, "index", "visible",
                    "other_joints")
  from_official = _read(official_builder, "validation", *keys,
                        "other_joints")
  with open(os.path.join(root, "annot", "valid.json")) as f:
    names = [entry["image"] for entry in json.load(f)]
  assert [e["image_name"].decode() for e in from_json] == names
  for ours, theirs in zip(from_json, from_official):
    assert ours["image_name"] == theirs["image_name"]
    for key in keys[1:]:
      np.testing.assert_allclose(ours[key], theirs[key], atol=1e-4,
                                 err_msg=key)
    assert ours["index"] == -1 and (ours["visible"] == -1).all()
    # The same other people, whose ids the JSON layout does not have.
    assert (sorted(o.round(3).tobytes() for o in ours["other_joints"]) ==
            sorted(o.round(3).tobytes() for o in theirs["other_joints"]))
  assert any(len(e["other_joints"]) for e in from_json)


# What builder 1.1.0 (commit ac4a425, before the test split) made of
# `source`: per layout and split, `_digest` of its examples in order. The
# shards' bytes cannot be compared: TFDS serialises each example's feature
# map in an order that changes from one run to the next. These were
# computed in this repository's environment; a numpy or Pillow that draws
# the synthetic set differently changes them too (then build `source` with
# `git show ac4a425:input_pipeline/mpii_builder.py` and compare again).
BUILDER_1_1_0 = {
    ("official", "train"):
        "3d28ccc4a7c50eaf32973b160fffe2ab87dae01f2d582a2c03d2328fab3afff0",
    ("official", "validation"):
        "f1429014ededd4242e183f7fb7411bfd0c9aefc0771d36ffe8ecaaa4d791c668",
    ("json", "train"):
        "4bf21628a30a5b72798c57e13bada9e4708cfe6b66833dc2f48f8986335588cd",
    ("json", "validation"):
        "12627903febc46088522aba2614822b914f3cb4ebbb43ec753e381fdad0a1eb8",
}


def _digest(examples):
  """SHA-256 of every feature but `image` (name, dtype, shape, bytes)."""
  digest = hashlib.sha256()
  for example in examples:
    for key in sorted(example):
      if key != "image":
        value = np.asarray(example[key])
        for part in (key, str(value.dtype), str(value.shape)):
          digest.update(part.encode())
        digest.update(value.tobytes())
  return digest.hexdigest()


@pytest.mark.parametrize("layout", ["official", "json"])
def test_train_and_validation_are_those_of_builder_1_1_0(source, tmp_path,
                                                         layout):
  root, _ = source
  builder = _build(_manual_dir(root, tmp_path, layout), tmp_path)
  assert str(builder.info.version) == "1.2.0"
  for split in ("train", "validation"):
    examples = list(tfds.as_numpy(builder.as_dataset(
        split=split, decoders={"image": tfds.decode.SkipDecoding()})))
    assert _digest(examples) == BUILDER_1_1_0[(layout, split)], split
    for example in examples:  # The JPEG bytes are the files' own.
      with open(os.path.join(root, "images",
                             example["image_name"].decode()), "rb") as f:
        assert example["image"] == f.read()


# ------------------------------------------------------------- test split --


def _release_test_people(release_path):
  """(name, index, person, 0-based objpos, scale) of the single people of
  the test images, read with plain scipy, in release order."""
  rel = scipy.io.loadmat(release_path, struct_as_record=False)["RELEASE"]
  rel = rel[0, 0]
  people = []
  for i, entry in enumerate(rel.annolist[0]):
    if rel.img_train[0, i]:
      continue
    for p in sorted(rel.single_person[i, 0].ravel().astype(int) - 1):
      rect = entry.annorect[0, p]
      objpos = rect.objpos[0, 0]
      people.append((str(entry.image[0, 0].name[0]), i, int(p),
                     (float(objpos.x[0, 0]) - 1, float(objpos.y[0, 0]) - 1),
                     float(rect.scale[0, 0])))
  return people


def test_test_split_holds_the_single_people_of_the_test_images(source,
                                                               tmp_path):
  root, summary = source
  manual = _manual_dir(root, tmp_path, "official")
  builder = _build(manual, tmp_path)
  want = _release_test_people(os.path.join(root, mpii_official.RELEASE_FILE))
  assert len(want) == summary["test_people"] >= 5
  assert builder.info.splits["test"].num_examples == len(want)
  report = builder.reports["test"]
  assert report.kept == len(want) and not report.skipped
  keys = ("image_name", "index", "person", "center", "scale", "joints",
          "annotated", "visible", "head_box", "other_joints", "image")
  examples = _read(builder, "test", *keys)
  for ex, (name, index, person, center, scale) in zip(examples, want):
    assert (ex["image_name"].decode(), ex["index"], ex["person"]) == (
        name, index, person)
    np.testing.assert_allclose(ex["center"], center)
    np.testing.assert_allclose(ex["scale"], scale, rtol=1e-6)
    # No joints, no head box: the test annotations are withheld.
    assert not ex["annotated"].any() and (ex["visible"] == -1).all()
    assert not ex["joints"].any() and not ex["head_box"].any()
    assert len(ex["other_joints"]) == 0
    with open(manual / "images" / name, "rb") as f:
      assert ex["image"] == f.read()

  # The metadata keeps the release's test images, with the data.
  again = _build(manual, tmp_path)  # Prepared: read back from the folder.
  info = again.info.metadata[mpii_builder.TEST_METADATA]
  assert (info["layout"], info["people"], info["note"]) == (
      "official", len(want), "")
  assert [image["name"] for image in info["images"]][:1] == [want[0][0]]
  assert sum(len(image["single_person"]) for image in info["images"]) == len(
      want)
  test = mpii_builder.read_test_split(again)
  assert list(zip(test.people["image_name"], test.people["index"].tolist(),
                  test.people["person"].tolist())) == [w[:3] for w in want]


def test_json_test_split_follows_test_json(source, tmp_path):
  root, _ = source
  builder = _build(_manual_dir(root, tmp_path, "json"), tmp_path)
  with open(os.path.join(root, "annot", "test.json")) as f:
    entries = json.load(f)
  want = _release_test_people(os.path.join(root, mpii_official.RELEASE_FILE))
  assert [e["image"] for e in entries] == [w[0] for w in want]
  examples = _read(builder, "test", "image_name", "index", "person",
                   "center", "scale", "annotated")
  assert len(examples) == len(entries)
  for ex, entry in zip(examples, entries):
    assert ex["image_name"].decode() == entry["image"]
    # The JSON layout does not know the release's indices.
    assert ex["index"] == -1 and ex["person"] == -1
    np.testing.assert_allclose(ex["center"], np.array(entry["center"]) - 1)
    np.testing.assert_allclose(ex["scale"], entry["scale"], rtol=1e-6)
    assert not ex["annotated"].any()
  info = builder.info.metadata[mpii_builder.TEST_METADATA]
  assert info["layout"] == "json" and info["images"] is None


def _without_single_person(release):
  """Rewrites the release without RELEASE.single_person."""
  rel = scipy.io.loadmat(release)["RELEASE"]
  scipy.io.savemat(release, {"RELEASE": {
      "annolist": rel["annolist"][0, 0], "img_train": rel["img_train"][0, 0]}})


@pytest.mark.parametrize("layout, named", [
    ("official", "RELEASE.single_person"),
    ("json", "annot/test.json"),
])
def test_folder_without_test_people_builds_without_test_split(
    source, tmp_path, layout, named):
  """TFDS refuses an empty split: the data set has no `test`, and asking
  for it says why."""
  root, summary = source
  manual = _manual_dir(root, tmp_path, layout)
  if layout == "official":
    _without_single_person(str(manual / mpii_official.RELEASE_FILE))
  else:
    (manual / "annot" / "test.json").unlink()
  builder = _build(manual, tmp_path)
  splits = builder.info.splits
  assert "test" not in splits
  assert splits["train"].num_examples == summary["train_people"]
  assert splits["validation"].num_examples == summary["valid_people"]
  with pytest.raises(errors.InputError, match="has no test people") as error:
    mpii_builder.read_test_split(builder)
  assert named in str(error.value)


def test_test_people_are_checked_and_skipped(source, tmp_path):
  root, _ = source
  manual = _manual_dir(root, tmp_path, "official")
  release = str(manual / mpii_official.RELEASE_FILE)
  want = _release_test_people(release)
  by_image = collections.defaultdict(list)
  for name, index, person, _, _ in want:
    by_image[(name, index)].append(person)
  crowded = next(k for k, v in by_image.items() if len(v) >= 2)
  lone = [k for k, v in by_image.items() if len(v) == 1]
  missing, extra = lone[0], lone[1]
  (manual / "images" / missing[0]).unlink()
  mat = scipy.io.loadmat(release)
  rel = mat["RELEASE"][0, 0]
  rects = rel["annolist"][0, crowded[1]]["annorect"]
  first, second = by_image[crowded][:2]
  rects["scale"][0, first] = np.array([[0]], np.uint8)
  rects["objpos"][0, second] = np.zeros((0, 0))
  # A single_person entry naming an annorect the image does not have.
  rel["single_person"][extra[1], 0] = np.array([[1.0], [9.0]])
  scipy.io.savemat(release, {"RELEASE": mat["RELEASE"]})

  builder = _build(manual, tmp_path)
  report = builder.reports["test"]
  assert report.skipped == {mpii_builder.MISSING_IMAGE: 1,
                            mpii_builder.BAD_SCALE: 1,
                            mpii_builder.NAN: 1,
                            mpii_builder.NOT_ANNOTATED: 1}
  assert report.kept == len(want) - 3
  assert builder.info.splits["test"].num_examples == report.kept
  kept = {(e["index"], e["person"]) for e in _read(builder, "test", "index",
                                                   "person")}
  assert (missing[1], by_image[missing][0]) not in kept
  assert (crowded[1], first) not in kept and (crowded[1], second) not in kept


def test_test_split_whose_people_are_all_skipped_is_left_out(source,
                                                             tmp_path):
  root, _ = source
  manual = _manual_dir(root, tmp_path, "official")
  for name, *_ in _release_test_people(
      str(manual / mpii_official.RELEASE_FILE)):
    if (manual / "images" / name).exists():
      (manual / "images" / name).unlink()
  builder = _build(manual, tmp_path)
  assert "test" not in builder.info.splits
  assert builder.reports["test"].kept == 0
  with pytest.raises(errors.InputError,
                     match="every person of this split") as error:
    mpii_builder.read_test_split(builder)
  assert mpii_builder.MISSING_IMAGE in str(error.value)


def test_build_reuses_prepared_data(source, tmp_path):
  root, _ = source
  manual = _manual_dir(root, tmp_path, "json")
  first = _build(manual, tmp_path)
  shutil.rmtree(manual)  # Prepared data no longer needs the manual files.
  again = _build(manual, tmp_path)
  assert (again.info.splits["train"].num_examples ==
          first.info.splits["train"].num_examples)


# ------------------------------------------------------------- bad inputs --


def _train_only_images(train, validation):
  """Images with annotated training people and no validation person."""
  valid_images = {r["image"] for r in validation}
  images = []
  for r in train:
    if (r["annotated"].any() and r["image"] not in valid_images and
        r["image"] not in images):
      images.append(r["image"])
  return images


def _break_images(manual, corrupt, missing):
  path = manual / "images" / corrupt
  data = path.read_bytes()
  path.write_bytes(data[:len(data) * 6 // 10])  # A truncated download.
  (manual / "images" / missing).unlink()


def _expected_train(train, corrupt, missing):
  counts = collections.Counter()
  for r in train:
    if r["image"] == corrupt:
      counts[mpii_builder.CORRUPT_IMAGE] += 1
    elif r["image"] == missing:
      counts[mpii_builder.MISSING_IMAGE] += 1
    elif not r["annotated"].any():
      counts[mpii_builder.NO_JOINTS] += 1
    elif not np.isfinite(r["joints"]).all():
      counts[mpii_builder.NAN] += 1
    else:
      counts["kept"] += 1
  return counts


def _check_reports(builder, expected_train, num_valid):
  train, valid = builder.reports["train"], builder.reports["validation"]
  assert train.kept == expected_train.pop("kept")
  assert train.skipped == expected_train
  assert valid.skipped == {mpii_builder.ZERO_HEAD_BOX: 1}
  assert valid.kept == num_valid - 1
  assert builder.info.splits["train"].num_examples == train.kept
  assert builder.info.splits["validation"].num_examples == valid.kept
  assert "skipped" in train.summary()
  # The data set records the counts, for the runs that reuse it.
  recorded = mpii_builder.recorded_skips(builder)
  for split in ("train", "validation"):
    assert recorded[split].skipped == builder.reports[split].skipped
    assert recorded[split].summary() == builder.reports[split].summary()


def test_official_build_skips_and_counts_bad_people(source, tmp_path):
  root, _ = source
  manual = _manual_dir(root, tmp_path, "official")
  release = str(manual / mpii_official.RELEASE_FILE)
  split = mpii_official.split_records(
      mpii_official.read_release(release, include_unannotated=True),
      mpii_official.read_valid_h5(str(manual / mpii_official.VALID_H5_FILE)))
  corrupt, missing, third = _train_only_images(split.train,
                                               split.validation)[:3]
  _break_images(manual, corrupt, missing)
  # A training person loses its points; a validation person gets a 0-wide
  # head box.
  unlabel = next(r for r in split.train
                 if r["image"] == third and r["annotated"].any())
  zero_box = split.validation[-1]
  mat = scipy.io.loadmat(release)
  annolist = mpii_official.field(mpii_official.structs(mat["RELEASE"])[0],
                                 "annolist")
  rect = annolist[0, unlabel["index"]]["annorect"]
  rect["annopoints"][0, unlabel["person"]] = np.zeros((0, 0))
  rect = annolist[0, zero_box["index"]]["annorect"]
  rect["x2"][0, zero_box["person"]] = rect["x1"][0, zero_box["person"]]
  scipy.io.savemat(release, {"RELEASE": mat["RELEASE"]})

  # Two broken images of 24 are past MAX_MISSING_IMAGE_SHARE of train.
  builder = _build(manual, tmp_path, allow_missing_images=True)
  train = [dict(r, annotated=np.zeros(16, bool)) if r is unlabel else r
           for r in split.train]
  expected = _expected_train(train, corrupt, missing)
  assert expected[mpii_builder.CORRUPT_IMAGE] >= 1
  assert expected[mpii_builder.MISSING_IMAGE] >= 1
  _check_reports(builder, expected, len(split.validation))


def test_json_build_skips_and_counts_bad_people(source, tmp_path):
  root, _ = source
  manual = _manual_dir(root, tmp_path, "json")
  annot = manual / "annot"
  train = mpii_json.read_json(str(annot / "train.json"))
  validation = mpii_json.read_json(str(annot / "valid.json"))
  corrupt, missing = _train_only_images(train, validation)[:2]
  _break_images(manual, corrupt, missing)
  # Elsewhere: one person without annotated joints, one with a NaN joint.
  entries = json.loads((annot / "train.json").read_text())
  others = [k for k, e in enumerate(entries)
            if e["image"] not in (corrupt, missing)]
  unlabel, nan = others[0], others[-1]
  assert unlabel != nan
  entries[unlabel]["joints_vis"] = [0] * 16
  entries[nan]["joints_vis"][0] = 1
  entries[nan]["joints"][0] = [float("nan"), 5.0]
  (annot / "train.json").write_text(json.dumps(entries))
  gt = scipy.io.loadmat(str(annot / "gt_valid.mat"))
  gt["headboxes_src"][1, 0, 0] = gt["headboxes_src"][0, 0, 0]
  scipy.io.savemat(str(annot / "gt_valid.mat"), {
      k: gt[k] for k in ("pos_gt_src", "jnt_missing", "headboxes_src")})

  builder = _build(manual, tmp_path, allow_missing_images=True)
  expected = _expected_train(mpii_json.read_json(str(annot / "train.json")),
                             corrupt, missing)
  assert expected[mpii_builder.NO_JOINTS] == 1
  assert expected[mpii_builder.NAN] == 1
  _check_reports(builder, expected, len(validation))
  # The damaged validation person is the first: the rest keep their order.
  names = [e["image_name"].decode()
           for e in _read(builder, "validation", "image_name")]
  assert names == [r["image"] for r in validation[1:]]


def test_valid_h5_pair_without_person_is_counted(source, tmp_path):
  manual = _manual_dir(source[0], tmp_path, "official")
  with h5py.File(manual / mpii_official.VALID_H5_FILE, "r+") as f:
    f["index"][-1] = 9999  # No such image.
    num_valid = len(f["index"])
  builder = _build(manual, tmp_path)
  report = builder.reports["validation"]
  assert report.skipped == {mpii_builder.NOT_ANNOTATED: 1}
  assert report.kept == num_valid - 1


def test_valid_h5_from_other_release_is_an_error(source, tmp_path):
  manual = _manual_dir(source[0], tmp_path, "official")
  with h5py.File(manual / mpii_official.VALID_H5_FILE, "r+") as f:
    f["imgname"][0] = b"000000000.jpg"
  with pytest.raises(errors.InputError, match="do not belong together"):
    _build(manual, tmp_path)


def test_missing_manual_dir_is_named(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(mpii_layouts.MissingFilesError,
                     match="does not exist") as error:
    mpii_builder.build(str(missing), str(tmp_path / "data"))
  assert str(missing) in str(error.value)
  assert "mpii_human_pose_v1_u12_2.zip" in str(error.value)


@pytest.mark.parametrize("layout, remove, named", [
    ("official", mpii_official.VALID_H5_FILE, "valid.h5"),
    ("official", mpii_official.RELEASE_FILE, mpii_official.RELEASE_FILE),
    ("official", "images", "images/"),
    ("json", "annot/gt_valid.mat", "gt_valid.mat"),
    ("json", "annot/valid.json", "valid.json"),
])
def test_missing_file_is_named(source, tmp_path, layout, remove, named):
  manual = _manual_dir(source[0], tmp_path, layout)
  target = manual / remove
  shutil.rmtree(target) if target.is_dir() else target.unlink()
  with pytest.raises(mpii_layouts.MissingFilesError, match=named) as error:
    mpii_builder.build(str(manual), str(tmp_path / "data"))
  assert mpii_builder.MANUAL_DOWNLOAD_INSTRUCTIONS in str(error.value)


def test_missing_file_is_named_through_plain_tfds(source, tmp_path):
  """Without `build`: the builder's own split generation raises it."""
  manual = _manual_dir(source[0], tmp_path, "official")
  (manual / mpii_official.VALID_H5_FILE).unlink()
  builder = tfds.builder("mpii", data_dir=str(tmp_path / "data"),
                         try_gcs=False)
  with pytest.raises(mpii_layouts.MissingFilesError, match="valid.h5"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual), try_download_gcs=False))


# ------------------------------------------------------------ unit checks --


def _record(**changes):
  record = mpii_official.make_record(
      image="x.jpg", index=0, person=0, joints=np.full((16, 2), 50.0),
      annotated=np.ones(16), visible=np.ones(16), center=(50, 50), scale=1.0,
      head_box=(40, 10, 60, 30))
  record.update(changes)
  return record


def test_validate_record_reasons():
  validate = mpii_builder.validate_record
  assert validate(_record(), (100, 100), require_head_box=True) is None
  joints = np.full((16, 2), 50.0, np.float32)
  joints[3] = (np.nan, 1.0)
  assert validate(_record(joints=joints)) == mpii_builder.NAN
  assert validate(_record(scale=np.float32("nan"))) == mpii_builder.NAN
  assert (validate(_record(annotated=np.zeros(16, bool))) ==
          mpii_builder.NO_JOINTS)
  assert validate(_record(scale=np.float32(0))) == mpii_builder.BAD_SCALE
  # A little outside the frame is normal for MPII; an image size away is not.
  joints = np.full((16, 2), 50.0, np.float32)
  joints[0] = (-30.0, 150.0)
  assert validate(_record(joints=joints), (100, 100)) is None
  joints[0] = (350.0, 50.0)
  assert validate(_record(joints=joints), (100, 100)) == mpii_builder.OUTSIDE
  assert validate(_record(joints=joints)) is None  # Size unknown.
  # A 0-size head box matters only where PCKh uses it.
  flat = np.array([40, 10, 40, 30], np.float32)
  assert validate(_record(head_box=flat)) is None
  assert (validate(_record(head_box=flat), require_head_box=True) ==
          mpii_builder.ZERO_HEAD_BOX)


def test_validate_record_of_test_people():
  """No joints: the centre and scale decide, and the image."""
  def person(**changes):
    return _record(joints=np.zeros((16, 2)), annotated=np.zeros(16, bool),
                   head_box=np.zeros(4), **changes)

  def validate(record):
    return mpii_builder.validate_record(record, (100, 100),
                                        require_joints=False)

  assert validate(person()) is None
  assert validate(person(center=np.float32([np.nan, 5]))) == mpii_builder.NAN
  assert validate(person(scale=np.float32(0))) == mpii_builder.BAD_SCALE
  assert validate(person(scale=np.float32(-1))) == mpii_builder.BAD_SCALE
  assert validate(person(center=np.float32([350, 5]))) == mpii_builder.OUTSIDE


def test_inspect_image(source, tmp_path):
  root, _ = source
  name = sorted(os.listdir(os.path.join(root, "images")))[0]
  good = os.path.join(root, "images", name)
  check = mpii_builder.inspect_image(good)
  assert check.reason is None and min(check.size) > 0
  data = open(good, "rb").read()
  truncated = tmp_path / "truncated.jpg"
  truncated.write_bytes(data[:len(data) // 2])
  assert (mpii_builder.inspect_image(str(truncated)).reason ==
          mpii_builder.CORRUPT_IMAGE)
  garbage = tmp_path / "garbage.jpg"
  garbage.write_bytes(b"\xff\xd8 not really a jpeg")
  assert (mpii_builder.inspect_image(str(garbage)).reason ==
          mpii_builder.CORRUPT_IMAGE)
  assert (mpii_builder.inspect_image(str(tmp_path / "absent.jpg")).reason ==
          mpii_builder.MISSING_IMAGE)


def test_skip_log_summary():
  log = mpii_builder.SkipLog("train", max_examples=2)
  log.keep()
  for k in range(3):
    log.skip(mpii_builder.MISSING_IMAGE, f"{k}.jpg")
  assert log.examples[mpii_builder.MISSING_IMAGE] == ["0.jpg", "1.jpg"]
  assert log.summary() == ("mpii train: kept 1 of 4 people, skipped 3 "
                           "(missing_image 3)")


def test_skip_log_counts_the_people_without_their_image():
  log = mpii_builder.SkipLog("validation")
  for _ in range(19):
    log.keep()
  log.skip(mpii_builder.NO_JOINTS, "a.jpg", image="a.jpg")
  log.skip(mpii_builder.MISSING_IMAGE, "b.jpg (person 0)", image="b.jpg")
  assert log.image_skips == 1 and log.people == 21
  assert not log.too_many_missing_images()  # 1 of 21: 4.8%.
  log.skip(mpii_builder.CORRUPT_IMAGE, "b.jpg (person 1)", image="b.jpg")
  assert log.too_many_missing_images()  # 2 of 22: 9.1%.
  assert log.missing_share() == "2 of 22 validation people (9.1%)"
  assert log.bad_images == ["b.jpg"] and log.num_bad_images == 1
  again = mpii_builder.SkipLog.from_json("validation", log.to_json())
  assert again.summary() == log.summary()
  assert again.too_many_missing_images() and again.bad_images == ["b.jpg"]
