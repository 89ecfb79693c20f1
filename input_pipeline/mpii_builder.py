"""TFDS builder `mpii`: MPII Human Pose, one example per person.

MPII cannot be downloaded by a script (its licence page comes first), so this
is a manual-download builder: put the files in a folder as
`MANUAL_DOWNLOAD_INSTRUCTIONS` says (either of the two layouts of
`mpii_layouts`) and call

  builder = mpii_builder.build(manual_dir="~/mpii", data_dir="~/tfds")
  train = builder.as_dataset(split="train")

`validation` is Tompson et al.'s 2958 people in `valid.h5` / `gt_valid.mat`
order (the builder keeps that order: `disable_shuffling`), `train` the other
annotated people of the training images, and `test` the people of the test
images that MPII's single-person benchmark scores (release order; they have
no joints, only `center` and `scale`). TFDS refuses an empty split, so a
folder without test people (the JSON layout without `test.json`) builds
without `test`; the data set's metadata says why (`read_test_split`), and
keeps the release's test images, which a benchmark submission must list
(`acnn_jax.submission`).

A bad person never stops a 25k-image build: it is skipped, counted per reason
and reported in one WARNING line per split (with its first few examples);
see `validate_record`, `inspect_image` and `Mpii.reports`. A damaged file
does (`errors.InputError`, naming the file and the entry), and so does a
training or validation split whose every person is skipped
(`empty_split_error`, naming the folder and the counts, where TFDS would only
say "No examples were yielded"); a test split whose every person is skipped
is left out, and its metadata says why.

Missing images are different: a folder with part of MPII's JPEGs would
train and score on what is left, and its PCKh would look like MPII's. So a
training or validation split that loses more than `MAX_MISSING_IMAGE_SHARE`
of its people to missing or unreadable images stops the preparation
(`missing_images_error`) unless the builder is told to allow it
(`allow_missing_images`, `--config.allow_missing_images`). Every person is
checked before TFDS writes an example, and TFDS writes into a temporary
folder that it renames only when the data set is complete (and deletes when
the preparation stops), so a refusal leaves nothing a later run could take
for a prepared data set. The prepared data
set records what each split skipped (metadata `skipped`,
`recorded_skips`): a run that reuses it warns again, and refuses without
the opt-in when the images were missing past the limit.
"""

import collections
import dataclasses
import os
from typing import Any, Iterator, Optional

from absl import logging
from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from acnn_jax import errors
from acnn_jax import mpii
from input_pipeline import mpii_layouts
from input_pipeline import mpii_official

Record = mpii_official.Record
MANUAL_DOWNLOAD_INSTRUCTIONS = mpii_layouts.MANUAL_DOWNLOAD_INSTRUCTIONS

# Why a person is left out of the data set; counted per split.
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
NO_JOINTS = "no_annotated_joints"
NAN = "nan_coordinates"
OUTSIDE = "joints_outside_image"
BAD_SCALE = "bad_scale"
ZERO_HEAD_BOX = "zero_head_box"
NOT_ANNOTATED = "not_in_annotations"
# Beside a validation entry that names no person: may be the one it meant.
HELD_OUT = "beside_unmatched_validation_person"
SKIP_REASONS = (MISSING_IMAGE, CORRUPT_IMAGE, NO_JOINTS, NAN, OUTSIDE,
                BAD_SCALE, ZERO_HEAD_BOX, NOT_ANNOTATED, HELD_OUT)
# The reasons that say the folder lacks part of MPII's images.
IMAGE_REASONS = (MISSING_IMAGE, CORRUPT_IMAGE)
# The share of a training or validation split's people that may lack their
# image before the preparation stops (`missing_images_error`). A few broken
# downloads are noise; more means a partial folder, whose PCKh is not MPII's.
MAX_MISSING_IMAGE_SHARE = 0.05
# How many of the files behind those skips an error or a record names.
NAMED_FILES = 3
# The splits whose people must have their images (the test split already
# reports its unpredicted people in the submission: `acnn_jax.submission`).
CHECKED_SPLITS = ("train", "validation")
# The fix to suggest when every person of a split is skipped for this reason.
_EMPTY_SPLIT_FIXES = {
    MISSING_IMAGE: ("put MPII's JPEGs in manual_dir/images (extract "
                    "mpii_human_pose_v1.tar.gz there)"),
    CORRUPT_IMAGE: ("extract mpii_human_pose_v1.tar.gz again: the JPEGs are "
                    "damaged"),
    NOT_ANNOTATED: ("use the validation file that belongs to the annotations"
                    " (pose-hg-train's valid.h5 for the release)"),
}


# -------------------------------------------------------------- validation --


@dataclasses.dataclass(frozen=True)
class ImageCheck:
  """Whether an image file is usable: `reason` None, or why not."""
  reason: Optional[str]
  size: Optional[tuple[int, int]] = None  # (width, height)
  detail: str = ""


def inspect_image(path: str) -> ImageCheck:
  """Checks that `path` is a whole, decodable JPEG, cheaply.

  `draft` asks libjpeg for a 1/8-scale decode: every entropy-coded block is
  still read, so a truncated or garbled file fails, at a fraction of the cost
  of a full decode.

  Args:
    path: the image file.

  Returns:
    An `ImageCheck` with the full-resolution size when the image is usable.
  """
  if not os.path.isfile(path):
    return ImageCheck(MISSING_IMAGE, detail=path)
  try:
    with Image.open(path) as image:
      size = image.size
      if image.format != "JPEG":
        return ImageCheck(CORRUPT_IMAGE, detail=f"{image.format}, not JPEG")
      if image.mode not in ("RGB", "L"):
        return ImageCheck(CORRUPT_IMAGE, detail=f"mode {image.mode}")
      image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
      image.load()
  except (OSError, SyntaxError, ValueError) as e:  # PIL's decode errors.
    return ImageCheck(CORRUPT_IMAGE, detail=str(e))
  return ImageCheck(None, size=size)


def validate_record(record: Record,
                    image_size: Optional[tuple[int, int]] = None,
                    require_head_box: bool = False,
                    require_joints: bool = True) -> Optional[str]:
  """Why a person must be skipped, or None when it is usable.

  Args:
    record: a record (see `mpii_official`).
    image_size: (width, height) of its image, for the far-outside check; None
      skips that check.
    require_head_box: reject degenerate head boxes (validation: PCKh divides
      by the head size).
    require_joints: reject people without an annotated joint; False for test
      people, who have none: their centre and scale must be finite, the
      scale positive and the centre near the image.

  Returns:
    One of `SKIP_REASONS`, or None.
  """
  annotated = np.asarray(record["annotated"], bool)
  numbers = [record["joints"], record["center"], record["scale"],
             record["head_box"]]
  if not all(np.all(np.isfinite(np.asarray(v, np.float64))) for v in numbers):
    return NAN
  if require_joints and not annotated.any():
    return NO_JOINTS
  if not float(record["scale"]) > 0:
    return BAD_SCALE
  if image_size is not None:
    # MPII has legitimate points slightly outside the frame (cut-off limbs);
    # more than one image size away is an annotation error.
    size = np.asarray(image_size, np.float64)
    points = np.concatenate([np.asarray(record["joints"])[annotated],
                             np.asarray(record["center"])[None]])
    if np.any(points < -size) or np.any(points > 2 * size):
      return OUTSIDE
  if require_head_box:
    x1, y1, x2, y2 = np.asarray(record["head_box"], np.float64)
    if not (x2 > x1 and y2 > y1):
      return ZERO_HEAD_BOX
  return None


def describe(record: Record) -> str:
  """A person's name in logs: image and release indices."""
  return (f"{record['image']} (index {record['index']}, "
          f"person {record['person']})")


class SkipLog:
  """Counts kept and skipped people of one split; logs the first examples.

  Attributes:
    split: the split's name.
    kept: the people kept.
    skipped: {reason: people skipped for it}.
    examples: {reason: the first few people skipped for it, described}.
    bad_images: the first `NAMED_FILES` image files (names under images/)
      behind `IMAGE_REASONS` skips, in split order.
    num_bad_images: how many image files are behind them.
    all_bad_images: those files (only `bad_images` in a log read back with
      `from_json`).
  """

  def __init__(self, split: str, max_examples: int = 3):
    self.split = split
    self.max_examples = max_examples
    self.kept = 0
    self.skipped: collections.Counter[str] = collections.Counter()
    self.examples: dict[str, list[str]] = collections.defaultdict(list)
    self.bad_images: list[str] = []
    self.num_bad_images = 0
    self.all_bad_images: set[str] = set()  # People share images.

  def keep(self) -> None:
    self.kept += 1

  def skip(self, reason: str, what: str, detail: str = "",
           image: Optional[str] = None) -> None:
    """Counts a skipped person; `image` names its file (for IMAGE_REASONS)."""
    self.skipped[reason] += 1
    if len(self.examples[reason]) < self.max_examples:
      example = f"{what}: {detail}" if detail else what
      self.examples[reason].append(example)
      logging.warning("mpii %s: skipping %s (%s)", self.split, example, reason)
    if reason in IMAGE_REASONS and image and image not in self.all_bad_images:
      self.all_bad_images.add(image)
      self.num_bad_images += 1
      if len(self.bad_images) < NAMED_FILES:
        self.bad_images.append(image)

  @property
  def people(self) -> int:
    """The split's people, kept or skipped."""
    return self.kept + sum(self.skipped.values())

  @property
  def image_skips(self) -> int:
    """The people skipped for a missing or unreadable image."""
    return sum(self.skipped[r] for r in IMAGE_REASONS)

  def too_many_missing_images(self) -> bool:
    """More than `MAX_MISSING_IMAGE_SHARE` of the people lack their image."""
    return self.image_skips > MAX_MISSING_IMAGE_SHARE * self.people

  def missing_share(self) -> str:
    """'82 of 160 validation people (51.2%)', those without their image."""
    share = self.image_skips / max(self.people, 1)
    return (f"{self.image_skips} of {self.people} {self.split} people "
            f"({share:.1%})")

  def to_json(self) -> dict[str, Any]:
    """What the data set's metadata records (JSON values); `from_json`."""
    return {"kept": self.kept, "skipped": dict(sorted(self.skipped.items())),
            "examples": {r: list(e) for r, e in sorted(self.examples.items())},
            "bad_images": list(self.bad_images),
            "num_bad_images": self.num_bad_images}

  @classmethod
  def from_json(cls, split: str, record: dict[str, Any]) -> "SkipLog":
    """The log that `to_json` recorded (without the set of every file)."""
    log = cls(split)
    log.kept = int(record["kept"])
    log.skipped.update({r: int(n) for r, n in record["skipped"].items()})
    log.examples.update({r: list(e) for r, e in record["examples"].items()})
    log.bad_images = list(record["bad_images"])
    log.all_bad_images = set(log.bad_images)
    log.num_bad_images = int(record["num_bad_images"])
    return log

  def summary(self) -> str:
    total = sum(self.skipped.values())
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items()))
    line = (f"mpii {self.split}: kept {self.kept} of {self.kept + total} "
            f"people, skipped {total}")
    return f"{line} ({reasons})" if total else line


def empty_split_error(log: SkipLog, manual_dir: str) -> errors.InputError:
  """The error for a split without a usable person.

  TFDS would stop with "No examples were yielded", naming neither the folder
  nor why every person was skipped.
  """
  if not log.skipped:
    return errors.InputError(
        f"MPII {log.split}: the annotation files in {manual_dir} list no "
        "people for this split: they are empty or not MPII's; see "
        "MANUAL_DOWNLOAD_INSTRUCTIONS.")
  examples = "; ".join(e for reason in sorted(log.examples)
                       for e in log.examples[reason][:1])
  fixes = [_EMPTY_SPLIT_FIXES[r] for r in sorted(log.skipped)
           if r in _EMPTY_SPLIT_FIXES]
  fixes.append("compare the files with MANUAL_DOWNLOAD_INSTRUCTIONS")
  return errors.InputError(
      f"{log.summary()}: every person of this split in {manual_dir} was "
      f"skipped (for example {examples}). To fix: {'; '.join(fixes)}.")


def _files_named(logs: list[SkipLog], images_dir: str) -> str:
  """'a.jpg, b.jpg, c.jpg and 38 more files in DIR' (the splits share
  images: validation people stand in training images)."""
  names = []
  for log in logs:
    names += [n for n in log.bad_images if n not in names]
  names = names[:NAMED_FILES]
  more = len(set().union(*(log.all_bad_images for log in logs))) - len(names)
  if more > 0:
    names[-1] += f" and {more} more file{'s' if more > 1 else ''}"
  return f"{', '.join(names)} in {images_dir}"


def missing_images_error(logs: list[SkipLog],
                         images_dir: str) -> errors.InputError:
  """The error for splits that lost too many people to missing images.

  Args:
    logs: the splits past `MAX_MISSING_IMAGE_SHARE`
      (`SkipLog.too_many_missing_images`).
    images_dir: manual_dir/images.
  """
  shares = " and ".join(log.missing_share() for log in logs)
  return errors.InputError(
      f"MPII images are missing or unreadable for {shares}, more than the "
      f"{MAX_MISSING_IMAGE_SHARE:.0%} a split may lose: "
      f"{_files_named(logs, images_dir)}. A PCKh of what is left is not "
      "MPII's. Restore the images (extract mpii_human_pose_v1.tar.gz into "
      f"{images_dir} again), or opt in with --config.allow_missing_images "
      "(mpii_builder.build(..., allow_missing_images=True)) to use the "
      "people left.")


# ------------------------------------------------------------------ builder --


def _example_key(position: int) -> int:
  """An int key that keeps the generation order (`disable_shuffling`).

  TFDS sorts examples by key and buckets them by the key's top bits; spreading
  the keys over the 128-bit range keeps each bucket small instead of sorting
  the whole split (gigabytes of JPEG) in one bucket in memory.
  """
  if not 0 <= position < 1 << 18:
    raise ValueError(f"position {position} out of range")
  return position << 110


def other_people(splits: dict[str, Any]) -> dict[str, list[Record]]:
  """Every image's annotated people, over all splits, by image name.

  The validation people's images are training images of the release, whose
  other people may be in either split.
  """
  by_image = collections.defaultdict(list)
  for split in splits.values():
    for record in split.records + split.held_out:
      if np.asarray(record["annotated"], bool).any():
        by_image[record["image"]].append(record)
  return by_image


def _others(record: Record, people: list[Record]) -> dict[str, np.ndarray]:
  """The joints of the other annotated people in `record`'s image.

  `people` holds the same record objects as the splits; identity tells the
  person apart (the JSON layout has no release ids: index and person -1).
  """
  others = [p for p in people if p is not record]
  k = mpii.NUM_JOINTS
  return {
      "other_joints": np.asarray([p["joints"] for p in others],
                                 np.float32).reshape(-1, k, 2),
      "other_annotated": np.asarray([p["annotated"] for p in others],
                                    bool).reshape(-1, k),
  }


def _example(record: Record, image_path: str,
             people: list[Record]) -> dict[str, Any]:
  return {
      **_others(record, people),
      "image": image_path,  # TFDS stores the file's bytes as they are.
      "image_name": record["image"],
      "joints": record["joints"],
      "annotated": record["annotated"],
      "visible": record["visible"],
      "center": record["center"],
      "scale": np.float32(record["scale"]),
      "head_box": record["head_box"],
      "index": np.int32(record["index"]),
      "person": np.int32(record["person"]),
  }


class Mpii(tfds.core.GeneratorBasedBuilder):
  """MPII Human Pose, single person: one example per person (annotated in
  train and validation; test people have no joints)."""

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
      "1.0.0": ("Initial release: Tompson's validation split, official or "
                "HRNet/mmpose JSON annotations, original JPEG bytes."),
      "1.1.0": ("`other_joints`, `other_annotated`: the other annotated "
                "people of each example's image (where masks look)."),
      "1.2.0": ("`test`: the single people of the test images (release's "
                "`single_person`, or HRNet's test.json), without joints; "
                "metadata `test`: its count, why it is absent, the "
                "release's test images; metadata `skipped`: what each split "
                "skipped, per reason. train and validation unchanged."),
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """This file. TFDS 4.9.10's own lookup needs `importlib_resources`, which
    it does not declare on Python >= 3.9 (tensorflow/datasets#11212)."""
    return epath.Path(__file__)

  def __init__(self, *, allow_missing_images: bool = False, **kwargs):
    """A builder; `tfds.builder(name, allow_missing_images=...)` passes it.

    Args:
      allow_missing_images: prepare the data set even when more than
        `MAX_MISSING_IMAGE_SHARE` of the train or validation people lack
        a readable image (they are skipped, with a warning); False stops
        the preparation (`missing_images_error`).
      **kwargs: `tfds.core.DatasetBuilder`'s (data_dir, config, version).
    """
    super().__init__(**kwargs)
    self.allow_missing_images = bool(allow_missing_images)
    # TFDS rebuilds an unpickled builder from this state: keep the choice.
    self._original_state["allow_missing_images"] = self.allow_missing_images
    # Per split: what the last build kept and skipped (tests read this).
    self.reports: dict[str, SkipLog] = {}
    self._image_checks: dict[str, ImageCheck] = {}

  def _info(self) -> tfds.core.DatasetInfo:
    k = mpii.NUM_JOINTS
    return self.dataset_info_from_configs(
        description=(
            "MPII Human Pose (Andriluka et al., CVPR 2014), one example per "
            "person. Coordinates are 0-based pixels of the original image; "
            "`center` and `scale` are MPII's raw objpos and scale (height/200)."
            " Validation is Tompson et al.'s 2958 people in gt_valid.mat "
            "order."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(encoding_format="jpeg"),
            "image_name": tfds.features.Text(),
            "joints": tfds.features.Tensor(shape=(k, 2), dtype=np.float32),
            "annotated": tfds.features.Tensor(shape=(k,), dtype=np.bool_),
            "visible": tfds.features.Tensor(shape=(k,), dtype=np.int32),
            "center": tfds.features.Tensor(shape=(2,), dtype=np.float32),
            "scale": tfds.features.Scalar(dtype=np.float32),
            "head_box": tfds.features.Tensor(shape=(4,), dtype=np.float32),
            "index": tfds.features.Scalar(dtype=np.int32),
            "person": tfds.features.Scalar(dtype=np.int32),
            "other_joints": tfds.features.Tensor(shape=(None, k, 2),
                                                 dtype=np.float32),
            "other_annotated": tfds.features.Tensor(shape=(None, k),
                                                    dtype=np.bool_),
        }),
        homepage="http://human-pose.mpi-inf.mpg.de/",
        # Filled while the splits are written (`_test_metadata`), saved as
        # metadata.json beside the data and read back with the data set.
        metadata=tfds.core.MetadataDict(),
        # Validation must stay in gt_valid.mat order; training shuffles in
        # tf.data anyway.
        disable_shuffling=True,
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    files = mpii_layouts.find_manual_files(dl_manager.manual_dir)
    logging.info("mpii: layout %s in %s", files.layout, dl_manager.manual_dir)
    splits = mpii_layouts.read_splits(files)
    people = other_people(splits)
    manual_dir = os.path.dirname(files.images)
    # Every person is checked before TFDS is told which splits there are
    # and writes an example: an empty split or a folder missing many images
    # stops before the minutes of writing, and the counts are known for the
    # metadata (which TFDS saves once the splits are written).
    kept = {name: self._check_people(name, splits[name], files.images,
                                     require_head_box=name == "validation",
                                     require_joints=name != "test")
            for name in ("train", "validation", "test")}
    for name in CHECKED_SPLITS:
      if not kept[name]:
        raise empty_split_error(self.reports[name], manual_dir)
    self._check_missing_images(files.images)
    self.info.metadata[SKIPPED_METADATA] = {
        "allow_missing_images": self.allow_missing_images,
        "splits": {name: log.to_json() for name, log in self.reports.items()},
    }
    self.info.metadata[TEST_METADATA] = _test_metadata(
        files.layout, splits["test"], kept["test"], self.reports["test"],
        manual_dir)
    # TFDS refuses a split without examples: a test split whose people were
    # all skipped is left out (its metadata says why).
    return {name: self._generate_examples(kept[name], files.images, people)
            for name in ("train", "validation", "test") if kept[name]}

  def _check_missing_images(self, images_dir: str) -> None:
    """Stops, or warns, when a split lost too many people to its images.

    Raises:
      errors.InputError: past `MAX_MISSING_IMAGE_SHARE` in train or
        validation without `allow_missing_images`.
    """
    over = [self.reports[name] for name in CHECKED_SPLITS
            if self.reports[name].too_many_missing_images()]
    if not over:
      return
    if not self.allow_missing_images:
      raise missing_images_error(over, images_dir)
    for log in over:
      logging.warning(
          "mpii %s: %s have no readable image, kept out of the data set as "
          "allow_missing_images asks: %s. Its scores are not comparable to "
          "those of the whole set.", log.split, log.missing_share(),
          _files_named([log], images_dir))

  def _check_image(self, path: str) -> ImageCheck:
    """`inspect_image`, once per file (people share images)."""
    if path not in self._image_checks:
      self._image_checks[path] = inspect_image(path)
    return self._image_checks[path]

  def _check_people(self, split: str, records: mpii_layouts.SplitRecords,
                    images_dir: str, require_head_box: bool,
                    require_joints: bool) -> list[tuple[int, Record]]:
    """The usable people of a split with their positions; counts the others.

    Test people have no joints: `validate_record` checks their centre and
    scale, `inspect_image` their image (`require_joints` False).
    """
    log = self.reports[split] = SkipLog(split)
    for what in records.missing:
      log.skip(NOT_ANNOTATED, what)
    for record in records.held_out:
      log.skip(HELD_OUT, describe(record))
    kept = []
    for position, record in enumerate(records.records):
      check = self._check_image(os.path.join(images_dir, record["image"]))
      reason = check.reason or validate_record(
          record, check.size, require_head_box, require_joints)
      if reason:
        log.skip(reason, describe(record), check.detail, record["image"])
        continue
      log.keep()
      kept.append((position, record))
    # People left out change what the split's scores mean: a warning.
    if log.skipped:
      logging.warning("%s", log.summary())
    else:
      logging.info("%s", log.summary())
    return kept

  def _generate_examples(self, kept: list[tuple[int, Record]],
                         images_dir: str, people: dict[str, list[Record]]
                         ) -> Iterator[tuple[int, dict[str, Any]]]:
    for position, record in kept:
      path = os.path.join(images_dir, record["image"])
      yield _example_key(position), _example(
          record, path, people.get(record["image"], []))


# The metadata entry of the test split (`Mpii.info.metadata`).
TEST_METADATA = "test"
# The metadata entry of what each split skipped: `allow_missing_images` (the
# builder's choice) and `splits`, {split: `SkipLog.to_json()`}.
SKIPPED_METADATA = "skipped"


def _test_metadata(layout: str, records: mpii_layouts.SplitRecords,
                   kept: list[tuple[int, Record]], log: SkipLog,
                   manual_dir: str) -> dict[str, Any]:
  """What the data set keeps about its test split (JSON values).

  Returns:
    `layout`, `people` (the examples of `test`), `note` (why there is no
    `test` split; "" when there is one) and `images` (layout (a): the
    release's test images, `mpii_official.test_images`; else None).
  """
  note = ""
  if not kept:
    note = records.note or str(empty_split_error(log, manual_dir))
  return {"layout": layout, "people": len(kept), "note": note,
          "images": records.images}


@dataclasses.dataclass(frozen=True)
class TestSplit:
  """The test split's people, as the data set lists them.

  Attributes:
    people: per example of `test`, in split order: `image_name` (str),
      `index`, `person` (0-based release ids, -1 in the JSON layout),
      `center` (0-based objpos) and `scale`.
    images: the release's test images (`mpii_official.test_images`), or
      None when the data set was built from the JSON layout.
    layout: "official" or "json".
  """
  people: dict[str, np.ndarray]
  images: Optional[list[dict[str, Any]]]
  layout: str


def read_test_split(builder: tfds.core.DatasetBuilder) -> TestSplit:
  """The prepared data set's test people and the release's test images.

  Raises:
    errors.InputError: the data set has no test split; the message says why
      (no test people in the annotation files, or every one skipped).
  """
  metadata = builder.info.metadata or {}
  info = metadata.get(TEST_METADATA)
  if "test" not in builder.info.splits:
    why = (info or {}).get("note") or (
        f"its metadata does not say why ({Mpii.name} before 1.2.0?).")
    raise errors.InputError(
        f"The MPII data in {builder.data_dir} has no test people: {why} "
        f"Once manual_dir has them, delete {builder.data_dir} to prepare "
        "the data set again.")
  keys = ("image_name", "index", "person", "center", "scale")
  # The image bytes are read with the records, but never decoded.
  ds = builder.as_dataset(
      split="test", decoders={"image": tfds.decode.SkipDecoding()}).map(
          lambda example: {key: example[key] for key in keys})
  rows = {key: [] for key in keys}
  for example in tfds.as_numpy(ds):
    for key in keys:
      rows[key].append(example[key])
  people = {key: np.asarray(value) for key, value in rows.items()}
  people["image_name"] = np.asarray(
      [name.decode() for name in rows["image_name"]], dtype=object)
  return TestSplit(people=people, images=info["images"],
                   layout=info["layout"])


def recorded_skips(builder: tfds.core.DatasetBuilder
                   ) -> Optional[dict[str, SkipLog]]:
  """{split: what the prepared data set skipped}, from its metadata.

  Returns:
    The logs of every split (test too), or None for a data set prepared
    before the counts were recorded.
  """
  record = (builder.info.metadata or {}).get(SKIPPED_METADATA)
  if not record:
    return None
  return {split: SkipLog.from_json(split, log)
          for split, log in record["splits"].items()}


def check_recorded_skips(builder: tfds.core.DatasetBuilder,
                         allow_missing_images: bool) -> None:
  """Warns again about what a reused data set skipped; refuses as `build`.

  Raises:
    errors.InputError: the data set was prepared (with the opt-in) from a
      folder whose train or validation split lost more than
      `MAX_MISSING_IMAGE_SHARE` of its people to missing images, and
      `allow_missing_images` is False.
  """
  logs = recorded_skips(builder)
  if logs is None:
    logging.warning(
        "The MPII data in %s does not record the people it skipped when it "
        "was prepared; delete that folder to prepare it again and check "
        "its images.", builder.data_dir)
    return
  for log in logs.values():
    if log.skipped:
      logging.warning("%s (when %s was prepared)", log.summary(),
                      builder.data_dir)
  over = [logs[name] for name in CHECKED_SPLITS
          if name in logs and logs[name].too_many_missing_images()]
  if over and not allow_missing_images:
    shares = " and ".join(log.missing_share() for log in over)
    raise errors.InputError(
        f"The MPII data in {builder.data_dir} was prepared without the "
        f"images of {shares}, more than the "
        f"{MAX_MISSING_IMAGE_SHARE:.0%} a split may lose (allowed then by "
        "allow_missing_images). Opt in again with "
        "--config.allow_missing_images to use it as it is, or restore the "
        "images in manual_dir and delete that folder to prepare it again.")


def build(manual_dir: str, data_dir: str,
          allow_missing_images: bool = False) -> tfds.core.DatasetBuilder:
  """Prepares the `mpii` data set (once) and returns its builder.

  Nothing is fetched from the network: no GCS lookup, no download.

  Args:
    manual_dir: the folder filled as `MANUAL_DOWNLOAD_INSTRUCTIONS` says.
    data_dir: where TFDS writes (and later finds) the prepared data.
    allow_missing_images: use a folder whose train or validation split
      loses more than `MAX_MISSING_IMAGE_SHARE` of its people to missing or
      unreadable images (`Mpii`); also needed to reuse a data set prepared
      so.

  Returns:
    The prepared builder; `builder.as_dataset(split=...)` reads it.

  Raises:
    mpii_layouts.MissingFilesError: `manual_dir` lacks a file (only checked
      when the data set is not prepared yet).
    errors.InputError: too many images are missing
      (`missing_images_error`, `check_recorded_skips`), a split has no
      usable person, or a file is damaged.
  """
  # An argument TFDS does not know makes it build the class from this code
  # (not a read-only builder from the files), and passes it on.
  builder = tfds.builder(Mpii.name, data_dir=os.path.expanduser(data_dir),
                         try_gcs=False,
                         allow_missing_images=allow_missing_images)
  if builder.is_prepared():
    check_recorded_skips(builder, allow_missing_images)
  else:
    mpii_layouts.find_manual_files(manual_dir)  # Fail before TFDS starts.
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir), try_download_gcs=False))
  return builder


_CITATION = """\
@inproceedings{andriluka14cvpr,
  author = {Mykhaylo Andriluka and Leonid Pishchulin and Peter Gehler and
            Bernt Schiele},
  title = {2D Human Pose Estimation: New Benchmark and State of the Art
           Analysis},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition
               (CVPR)},
  year = {2014},
}
"""
