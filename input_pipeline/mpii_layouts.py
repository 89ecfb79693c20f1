"""MPII's two folder layouts: finding a user's files and reading its splits.

MPII cannot be downloaded by a script (its licence page comes first), so a
user puts the files in a folder (`manual_dir`) as
`MANUAL_DOWNLOAD_INSTRUCTIONS` says, in one of two layouts told apart
automatically: (a) the official release plus pose-hg-train's `valid.h5`
(read by `mpii_official`), (b) the HRNet/mmpose JSON files plus
`gt_valid.mat` (read by `mpii_json`). Both give the same splits:
`validation` is Tompson et al.'s 2958 people, in `valid.h5` / `gt_valid.mat`
order, and `train` the other annotated people of the training images.

The `test` split holds people of the test images, without joints: in (a)
the release's single people (`RELEASE.single_person`), in (b) the entries
of HRNet's optional `test.json`. A folder without them has an empty `test`
(`SplitRecords.note` says why).
"""

import dataclasses
import os
from typing import Optional, Sequence

from acnn_jax import errors
from input_pipeline import mpii_json
from input_pipeline import mpii_official

Record = mpii_official.Record

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
MPII Human Pose must be downloaded by hand (accept the licence at
http://human-pose.mpi-inf.mpg.de/#download). Put the files in `manual_dir` in
ONE of these two layouts; the builder detects which.

(a) Official release + Tompson's validation split (recommended: keeps MPII's
    visibility flags and the release's image/person indices).
    1. Images (12.9 GB):
         https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/mpii_human_pose_v1.tar.gz
       `tar xzf` it in manual_dir: it makes manual_dir/images/*.jpg.
    2. Annotations (12.5 MB):
         https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/mpii_human_pose_v1_u12_2.zip
       unzip it and move mpii_human_pose_v1_u12_1.mat (the .mat inside) to
       manual_dir/.
    3. Validation split: `data/mpii/annot/valid.h5` of
         https://github.com/princeton-vl/pose-hg-train
       as manual_dir/valid.h5.
    manual_dir/
      mpii_human_pose_v1_u12_1.mat
      valid.h5
      images/000001163.jpg ...

(b) HRNet / mmpose JSON annotations.
    1. Images as in (a) 1.
    2. HRNet's `data/mpii/annot/` (train.json, valid.json, gt_valid.mat;
       github.com/leoxiaobin/deep-high-resolution-net.pytorch, "Data
       preparation") or mmpose's
         https://download.openmmlab.com/mmpose/datasets/mpii_annotations.tar
       (mpii_train.json, mpii_val.json, mpii_gt_val.mat).
    manual_dir/
      annot/train.json       (or mpii_train.json; annot/ may also be
      annot/valid.json        annotations/ or manual_dir itself)
      annot/gt_valid.mat     (or mpii_gt_val.mat)
      annot/test.json        (optional, or mpii_test.json: the test people)
      images/000001163.jpg ...

A submission to MPII's test benchmark needs layout (a): the release lists
every test image's people, which the benchmark's file must keep.
"""

# Where each file may be, relative to manual_dir: the documented place first,
# then the places the archives' own folder names put it.
_ANNOTATION_DIRS = ("", mpii_json.ANNOT_DIR, "annotations")
_RELEASE_DIRS = ("", "mpii_human_pose_v1_u12_2", mpii_json.ANNOT_DIR,
                 "annotations")


class MissingFilesError(errors.MissingError):
  """`manual_dir` lacks a file the build needs; the message says which."""


# ------------------------------------------------------- finding the files --


@dataclasses.dataclass(frozen=True)
class ManualFiles:
  """The annotation files found in `manual_dir` and the layout they form."""
  layout: str  # "official" or "json".
  images: str
  release: Optional[str] = None
  valid_h5: Optional[str] = None
  train_json: Optional[str] = None
  valid_json: Optional[str] = None
  gt_valid: Optional[str] = None
  test_json: Optional[str] = None  # Optional in layout (b).


def _find(manual_dir: str, dirs: Sequence[str], names: Sequence[str]
          ) -> Optional[str]:
  """The first existing manual_dir/dir/name, or None."""
  for name in names:
    for folder in dirs:
      path = os.path.join(manual_dir, folder, name)
      if os.path.isfile(path):
        return path
  return None


def _absent(files: dict[str, Optional[str]]) -> list[str]:
  return [name for name, path in files.items() if path is None]


def _missing_error(manual_dir: str, missing: Sequence[str], note: str = ""
                   ) -> MissingFilesError:
  """The error for absent files, with the instructions repeated."""
  listed = "".join(f"\n  {os.path.join(manual_dir, m)}" for m in missing)
  return MissingFilesError(
      f"MPII: missing in manual_dir {manual_dir}:{listed}\n{note}\n"
      f"{MANUAL_DOWNLOAD_INSTRUCTIONS}")


def find_manual_files(manual_dir: str) -> ManualFiles:
  """Finds the annotation files and detects the layout of `manual_dir`.

  The official layout wins when both are complete (it has MPII's visibility
  flags and the release indices).

  Args:
    manual_dir: the folder the user filled by hand.

  Returns:
    The files of the detected layout.

  Raises:
    MissingFilesError: naming the missing folder or files (of the layout the
      folder is closest to) and repeating the instructions.
  """
  manual_dir = os.path.expanduser(os.fspath(manual_dir))
  if not os.path.isdir(manual_dir):
    raise MissingFilesError(f"MPII: manual_dir {manual_dir} does not exist."
                            f"\n\n{MANUAL_DOWNLOAD_INSTRUCTIONS}")
  release = _find(manual_dir, _RELEASE_DIRS, [mpii_official.RELEASE_FILE])
  valid_h5 = _find(manual_dir, _ANNOTATION_DIRS, [mpii_official.VALID_H5_FILE])
  train_json = _find(manual_dir, _ANNOTATION_DIRS, mpii_json.TRAIN_JSON_FILES)
  valid_json = _find(manual_dir, _ANNOTATION_DIRS, mpii_json.VALID_JSON_FILES)
  gt_valid = _find(manual_dir, _ANNOTATION_DIRS, mpii_json.GT_VALID_FILES)
  test_json = _find(manual_dir, _ANNOTATION_DIRS, mpii_json.TEST_JSON_FILES)

  official = {mpii_official.RELEASE_FILE: release,
              mpii_official.VALID_H5_FILE: valid_h5}
  json_files = {"annot/train.json": train_json,
                "annot/valid.json": valid_json,
                "annot/gt_valid.mat": gt_valid}
  if all(official.values()):
    layout = "official"
  elif all(json_files.values()):
    layout = "json"
  elif any(json_files.values()) and not any(official.values()):
    raise _missing_error(manual_dir, _absent(json_files))
  else:
    raise _missing_error(
        manual_dir, _absent(official),
        note=f"(or, layout (b): {', '.join(_absent(json_files))})\n")

  images = os.path.join(manual_dir, mpii_official.IMAGES_DIR)
  if not os.path.isdir(images):
    raise _missing_error(manual_dir, [mpii_official.IMAGES_DIR + "/"])
  return ManualFiles(layout=layout, images=images, release=release,
                     valid_h5=valid_h5, train_json=train_json,
                     valid_json=valid_json, gt_valid=gt_valid,
                     test_json=test_json)


# --------------------------------------------------------- reading splits --


@dataclasses.dataclass
class SplitRecords:
  """One split's people, before validation, and what could not be matched.

  Attributes:
    records: the split's people.
    missing: validation (or test) people the annotations name but lack,
      described.
    held_out: people kept out of this split (and of every other) because a
      damaged validation entry may mean them; see `split_records`.
    note: (test) why the files list no people for this split, when they
      list none.
    images: (test, layout (a)) the release's test images, as a benchmark
      submission must list them (`mpii_official.test_images`); None in
      layout (b), which does not have them.
  """
  records: list[Record]
  missing: list[str] = dataclasses.field(default_factory=list)
  held_out: list[Record] = dataclasses.field(default_factory=list)
  note: str = ""
  images: Optional[list[dict]] = None


def _check_valid_names(files: ManualFiles, validation: Sequence[Record],
                       pairs: Sequence[tuple[int, int]],
                       names: Optional[Sequence[str]]) -> None:
  """Raises when valid.h5's image names contradict the release's."""
  if names is None:
    return
  by_pair = {(r["index"], r["person"]): r["image"] for r in validation}
  for pair, name in zip(pairs, names):
    if pair in by_pair and by_pair[pair] != name:
      raise errors.InputError(
          f"{files.valid_h5} names {name} for (index, person) {pair} but "
          f"{files.release} has {by_pair[pair]}: the files do not belong "
          f"together. {mpii_official.VALID_H5_FIX}")


def _read_official(files: ManualFiles) -> dict[str, SplitRecords]:
  """The splits of layout (a): the release's people split by valid.h5.

  A valid.h5 pair that the release lacks is counted as missing, and the
  people of its image are held out of training (one of them may be the
  person it meant); a pair whose image cannot be told is an error, as then
  any training person may be a validation person.
  """
  release = mpii_official.read_release_parts(files.release)
  records = mpii_official.parse_annolist(
      release.annolist, img_train=release.img_train, include_unannotated=True)
  pairs = mpii_official.read_valid_h5(files.valid_h5)
  names = mpii_official.read_valid_h5_image_names(files.valid_h5)
  split = mpii_official.split_records(records, pairs, names)
  if split.unplaced:
    raise errors.InputError(
        f"{files.valid_h5}: {len(split.unplaced)} of its (index, person) "
        f"pairs, first {split.unplaced[0]}, name no person of a training "
        f"image of {files.release}, and no image name tells which image they "
        "meant, so their people could end up in training: the files do not "
        f"belong together. {mpii_official.VALID_H5_FIX}")
  _check_valid_names(files, split.validation, pairs, names)
  missing = [f"index {i}, person {p}" for i, p in split.missing]
  return {"train": SplitRecords(split.train, held_out=split.held_out),
          "validation": SplitRecords(split.validation, missing),
          "test": _official_test(release)}


def _official_test(release: mpii_official.Release) -> SplitRecords:
  """Layout (a)'s test split: the single people of the test images."""
  records, missing = mpii_official.read_test_people(release)
  note = ""
  if release.single_person is None:
    note = (f"{release.path} has no RELEASE.single_person, the list of the "
            "people of each test image that the benchmark scores: it is a "
            "trimmed release, or a synthetic set written before the test "
            "split existed (delete that folder: it is written again). The "
            f"official {mpii_official.RELEASE_FILE} has it.")
  elif not records and not missing:
    note = (f"{release.path} lists no single person in a test image "
            "(img_train == 0).")
  return SplitRecords(records, missing, note=note,
                      images=mpii_official.test_images(release))


def _json_test(files: ManualFiles) -> SplitRecords:
  """Layout (b)'s test split: HRNet's test.json, when there is one."""
  if files.test_json is None:
    return SplitRecords([], note=(
        f"the JSON layout in {os.path.dirname(files.images)} has no "
        f"{mpii_json.ANNOT_DIR}/{mpii_json.TEST_JSON_FILES[0]} (HRNet's "
        f"data/mpii/annot/{mpii_json.TEST_JSON_FILES[0]}, or mmpose's "
        f"{mpii_json.TEST_JSON_FILES[1]}), which lists the test people (a "
        "submission to the benchmark needs the official release, layout "
        "(a))."))
  records = mpii_json.read_test_json(files.test_json)
  return SplitRecords(records, note="" if records else (
      f"{files.test_json} lists no people."))


def read_splits(files: ManualFiles) -> dict[str, SplitRecords]:
  """Reads the annotations of either layout into `train`, `validation`
  and `test`.

  Args:
    files: from `find_manual_files`.

  Returns:
    {"train": ..., "validation": ..., "test": ...}; validation in valid.h5 /
    valid.json order, test in release (index, person) / test.json order.
    People without points are included in train and validation (the
    generator counts them); test people have none.

  Raises:
    errors.MissingError, errors.InputError: a file is absent or damaged; the
      message names it, the entry, and where to get a good copy.
  """
  if files.layout == "official":
    return _read_official(files)
  return {
      "train": SplitRecords(mpii_json.read_json(files.train_json)),
      "validation": SplitRecords(
          mpii_json.read_validation(files.valid_json, files.gt_valid)),
      "test": _json_test(files),
  }
