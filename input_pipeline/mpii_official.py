"""Reader for MPII's official release and pose-hg-train's validation split.

The release's training images (`img_train == 1`) carry the annotated people;
its test images only a rough centre (`objpos`) and `scale` per person, and
`single_person` lists each image's people that the single-person benchmark
scores (`read_test_people`, `test_images`).

The official annotations (`mpii_human_pose_v1_u12_1.mat`, struct `RELEASE`,
MATLAB v5) are read with `scipy.io.loadmat`. MATLAB's struct arrays come back
in awkward shapes: a 1x1 struct array where one would expect a list, a 0x0
double where a struct is missing, `is_visible` as a number, a string or `[]`.
`matlab_structs` flattens all of that, so the parsing functions read like the
MATLAB code they mirror. A damaged file (truncated, MATLAB v7.3, without the
struct or column a reader needs) is an `errors.InputError` that names the
file and the field and says where to get a good copy; a damaged person is
not: the builder skips and counts it.

Every reader of this package returns people as plain dicts, the *record*
format shared with `mpii_json` and `mpii_builder`:

  image:     str, the file name under `images/`.
  index:     int, 0-based image index into `RELEASE.annolist` (-1: unknown).
  person:    int, 0-based index into that image's `annorect` (-1: unknown).
  joints:    float32 (16, 2), 0-BASED pixel (x, y) (MPII's 1-based x-1, y-1),
             in `acnn_jax.mpii.JOINT_NAMES` order; 0 where not annotated.
  annotated: bool (16,), the joint has a point in the annotation.
  visible:   int32 (16,), MPII's `is_visible` (1 visible, 0 occluded); -1 when
             unknown or not annotated.
  center:    float32 (2,), `objpos`, 0-based and raw (NOT moved down by
             15 * scale: the crop code does that).
  scale:     float32, raw MPII scale (person height / 200 px, not x1.25).
  head_box:  float32 (4,), x1, y1, x2, y2, 0-based (zeros when unknown).
"""

from typing import Any, Iterable, NamedTuple, Optional, Sequence

import numpy as np

from acnn_jax import errors
from acnn_jax import mpii
from input_pipeline import array_files
from input_pipeline import matlab_structs

RELEASE_FILE = "mpii_human_pose_v1_u12_1.mat"
VALID_H5_FILE = "valid.h5"
IMAGES_DIR = "images"  # Records name their image file inside this folder.
RELEASE_URL = ("https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/"
               "mpii_human_pose_v1_u12_2.zip")
VALID_H5_URL = "https://github.com/princeton-vl/pose-hg-train"
# How to replace a damaged file: the end of every error about one.
RELEASE_FIX = (f"Download {RELEASE_URL} again and unzip {RELEASE_FILE} from "
               "it into manual_dir (see MANUAL_DOWNLOAD_INSTRUCTIONS).")
VALID_H5_FIX = (f"Copy data/mpii/annot/{VALID_H5_FILE} of {VALID_H5_URL} "
                "again into manual_dir (see MANUAL_DOWNLOAD_INSTRUCTIONS).")

Record = dict
Pair = tuple[int, int]


# ------------------------------------------------------------------ records --


def make_record(*, image: str, index: int, person: int, joints: Any,
                annotated: Any, visible: Any, center: Any, scale: float,
                head_box: Any) -> Record:
  """Builds a record with the contract's dtypes and shapes.

  Joints that are not annotated are set to 0 here, once for every reader, so
  that no file's placeholder (-1, 0, NaN) leaks into the data.

  Args:
    image: file name under `images/`.
    index: 0-based image index in the release, or -1.
    person: 0-based person index in the image's `annorect`, or -1.
    joints: (16, 2) 0-based pixel coordinates.
    annotated: (16,) truthy where the joint is annotated.
    visible: (16,) MPII's visibility flag, -1 when unknown.
    center: (2,) 0-based `objpos`.
    scale: raw MPII scale.
    head_box: (4,) x1, y1, x2, y2, 0-based.

  Returns:
    The record dict (see the module docstring).
  """
  annotated = np.asarray(annotated, bool).reshape(mpii.NUM_JOINTS)
  joints = np.asarray(joints, np.float32).reshape(mpii.NUM_JOINTS, 2).copy()
  joints[~annotated] = 0.0
  visible = np.asarray(visible, np.int32).reshape(mpii.NUM_JOINTS).copy()
  visible[~annotated] = -1
  return {
      "image": str(image),
      "index": int(index),
      "person": int(person),
      "joints": joints,
      "annotated": annotated,
      "visible": visible,
      "center": np.asarray(center, np.float32).reshape(2),
      "scale": np.float32(scale),
      "head_box": np.asarray(head_box, np.float32).reshape(4),
  }


# The MATLAB struct helpers, under the short names the parsers below (and
# their tests) read like MATLAB with.
structs = matlab_structs.structs
field = matlab_structs.field
number = matlab_structs.number
text = matlab_structs.text


# ------------------------------------------------------- annolist parsing --


def parse_points(annopoints: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Reads `annopoints.point` into joint arrays.

  Args:
    annopoints: the `annopoints` field of one `annorect` (struct, 1x1 struct
      array or None).

  Returns:
    (joints, annotated, visible): (16, 2) float 1-BASED coordinates as stored,
    (16,) bool and (16,) int32 (-1 when `is_visible` is empty or absent).
    Points with an empty coordinate or an id outside 0..15 are ignored.
  """
  joints = np.zeros((mpii.NUM_JOINTS, 2), np.float64)
  annotated = np.zeros(mpii.NUM_JOINTS, bool)
  visible = np.full(mpii.NUM_JOINTS, -1, np.int32)
  for holder in structs(annopoints):
    for point in structs(field(holder, "point")):
      joint_id, x, y = (number(field(point, k)) for k in ("id", "x", "y"))
      if joint_id is None or x is None or y is None:
        continue
      joint_id = int(joint_id)
      if not 0 <= joint_id < mpii.NUM_JOINTS:
        continue
      joints[joint_id] = (x, y)
      annotated[joint_id] = True
      flag = number(field(point, "is_visible"))
      if flag is not None:
        visible[joint_id] = int(flag != 0)
  return joints, annotated, visible


def parse_objpos(rect: Any) -> Optional[np.ndarray]:
  """One `annorect`'s `objpos` as a 1-BASED (x, y) array, as stored; None
  when it has none (or an empty coordinate)."""
  objpos = structs(field(rect, "objpos"))
  if objpos:
    x, y = number(field(objpos[0], "x")), number(field(objpos[0], "y"))
    if x is not None and y is not None:
      return np.array([x, y], np.float64)
  return None


def parse_annorect(rect: Any, *, image: str = "", index: int = -1,
                   person: int = -1) -> Record:
  """Parses one person (`annolist(i).annorect(p)`) into a record.

  Missing pieces become the record's "unknown" values rather than errors:
  no points gives an all-False `annotated`, no `objpos`/`scale` gives zeros
  (which the builder's validation rejects), no head box gives zeros.

  Args:
    rect: one `annorect` struct.
    image: the image file name.
    index: 0-based image index.
    person: 0-based person index.

  Returns:
    The record, 0-based (see the module docstring).
  """
  joints, annotated, visible = parse_points(field(rect, "annopoints"))
  objpos = parse_objpos(rect)
  center = np.zeros(2) if objpos is None else objpos - 1.0
  scale = number(field(rect, "scale")) or 0.0
  box = [number(field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
  head_box = (np.zeros(4) if any(v is None for v in box) else
              np.array(box) - 1.0)
  return make_record(image=image, index=index, person=person,
                     joints=joints - 1.0, annotated=annotated,
                     visible=visible, center=center, scale=scale,
                     head_box=head_box)


def image_name(entry: Any) -> str:
  """The file name of one `annolist` entry ('' when it has no `image`)."""
  images = structs(field(entry, "image"))
  return text(field(images[0], "name")) if images else ""


def parse_annolist(annolist: Any, *, img_train: Optional[Sequence[Any]] = None,
                   include_unannotated: bool = False) -> list[Record]:
  """Parses every person of an `annolist` struct array.

  Args:
    annolist: the `annolist` struct array (e.g. `RELEASE.annolist`).
    img_train: optional per-image flags; when given, only images whose flag is
      1 are read (the test images carry no points anyway).
    include_unannotated: also return people without any point (their
      `annotated` is all False). The builder uses this to count them.

  Returns:
    Records in (image index, person index) order; `index` and `person` are the
    0-based positions in `annolist` and in the image's `annorect`.
  """
  records = []
  for index, entry in enumerate(structs(annolist)):
    if img_train is not None and number(img_train[index]) != 1:
      continue
    name = image_name(entry)
    for person, rect in enumerate(structs(field(entry, "annorect"))):
      record = parse_annorect(rect, image=name, index=index, person=person)
      if include_unannotated or record["annotated"].any():
        records.append(record)
  return records


def load_release(path: str) -> Any:
  """Loads the `RELEASE` struct of `mpii_human_pose_v1_u12_1.mat`.

  Raises:
    errors.MissingError: the file does not exist.
    errors.InputError: it is not a MATLAB v5 file, or has no `RELEASE` struct.
  """
  mat = array_files.load_mat(path, RELEASE_FILE, RELEASE_FIX)
  if "RELEASE" not in mat:
    raise errors.InputError(
        f"{path} has no RELEASE struct: is it {RELEASE_FILE} from "
        f"mpii_human_pose_v1_u12_2.zip? {RELEASE_FIX}")
  release = structs(mat["RELEASE"])
  if len(release) != 1:
    raise errors.InputError(
        f"{path}: RELEASE must be one struct, got "
        f"{matlab_structs.describe(mat['RELEASE'])}. {RELEASE_FIX}")
  return release[0]


class Release(NamedTuple):
  """The parts of `RELEASE` that the readers use, checked.

  Attributes:
    path: the file, for messages.
    annolist: the `annolist` struct array.
    img_train: (N,) the per-image flags, 1 for a training image.
    single_person: the raw `single_person` cell array (see
      `single_person`), None when the file has none.
  """
  path: str
  annolist: Any
  img_train: np.ndarray
  single_person: Any


def read_release_parts(path: str) -> Release:
  """Loads the release and checks `annolist` and `img_train`.

  Raises:
    errors.MissingError, errors.InputError: see `load_release`; also when
      `annolist` or `img_train` is missing or they disagree in length.
  """
  release = load_release(path)
  annolist = field(release, "annolist")
  entries = len(structs(annolist))
  if not entries:
    raise errors.InputError(
        f"{path}: RELEASE.annolist is missing or not a struct array (got "
        f"{matlab_structs.describe(annolist)}). {RELEASE_FIX}")
  img_train = field(release, "img_train")
  flags = np.asarray(img_train if img_train is not None else []).ravel()
  if flags.dtype.kind not in "biuf" or flags.size != entries:
    raise errors.InputError(
        f"{path}: RELEASE.img_train must hold one 0/1 flag per annolist entry"
        f" ({entries}), got "
        f"{matlab_structs.describe(img_train)}. {RELEASE_FIX}")
  return Release(path, annolist, flags, field(release, "single_person"))


def read_release(path: str, include_unannotated: bool = False) -> list[Record]:
  """Reads the training-image people of the official release.

  Args:
    path: `mpii_human_pose_v1_u12_1.mat`.
    include_unannotated: see `parse_annolist`.

  Returns:
    One record per person of an `img_train == 1` image (with points, unless
    `include_unannotated`), in (index, person) order.

  Raises:
    errors.MissingError, errors.InputError: see `read_release_parts`.
  """
  release = read_release_parts(path)
  return parse_annolist(release.annolist, img_train=release.img_train,
                        include_unannotated=include_unannotated)


# -------------------------------------------------------------- test split --


def single_person(release: Release) -> Optional[list[list[int]]]:
  """`RELEASE.single_person`: per image, its single people, 0-based.

  The release lists, for every image, the 1-based `annorect` indices of the
  people "sufficiently separated" from the others: the people the
  single-person benchmark scores (a column vector, or [] for none).

  Args:
    release: from `read_release_parts`.

  Returns:
    One ascending list of 0-based annorect indices per `annolist` entry;
    None when the file has no `single_person` (a trimmed release, such as
    the synthetic sets written before builder 1.2.0).

  Raises:
    errors.InputError: the field is not one cell per image, or a cell holds
      something other than whole numbers >= 1.
  """
  if release.single_person is None:
    return None
  entries = len(release.img_train)
  items = matlab_structs.cells(release.single_person)
  if items is None or len(items) != entries:
    raise errors.InputError(
        f"{release.path}: RELEASE.single_person must be a cell array with "
        f"one cell per annolist entry ({entries}), got "
        f"{matlab_structs.describe(release.single_person)}. {RELEASE_FIX}")
  people = []
  for i, item in enumerate(items):
    values = np.asarray(item if item is not None else []).ravel()
    if values.size and (values.dtype.kind not in "biuf" or np.any(
        ~np.isfinite(values.astype(np.float64)) | (values < 1) |
        (values != np.round(values)))):
      raise errors.InputError(
          f"{release.path}: RELEASE.single_person{{{i + 1}}} (image index "
          f"{i}, 0-based) must hold 1-based annorect indices, got "
          f"{values.tolist()}. {RELEASE_FIX}")
    people.append(sorted({int(v) - 1 for v in values}))
  return people


def _test_indices(release: Release) -> list[int]:
  """The 0-based annolist indices of the test images (img_train == 0)."""
  return [i for i, flag in enumerate(release.img_train) if number(flag) == 0]


def read_test_people(release: Release) -> tuple[list[Record], list[str]]:
  """The single people of the release's test images (`img_train == 0`).

  Args:
    release: from `read_release_parts`.

  Returns:
    (records, missing): one record per single person, in (index, person)
    order, with its 0-based `objpos` as `center` (NaN when it has none, so
    that the builder skips it) and its `scale` (0 when absent), and no
    joints: `annotated` all False, `joints` and `head_box` zeros, `visible`
    -1. `missing` describes the `single_person` entries that name no
    annorect of their image. Both are empty when the file has no
    `single_person`.

  Raises:
    errors.InputError: see `single_person`.
  """
  single = single_person(release)
  if single is None:
    return [], []
  annolist = structs(release.annolist)
  records, missing = [], []
  k = mpii.NUM_JOINTS
  for index in _test_indices(release):
    entry = annolist[index]
    rects = structs(field(entry, "annorect"))
    for person in single[index]:
      if person >= len(rects):
        missing.append(f"index {index}, person {person}")
        continue
      objpos = parse_objpos(rects[person])
      records.append(make_record(
          image=image_name(entry), index=index, person=person,
          joints=np.zeros((k, 2)), annotated=np.zeros(k, bool),
          visible=np.full(k, -1),
          center=np.full(2, np.nan) if objpos is None else objpos - 1.0,
          scale=number(field(rects[person], "scale")) or 0.0,
          head_box=np.zeros(4)))
  return records, missing


def test_images(release: Release) -> list[dict[str, Any]]:
  """The release's test images as the benchmark's `pred` must list them.

  MPII's toolkit (`evaluatePCKh.m`) asserts that `pred` has one entry per
  test image, and pairs predictions with ground truth by walking each
  image's annorects that have an `objpos`: a submission must keep every
  test image and every annorect, in the release's order, with the
  release's `objpos` (see `acnn_jax.submission`).

  Args:
    release: from `read_release_parts`.

  Returns:
    Per test image, in release order, a JSON-ready dict: `index` (0-based
    annolist index), `name`, `objpos` (per annorect its 1-BASED [x, y] as
    stored, or None), `scale` (per annorect, or None) and `single_person`
    (0-based annorect indices; [] when the file has no `single_person`).

  Raises:
    errors.InputError: see `single_person`.
  """
  single = single_person(release)
  annolist = structs(release.annolist)
  images = []
  for index in _test_indices(release):
    rects = structs(field(annolist[index], "annorect"))
    objpos = [parse_objpos(rect) for rect in rects]
    images.append({
        "index": index,
        "name": image_name(annolist[index]),
        "objpos": [None if p is None else [float(p[0]), float(p[1])]
                   for p in objpos],
        "scale": [number(field(rect, "scale")) for rect in rects],
        "single_person": single[index] if single else [],
    })
  return images


# ------------------------------------------------------- validation split --


def _valid_h5_columns(path: str) -> dict[str, np.ndarray]:
  """`valid.h5`'s `index` and `person` (and `imgname` when present), checked.

  Raises:
    errors.MissingError: the file does not exist.
    errors.InputError: it is not HDF5 (or a .mat), is damaged, or its columns
      are missing, of unequal lengths, or not whole non-negative numbers.
  """
  arrays = array_files.read_arrays(path, VALID_H5_FILE, VALID_H5_FIX)
  columns = {}
  for key in ("index", "person"):
    if key not in arrays:
      raise errors.InputError(
          f"{path} has no '{key}' dataset (it has "
          f"{sorted(k for k in arrays if not k.startswith('__'))}): is it "
          f"pose-hg-train's annot/{VALID_H5_FILE}? {VALID_H5_FIX}")
    column = np.asarray(arrays[key]).ravel()
    if column.dtype.kind not in "biuf":
      raise errors.InputError(
          f"{path}: '{key}' must hold numbers, got dtype {column.dtype}. "
          f"{VALID_H5_FIX}")
    column = column.astype(np.float64)  # pose-hg-train stores floats.
    bad = np.flatnonzero(~np.isfinite(column) | (column < 0) |
                         (column != np.round(column)))
    if bad.size:
      raise errors.InputError(
          f"{path}: '{key}' must hold 0-based indices (whole numbers >= 0), "
          f"but row {bad[0]} (0-based) holds {column[bad[0]]}. "
          f"{VALID_H5_FIX}")
    columns[key] = column.astype(np.int64)
  if "imgname" in arrays:
    columns["imgname"] = np.asarray(arrays["imgname"])
  lengths = {k: len(v) for k, v in columns.items()}
  if len(set(lengths.values())) > 1:
    raise errors.InputError(
        f"{path}: its columns differ in length ({lengths}): the file is "
        f"damaged. {VALID_H5_FIX}")
  return columns


def read_valid_h5(path: str) -> list[Pair]:
  """The (index, person) pairs, 0-based, of pose-hg-train's `valid.h5`.

  Args:
    path: `annot/valid.h5` of princeton-vl/pose-hg-train (Tompson's 2958
      validation people).

  Returns:
    The pairs in file order (the order of `gt_valid.mat`).

  Raises:
    errors.MissingError, errors.InputError: see `_valid_h5_columns`.
  """
  columns = _valid_h5_columns(path)
  return [(int(i), int(p)) for i, p in zip(columns["index"],
                                           columns["person"])]


def read_valid_h5_image_names(path: str) -> Optional[list[str]]:
  """The `imgname` column of `valid.h5`, or None when the file has none."""
  names = _valid_h5_columns(path).get("imgname")
  if names is None:
    return None
  if names.ndim == 2:  # Some writers store the names as uint8 character rows.
    return ["".join(chr(c) for c in row if c).strip() for row in names]
  return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


class Split(NamedTuple):
  """Records split into training and validation people.

  Attributes:
    train: the training people.
    validation: the validation people, in `valid_pairs` order.
    missing: validation pairs that no record has.
    held_out: the people of the images of `missing` pairs, in neither split:
      one of them may be the validation person the pair meant to name.
    unplaced: the `missing` pairs whose image is unknown (neither their name
      nor their index is an image of the records), so any training person
      may be theirs.
  """
  train: list[Record]
  validation: list[Record]
  missing: list[Pair]
  held_out: list[Record]
  unplaced: list[Pair]


def split_records(records: Iterable[Record], valid_pairs: Sequence[Pair],
                  valid_names: Optional[Sequence[str]] = None) -> Split:
  """Splits records by Tompson's validation (index, person) pairs.

  Training keeps every other person, including the other people of
  validation images (as pose-hg-train does), except where a pair names no
  record: a damaged index or person number would otherwise send the person it
  meant into training, so every person of that pair's image (by its name in
  `valid_names` and by its index) is held out of both splits.

  Args:
    records: people of the `img_train` images.
    valid_pairs: 0-based (index, person) pairs, e.g. from `read_valid_h5`.
    valid_names: the image name of each pair (`valid.h5`'s `imgname`), or
      None.

  Returns:
    A `Split`; training records keep the input order.
  """
  if valid_names is not None and len(valid_names) != len(valid_pairs):
    raise ValueError(f"{len(valid_names)} names for {len(valid_pairs)} pairs")
  records = list(records)
  by_pair = {(r["index"], r["person"]): r for r in records}
  image_of_index = {r["index"]: r["image"] for r in records}
  known_images = set(image_of_index.values())
  validation, missing, unplaced, suspect_images = [], [], [], set()
  for k, pair in enumerate(valid_pairs):
    pair = (int(pair[0]), int(pair[1]))
    if pair in by_pair:
      validation.append(by_pair[pair])
      continue
    missing.append(pair)
    images = known_images & {image_of_index.get(pair[0]),
                             valid_names[k] if valid_names else None}
    suspect_images |= images
    if not images:
      unplaced.append(pair)
  wanted = {(r["index"], r["person"]) for r in validation}
  train, held_out = [], []
  for r in records:
    if (r["index"], r["person"]) in wanted:
      continue
    (held_out if r["image"] in suspect_images else train).append(r)
  return Split(train, validation, missing, held_out, unplaced)
