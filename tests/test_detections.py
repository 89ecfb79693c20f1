"""Tests of person boxes from detectors' COCO results files: reading and
checking entries, finding their images, keeping people, writing keypoint
results."""

import json

import numpy as np
import pytest

from acnn_jax import detections
from acnn_jax import errors
from acnn_jax import mpii


def _write(tmp_path, entries, name="boxes.json"):
  path = tmp_path / name
  path.write_text(entries if isinstance(entries, str) else
                  json.dumps(entries))
  return str(path)


def _entry(**fields):
  return {"image_id": 1, "bbox": [10, 20, 30, 60], "score": 0.9,
          "category_id": 1, **fields}


def test_read_keeps_every_entry_in_order_and_fills_defaults(tmp_path):
  path = _write(tmp_path, [_entry(), _entry(image_id="a.jpg", category_id=3),
                           {"image_id": 2, "bbox": [0, 0, 5.5, 8]}])
  found = detections.read(path)
  assert [d.image_id for d in found] == [1, "a.jpg", 2]
  assert [d.category_id for d in found] == [1, 3, 1]
  assert found[2].score == 1.0  # hand-written boxes: score left out
  assert found[0].bbox == (10.0, 20.0, 30.0, 60.0)
  assert found[1].name == f"{path}[1]"


def test_a_bbox_measures_pixel_edges_and_boxes_pixel_centres():
  # [0, 0, W, H] is the whole W x H image; predict's whole-image box is
  # (-0.5, -0.5, W - 0.5, H - 0.5).
  whole = detections.Detection(7, (0.0, 0.0, 40.0, 30.0), 1.0, 1, "f[0]")
  assert whole.box == (-0.5, -0.5, 39.5, 29.5)


@pytest.mark.parametrize("entry, pattern", [
    ([1, 2, 3, 4], "a JSON list instead of an object"),
    ({"bbox": [1, 2, 3, 4]}, "no 'image_id'"),
    ({"image_id": 1}, "no 'bbox'"),
    (_entry(image_id=1.5), "image_id 1.5 is neither an int nor a file name"),
    (_entry(image_id=True), "neither an int nor a file name"),
    (_entry(bbox=[1, 2, 3]), r"bbox \[1, 2, 3\] is not four finite numbers"),
    (_entry(bbox=[1, "2", 3, 4]), "is not four finite numbers"),
    (_entry(bbox=[1, 2, 3, 1e999]), "is not four finite numbers"),
    (_entry(bbox=[10, 20, 5, 0]), r"width or height <= 0 \(\[x, y, w, h\]"),
    (_entry(bbox=[10, 20, -5, 4]), "width or height <= 0"),
    (_entry(score="high"), "score 'high' is not a finite number"),
    (_entry(score=None), "score None is not a finite number"),
    (_entry(category_id="person"), "category_id 'person' is not an int"),
])
def test_a_malformed_entry_is_one_line_naming_the_file_and_entry(
    tmp_path, entry, pattern):
  path = _write(tmp_path, [_entry(), entry])
  with pytest.raises(errors.InputError, match=pattern) as raised:
    detections.read(path)
  message = str(raised.value)
  assert message.startswith(f"{path}[1]: ") and "\n" not in message, message
  assert "COCO detection results" in message  # the format, as the fix


@pytest.mark.parametrize("text, pattern", [
    ('{"image_id": 1, "bbox": [1, 2, 3, 4]}', "holds a JSON dict where a "
     "JSON list of"),
    ('[{"image_id": 1, "bbox": [1, 2', "not a whole JSON file"),
])
def test_a_file_that_is_not_a_list_is_one_line(tmp_path, text, pattern):
  path = _write(tmp_path, text)
  with pytest.raises(errors.InputError, match=pattern) as raised:
    detections.read(path)
  assert str(raised.value).startswith(path)
  assert "\n" not in str(raised.value)


def test_a_missing_file_says_what_boxes_wants(tmp_path):
  with pytest.raises(errors.MissingError, match="--boxes"):
    detections.read(str(tmp_path / "none.json"))


def test_keep_people_counts_what_it_leaves_out():
  found = [detections.Detection(1, (0, 0, 9, 9), score, category, f"f[{i}]")
           for i, (score, category) in enumerate(
               [(0.9, 1), (0.3, 1), (0.99, 18), (0.5, 1), (0.1, 3)])]
  kept, others, low = detections.keep_people(found, 0.5)
  assert [d.name for d in kept] == ["f[0]", "f[3]"]  # 0.5 is kept
  assert (others, low) == (2, 1)


def _ids(*image_ids):
  return [detections.Detection(i, (0, 0, 9, 9), 1.0, 1, f"f[{n}]")
          for n, i in enumerate(image_ids)]


def test_image_ids_name_files_by_name_stem_or_number():
  files = ["000000397133.jpg", "crowd.png", "7.jpeg", "notes.jpg"]
  found, unmatched = detections.by_image(
      _ids(397133, "crowd.png", "crowd", 7, 8, "other.jpg", "000000397133"),
      files)
  assert {k: [d.name for d in v] for k, v in found.items()} == {
      "000000397133.jpg": ["f[0]", "f[6]"], "crowd.png": ["f[1]", "f[2]"],
      "7.jpeg": ["f[3]"]}
  assert [d.name for d in unmatched] == ["f[4]", "f[5]"]


@pytest.mark.parametrize("image_id, files", [(1, ["1.jpg", "001.png"]),
                                              ("a", ["a.jpg", "a.png"])])
def test_an_image_id_naming_two_files_is_an_error(image_id, files):
  with pytest.raises(errors.InputError, match="names 2 images") as raised:
    detections.by_image(_ids(image_id), files)
  assert "f[0]" in str(raised.value)


def test_keypoint_result_is_coco_keypoint_results():
  detection = detections.Detection("a.jpg", (10.0, 20.0, 30.0, 60.0), 0.8, 1,
                                   "f[0]")
  keypoints = np.arange(32, dtype=np.float32).reshape(16, 2) + 0.123
  confidences = np.linspace(0.0, 1.0, 16, dtype=np.float32)
  result = detections.keypoint_result(detection, keypoints, confidences)
  json.dumps(result, allow_nan=False)
  assert set(result) == {"image_id", "category_id", "keypoints", "score",
                         "bbox"}
  assert result["image_id"] == "a.jpg" and result["category_id"] == 1
  assert result["bbox"] == [10.0, 20.0, 30.0, 60.0]
  flat = np.array(result["keypoints"]).reshape(mpii.NUM_JOINTS, 3)
  np.testing.assert_allclose(flat[:, :2], keypoints, atol=0.006)
  np.testing.assert_allclose(flat[:, 2], confidences, atol=1e-4)
  assert result["score"] == pytest.approx(0.8 * 0.5, abs=1e-4)
