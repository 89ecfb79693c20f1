"""Person boxes from a detector, as COCO results files hold them.

Any person detector can tell `predict` where the people of a photo are: its
boxes come in the COCO detection-results format, a JSON list of

  {"image_id": 397133, "bbox": [x, y, w, h], "score": 0.98,
   "category_id": 1}

one entry a box; `bbox` is in pixels of the image as shown (after its EXIF
rotation), x and y its top-left corner. `score` and `category_id` may be left
out (a hand-written file): they default to 1 and 1 (person). `read` checks
every entry; `keep_people` keeps those of category 1 (person) that score at
least `--min_score`; `by_image` finds each entry's image:

* a string image_id is the image's file name ("crowd.jpg"), or that name
  without its extension ("crowd") when only one image has it;
* an int image_id is the number a file name spells (COCO's
  000000397133.jpg is image 397133).

Messages name an entry as `path[i]`, its place in the file's list counted
from 0 (jq's `.[i]`).

`keypoint_result` writes a person's 16 joints back in the COCO keypoint
results format (see there).
"""

import dataclasses
import math
import os
import re
from typing import Dict, List, Sequence, Tuple, Union

from acnn_jax import errors

# COCO's category of people; detectors' files hold every category.
PERSON_CATEGORY = 1
# Detectors keep boxes from about 0.05 for recall; below 0.5 most are not
# people, or are the same person twice.
DEFAULT_MIN_SCORE = 0.5
ENTRY = ('{"image_id": int or file name, "bbox": [x, y, w, h] in pixels, '
         '"score": number, "category_id": int}')
FORMAT = f"a JSON list of {ENTRY}, as COCO detection results are"


@dataclasses.dataclass(frozen=True)
class Detection:
  """One entry of a detections file.

  Attributes:
    image_id: the entry's image_id (int, or a file name string).
    bbox: (x, y, w, h) as given: top-left corner and size in pixels.
    score: the detector's confidence.
    category_id: the detected category (1: person).
    name: the entry in messages, `path[index]`.
  """
  image_id: Union[int, str]
  bbox: Tuple[float, float, float, float]
  score: float
  category_id: int
  name: str

  @property
  def box(self) -> Tuple[float, float, float, float]:
    """The box as `predict` takes it: (x1, y1, x2, y2) with 0-based pixel
    centres. A COCO bbox measures pixel edges (the whole W x H image is
    [0, 0, W, H]), so its corners move by half a pixel."""
    x, y, w, h = self.bbox
    return (x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5)

  @property
  def label(self) -> str:
    """`path[i] (image_id ...)`, what messages call the entry."""
    return f"{self.name} (image_id {self.image_id!r})"


def _is_number(value) -> bool:
  # bool is an int to Python, never a coordinate or a score to a user.
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _entry(value, name: str) -> Detection:
  """One list entry -> a `Detection`; InputError naming `name` if bad."""

  def bad(what):
    return errors.InputError(f"{name}: {what}; each entry must be {ENTRY} "
                             "(COCO detection results).")

  if not isinstance(value, dict):
    raise bad(f"a JSON {type(value).__name__} instead of an object")
  for key in ("image_id", "bbox"):
    if key not in value:
      raise bad(f"no {key!r}")
  image_id = value["image_id"]
  if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
    raise bad(f"image_id {image_id!r} is neither an int nor a file name")
  bbox = value["bbox"]
  if (not isinstance(bbox, list) or len(bbox) != 4 or
      not all(_is_number(v) for v in bbox)):
    raise bad(f"bbox {bbox!r} is not four finite numbers [x, y, w, h]")
  if bbox[2] <= 0 or bbox[3] <= 0:
    raise bad(f"bbox {bbox!r} has a width or height <= 0 ([x, y, w, h], not "
              "[x1, y1, x2, y2]?)")
  score = value.get("score", 1.0)
  if not _is_number(score):
    raise bad(f"score {score!r} is not a finite number")
  category = value.get("category_id", PERSON_CATEGORY)
  if isinstance(category, bool) or not isinstance(category, int):
    raise bad(f"category_id {category!r} is not an int")
  return Detection(image_id=image_id, bbox=tuple(float(v) for v in bbox),
                   score=float(score), category_id=category, name=name)


def read(path: str) -> List[Detection]:
  """Every entry of the detections file `path`, checked, in file order.

  Raises:
    errors.MissingError: no such file.
    errors.InputError: not a JSON list, or a malformed entry (the message
      names it as `path[i]`).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise errors.MissingError(
        f"detections file not found: {path} (give --boxes a JSON file of "
        "person boxes, e.g. a detector's COCO results).")
  entries = errors.read_json(path, list, FORMAT,
                             "Write the boxes as COCO detection results.")
  return [_entry(value, f"{path}[{i}]") for i, value in enumerate(entries)]


def keep_people(detections: Sequence[Detection], min_score: float):
  """The person entries scoring at least `min_score`, and what is left out.

  Returns:
    (kept, other_categories, low_scores): the kept detections in order, and
    how many entries another category or a lower score left out.
  """
  people = [d for d in detections if d.category_id == PERSON_CATEGORY]
  kept = [d for d in people if d.score >= min_score]
  return kept, len(detections) - len(people), len(people) - len(kept)


def _image_numbers(file_names: Sequence[str]) -> Dict[int, List[str]]:
  numbers = {}
  for name in file_names:
    stem = os.path.splitext(name)[0]
    if re.fullmatch(r"[0-9]+", stem):
      numbers.setdefault(int(stem), []).append(name)
  return numbers


def match_rule(image_id) -> str:
  """How an image_id names its image, for messages."""
  if isinstance(image_id, int):
    return (f"an int image_id names the file whose name is that number, "
            f"e.g. {image_id:012d}.jpg or {image_id}.png")
  return ("a string image_id is the image's file name, with or without its "
          "extension")


def by_image(detections: Sequence[Detection], file_names: Sequence[str]):
  """Sorts detections by the image each names (see the module's rules).

  Args:
    detections: entries of a detections file.
    file_names: the candidate images' file names (no folders).

  Returns:
    ({file name: its detections, in order}, [detections naming no image]).

  Raises:
    errors.InputError: an image_id that names two images (1.jpg and
      001.png; crowd.jpg and crowd.png).
  """
  names = set(file_names)
  numbers = _image_numbers(file_names)
  stems = {}
  for name in file_names:
    stems.setdefault(os.path.splitext(name)[0], []).append(name)
  found, unmatched = {}, []
  for detection in detections:
    image_id = detection.image_id
    if isinstance(image_id, str) and image_id in names:
      candidates = [image_id]
    elif isinstance(image_id, str):
      candidates = stems.get(image_id, [])
    else:
      candidates = numbers.get(image_id, [])
    if len(candidates) > 1:
      raise errors.InputError(
          f"{detection.label} names {len(candidates)} images, "
          f"{', '.join(sorted(candidates))}: {match_rule(image_id)}. Give "
          "the full file name as image_id, or move the others away.")
    if candidates:
      found.setdefault(candidates[0], []).append(detection)
    else:
      unmatched.append(detection)
  return found, unmatched


def keypoint_result(detection: Detection, keypoints, confidences) -> dict:
  """One person in COCO's keypoint results format.

  Args:
    detection: the person's box.
    keypoints: (K, 2) joints (x, y) in original pixels, 0-based pixel
      centres, as COCO's keypoints are.
    confidences: (K,) joint confidences (heatmap peaks, about 0 to 1).

  Returns:
    {image_id and bbox as the detection gave them, category_id 1, keypoints
    [x1, y1, v1, ...] (MPII's 16 joints in `mpii.JOINT_NAMES` order) whose v
    is the joint's confidence, as mmpose and other COCO results writers
    have it (COCO's evaluation ignores the v of results), and score: the
    detection's score times the mean joint confidence (a confident box
    holding a doubtful pose ranks below a sure one)}.
  """
  flat = []
  for (x, y), confidence in zip(keypoints, confidences):
    flat += [round(float(x), 2), round(float(y), 2),
             round(float(confidence), 4)]
  mean = float(sum(float(c) for c in confidences)) / max(1, len(confidences))
  return dict(image_id=detection.image_id, category_id=PERSON_CATEGORY,
              keypoints=flat, score=round(detection.score * mean, 4),
              bbox=list(detection.bbox))
