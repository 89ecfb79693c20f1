"""Reader for MPII's official release and pose-hg-train's validation split.

The official annotations (`mpii_human_pose_v1_u12_1.mat`, struct `RELEASE`,
MATLAB v5) are read with `scipy.io.loadmat`. MATLAB's struct arrays come back
in awkward shapes: a 1x1 struct array where one would expect a list, a 0x0
double where a struct is missing, `is_visible` as a number, a string or `[]`.
The helpers below flatten all of that, so the parsing functions read like the
MATLAB code they mirror.

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

import h5py
import numpy as np
import scipy.io

from acnn_jax import errors
from acnn_jax import mpii

RELEASE_FILE = "mpii_human_pose_v1_u12_1.mat"
VALID_H5_FILE = "valid.h5"
IMAGES_DIR = "images"  # Records name their image file inside this folder.

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


# --------------------------------------------------- MATLAB struct helpers --


def _is_struct(value: Any) -> bool:
  return ((isinstance(value, np.void) and value.dtype.names is not None) or
          isinstance(value, scipy.io.matlab.mat_struct))


def structs(value: Any) -> list[Any]:
  """Flattens a MATLAB struct array of any shape into a list of structs.

  Works for `loadmat`'s default output (structured ndarrays, possibly wrapped
  in 1x1 object arrays), for `squeeze_me=True` (a lone struct instead of an
  array) and for `struct_as_record=False` (`mat_struct` objects).

  Args:
    value: a field value: struct array, single struct, object array, empty
      array or None.

  Returns:
    The structs in MATLAB's column-major order; [] for empty or non-struct
    values (e.g. the 0x0 double MATLAB stores for a missing struct).
  """
  if value is None:
    return []
  if _is_struct(value):
    return [value]
  if isinstance(value, np.ndarray):
    if value.dtype.names is not None:
      return list(value.ravel(order="F"))
    if value.dtype == object:
      out = []
      for item in value.ravel(order="F"):
        out.extend(structs(item))
      return out
  return []


def field(struct: Any, name: str) -> Any:
  """A struct's field, or None when the field is absent or empty."""
  if isinstance(struct, np.void):
    value = struct[name] if name in struct.dtype.names else None
  else:
    value = getattr(struct, name, None)
  if isinstance(value, np.ndarray) and value.size == 0:
    return None
  return value


def number(value: Any) -> Optional[float]:
  """A MATLAB scalar (number, 1x1 array, numeric string) as a float.

  Args:
    value: the raw field value.

  Returns:
    The float, or None for empty values, non-numeric strings and arrays that
    hold more than one number.
  """
  if value is None:
    return None
  if isinstance(value, bytes):
    value = value.decode(errors="replace")
  if isinstance(value, str):
    try:
      return float(value.strip())
    except ValueError:
      return None
  array = np.asarray(value)
  if array.dtype.kind in "US":  # A char array such as array(['1']).
    return number("".join(
        c.decode(errors="replace") if isinstance(c, bytes) else str(c)
        for c in array.ravel()))
  if array.size != 1:
    return None
  if array.dtype == object:  # A 1x1 cell around the value.
    return number(array.ravel()[0])
  # float() first: MPII stores many coordinates as uint8/uint16, where x - 1
  # would wrap around.
  return float(array.ravel()[0])


def text(value: Any) -> str:
  """A MATLAB char array (or its numpy wrapping) as a str; '' when empty."""
  if value is None:
    return ""
  if isinstance(value, str):
    return value
  array = np.asarray(value)
  if array.dtype == object:
    return "".join(text(item) for item in array.ravel())
  return "".join(str(item) for item in array.ravel())


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
  center = np.zeros(2)
  objpos = structs(field(rect, "objpos"))
  if objpos:
    x, y = number(field(objpos[0], "x")), number(field(objpos[0], "y"))
    if x is not None and y is not None:
      center = np.array([x, y]) - 1.0
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
  """Loads the `RELEASE` struct of `mpii_human_pose_v1_u12_1.mat`."""
  mat = scipy.io.loadmat(path)
  if "RELEASE" not in mat:
    raise errors.InputError(
        f"{path} has no RELEASE struct: is it {RELEASE_FILE} from "
        "mpii_human_pose_v1_u12_2.zip?")
  return structs(mat["RELEASE"])[0]


def read_release(path: str, include_unannotated: bool = False) -> list[Record]:
  """Reads the training-image people of the official release.

  Args:
    path: `mpii_human_pose_v1_u12_1.mat`.
    include_unannotated: see `parse_annolist`.

  Returns:
    One record per person of an `img_train == 1` image (with points, unless
    `include_unannotated`), in (index, person) order.
  """
  release = load_release(path)
  img_train = np.asarray(field(release, "img_train")).ravel()
  return parse_annolist(field(release, "annolist"), img_train=img_train,
                        include_unannotated=include_unannotated)


# ------------------------------------------------------- validation split --


def read_valid_h5(path: str) -> list[Pair]:
  """The (index, person) pairs, 0-based, of pose-hg-train's `valid.h5`.

  Args:
    path: `annot/valid.h5` of princeton-vl/pose-hg-train (Tompson's 2958
      validation people).

  Returns:
    The pairs in file order (the order of `gt_valid.mat`).
  """
  with h5py.File(path, "r") as f:
    index = np.asarray(f["index"]).ravel()
    person = np.asarray(f["person"]).ravel()
  return [(int(i), int(p)) for i, p in zip(index, person)]


def read_valid_h5_image_names(path: str) -> Optional[list[str]]:
  """The `imgname` column of `valid.h5`, or None when the file has none."""
  with h5py.File(path, "r") as f:
    if "imgname" not in f:
      return None
    names = np.asarray(f["imgname"])
  if names.ndim == 2:  # Some writers store the names as uint8 character rows.
    return ["".join(chr(c) for c in row if c).strip() for row in names]
  return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


class Split(NamedTuple):
  """Records split into training and validation people."""
  train: list[Record]
  validation: list[Record]
  missing: list[Pair]  # validation pairs that no record has


def split_records(records: Iterable[Record], valid_pairs: Sequence[Pair]
                  ) -> Split:
  """Splits records by Tompson's validation (index, person) pairs.

  Training keeps every other person, including the other people of
  validation images (as pose-hg-train does).

  Args:
    records: people of the `img_train` images.
    valid_pairs: 0-based (index, person) pairs, e.g. from `read_valid_h5`.

  Returns:
    A `Split`: training records in input order, validation records in
    `valid_pairs` order, and the pairs for which no record exists.
  """
  records = list(records)
  by_pair = {(r["index"], r["person"]): r for r in records}
  wanted = {tuple(p) for p in valid_pairs}
  train = [r for r in records if (r["index"], r["person"]) not in wanted]
  validation, missing = [], []
  for pair in valid_pairs:
    pair = (int(pair[0]), int(pair[1]))
    if pair in by_pair:
      validation.append(by_pair[pair])
    else:
      missing.append(pair)
  return Split(train, validation, missing)
