"""The MPII benchmark's submission file: test-set predictions as MATLAB v5.

MPII withholds its test annotations: the test set is scored only by
sending its authors a file of predictions, which their MATLAB toolkit
(evalMPII.zip, `evaluatePCKh.m`) reads like this:

  load('pred_keypoints_mpii', 'pred');
  assert(length(annolist_test) == length(pred));  % every test image
  pred_flat = flatten_annolist(pred, single_person_test);
  pred = annolist2matrix(pred_flat(single_person_test_flat == 1));

`flatten_annolist` walks every annorect of every test image that has an
`objpos`, pairing them by position with the ground truth's, and
`annolist2matrix` reads `pred(i).annorect(r).annopoints.point(k)` by its
`id` (0-based MPII joint) and `x`, `y` (1-based pixels). So the file must
hold the variable `pred` (`VARIABLE`): the release's test annolist
(`RELEASE.annolist(RELEASE.img_train == 0)`, in release order) with every
annorect kept, its `objpos` and `scale` as the release has them, and the
predicted points filled in for the single people; MPII asks for it under
the name `FILE_NAME`.

`write` writes, beside `pred`, the plain arrays that Python tools read (as
`evaluate.write_pred_mat` does for validation):

  preds       N x 16 x 2 double, 1-based (x, y) in MPII joint order, one
              row per predicted person, in the data set's test order;
  image_name  N x 1 cell, each row's image file;
  index       1 x N, each row's 0-based image index into RELEASE.annolist;
  person      1 x N, its 0-based annorect index in that image (-1 for both
              when unknown);
  center      N x 2, its 1-based objpos; scale 1 x N, its scale.

A data set built from HRNet's JSON layout has no release indices (its
test.json lists 7247 people with their own centres and scales, where the
release's single-person test set has 11731), so its rows cannot be placed
in the release's annolist: its file holds the arrays, without `pred`, and
`image_name`, `center` and `scale` tell which test.json entry each row is.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import scipy.io

from acnn_jax import errors
from acnn_jax import mpii
from acnn_jax import output_paths

# The name MPII asks for, and the variable its toolkit loads.
FILE_NAME = "pred_keypoints_mpii.mat"
VARIABLE = "pred"
ANNORECT_FIELDS = ("scale", "objpos", "annopoints")


@dataclasses.dataclass(frozen=True)
class Written:
  """What `write` wrote.

  Attributes:
    path: the file.
    people: the rows of `preds` (predicted people).
    images: the entries of `pred` (test images); None when the file has no
      `pred` (a data set without the release's test images).
    unpredicted: single people of the release's test images without a
      prediction (skipped when the data set was built: a missing or damaged
      image, no objpos or scale); the benchmark counts their joints wrong.
  """
  path: str
  people: int
  images: Optional[int]
  unpredicted: int


def check_output(path: str) -> str:
  """The absolute path of a submission file to write, checked first.

  An existing file is replaced, as `--pred_mat` replaces its own (here
  atomically: a failed run leaves the old file). A missing folder is
  created, as for every output (`output_paths`).

  Raises:
    errors.InputError: `path` is a folder, or its folder cannot be created
      or written in.
  """
  absolute = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(absolute):
    raise errors.InputError(
        f"--submission={path}: {absolute} is a folder; name the file to "
        f"write, e.g. {os.path.join(absolute, FILE_NAME)}.")
  return output_paths.file(path, "--submission")


def _empty() -> np.ndarray:
  return np.zeros((0, 0))  # MATLAB's [].


def _struct_array(rows: Sequence[Dict[str, Any]], fields: Sequence[str]
                  ) -> np.ndarray:
  """A 1 x len(rows) MATLAB struct array (savemat writes structured arrays
  of objects as such)."""
  array = np.empty(len(rows), dtype=[(f, object) for f in fields])
  for i, row in enumerate(rows):
    for f in fields:
      array[f][i] = row[f]
  return array.reshape(1, len(rows))


def _points(joints: np.ndarray) -> Dict[str, np.ndarray]:
  """`annopoints` of one person: `point`, 1 x 16 structs x, y, id."""
  return {"point": _struct_array(
      [{"x": float(x), "y": float(y), "id": float(k)}
       for k, (x, y) in enumerate(joints)], ("x", "y", "id"))}


def annolist(preds: np.ndarray, index: np.ndarray, person: np.ndarray,
             images: Sequence[Dict[str, Any]]) -> tuple[np.ndarray, int]:
  """The toolkit's `pred`: the release's test annolist, predictions filled in.

  Args:
    preds: (N, 16, 2) 1-based (x, y).
    index, person: (N,) each row's 0-based annolist and annorect indices.
    images: the release's test images, in release order
      (`mpii_official.test_images`).

  Returns:
    (pred, unpredicted): the 1 x T struct array (fields image, annorect);
    the single people of `images` without a row.

  Raises:
    errors.InputError: a row names no annorect of `images` or two rows name
      the same one (the data set's test split and its metadata disagree).
  """
  rows = {}
  for row, pair in enumerate(zip(np.asarray(index).tolist(),
                                 np.asarray(person).tolist())):
    if pair in rows:
      raise errors.InputError(
          f"Two predicted test people are (index, person) {pair}: the data "
          "set's test split lists a person twice. Prepare it again.")
    rows[pair] = row
  entries, unpredicted = [], 0
  for image in images:
    rects = []
    for p, (objpos, scale) in enumerate(zip(image["objpos"], image["scale"])):
      row = rows.pop((image["index"], p), None)
      rects.append({
          "scale": _empty() if scale is None else float(scale),
          "objpos": (_empty() if objpos is None else
                     {"x": float(objpos[0]), "y": float(objpos[1])}),
          "annopoints": _empty() if row is None else _points(preds[row]),
      })
      if row is None and p in image["single_person"]:
        unpredicted += 1
    entries.append({"image": {"name": image["name"]},
                    "annorect": (_struct_array(rects, ANNORECT_FIELDS)
                                 if rects else _empty())})
  if rows:
    raise errors.InputError(
        f"{len(rows)} predicted test people, first (index, person) "
        f"{next(iter(rows))}, are no annorect of the release's test images "
        "that the data set keeps: its test split and its metadata disagree. "
        "Prepare it again.")
  return _struct_array(entries, ("image", "annorect")), unpredicted


def write(path: str, predictions: np.ndarray, people: Dict[str, np.ndarray],
          images: Optional[List[Dict[str, Any]]]) -> Written:
  """Writes the submission file (see the module docstring).

  Args:
    path: the file (see `check_output`); replaced when it exists.
    predictions: (N, 16, 2) joints in original 0-BASED pixels, in the test
      split's order (`evaluate.EvalResult.predictions`).
    people: the test split's rows (`mpii_builder.TestSplit.people`):
      image_name, index, person, center (0-based), scale.
    images: the release's test images (`mpii_builder.TestSplit.images`),
      or None: then the file has no `pred`.

  Returns:
    What was written.
  """
  preds = np.asarray(predictions, np.float64) + 1.0
  if preds.ndim != 3 or preds.shape[1:] != (mpii.NUM_JOINTS, 2) or any(
      len(v) != len(preds) for v in people.values()):
    raise ValueError(f"{preds.shape} predictions for "
                     f"{ {k: len(v) for k, v in people.items()} } people")
  names = np.empty((len(preds), 1), dtype=object)
  names[:, 0] = [str(name) for name in people["image_name"]]
  variables = {
      "preds": preds, "image_name": names,
      "index": np.asarray(people["index"], np.int64),
      "person": np.asarray(people["person"], np.int64),
      "center": np.asarray(people["center"], np.float64) + 1.0,
      "scale": np.asarray(people["scale"], np.float64),
  }
  unpredicted = 0
  if images is not None:
    variables[VARIABLE], unpredicted = annolist(
        preds, people["index"], people["person"], images)
  path = check_output(path)
  tmp = path + ".tmp"
  # A file object: given a name, savemat would append ".mat" to "x.tmp".
  with open(tmp, "wb") as f:
    scipy.io.savemat(f, variables, do_compression=True)
  os.replace(tmp, path)
  return Written(path=path, people=len(preds),
                 images=None if images is None else len(images),
                 unpredicted=unpredicted)


def describe(written: Written) -> str:
  """What `write` wrote, in the lines a command prints."""
  lines = [f"Wrote {written.path}: preds ({written.people} x 16 x 2, 1-based"
           " pixels) with each row's image_name, index, person, center and "
           "scale"]
  if written.images is None:
    lines.append(
        "  No `pred` struct: the data set was built from the JSON layout, "
        "whose test.json keeps no release indices, so its people cannot be "
        "placed in the release's annolist. For a file the benchmark takes, "
        "build the data set from the official release (layout (a)).")
    return "\n".join(lines)
  lines.append(f"  and `{VARIABLE}`, the release's {written.images} test "
               f"images with the predictions filled in: send the file, "
               f"named {FILE_NAME}, to MPII's benchmark.")
  if written.unpredicted:
    lines.append(
        f"  {written.unpredicted} single people of the release have no "
        "prediction: they were skipped when the data set was built (see its "
        "log); the benchmark counts them as wrong.")
  return "\n".join(lines)
