"""Tests of inference on one's own images: crops from boxes, keypoints in
original pixels, the user errors the command line reports, the function
it calls."""

import json
import os
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from acnn_jax import errors
from acnn_jax import mpii
from acnn_jax import predict
from conftest import PROCESS_TIMEOUT
from conftest import TRAINED
from conftest import tiny_model

REPO = pathlib.Path(__file__).resolve().parents[1]

TINY = dict(num_stacks=2, features=16, num_joints=16, hourglass_depth=2,
            attention_features=8)
INPUT_SIZE = 64
HEATMAP_SIZE = 16


def _tiny():
  return tiny_model(**TINY)


def _predictor(**kwargs):
  model, variables = _tiny()
  return predict.Predictor(model, variables, input_size=INPUT_SIZE, **kwargs)


def _image(height, width, seed=0):
  rng = np.random.RandomState(seed)
  return (rng.rand(height, width, 3) * 255).astype(np.uint8)


# Joint k peaks at heatmap pixel (x, y) = PEAKS[k]: integer pixels with equal
# neighbours, so the codec adds no quarter offset and the answer is exact.
PEAKS = np.array([(2 + k % 12, 3 + k // 2) for k in range(16)], np.float32)


def _fake_predict_fn(seen):
  """A stand-in for the network: the same Gaussians for every crop."""

  def fn(variables, images):
    del variables
    seen.append(np.asarray(images))
    grid = np.arange(HEATMAP_SIZE, dtype=np.float32)
    dx = grid[None, :, None] - PEAKS[None, None, :, 0]
    dy = grid[:, None, None] - PEAKS[None, None, :, 1]
    one = np.exp(-(dx ** 2 + dy ** 2) / 2.0)
    heatmaps = jnp.asarray(np.repeat(one[None], len(images), axis=0))
    masks = jnp.ones((2, len(images), HEATMAP_SIZE, HEATMAP_SIZE, 1))
    return dict(heatmaps=heatmaps, masks=masks,
                stage_predictions=jnp.stack([heatmaps, heatmaps]))

  return fn


def _expected(center, side):
  """PEAKS in original pixels for a crop of `side` original pixels around
  `center`, written out: heatmap pixel centres 0 .. 15 span the crop with
  their middle, 7.5, on the centre, side / 16 original pixels apart."""
  return np.asarray(center) + (PEAKS - 7.5) * side / HEATMAP_SIZE


def test_box_to_crop_pads_the_longer_side_by_mpii_padding():
  center, scale = predict.box_to_crop((10, 20, 110, 60))
  np.testing.assert_allclose(center, [60.0, 40.0])
  assert scale == pytest.approx(100 * 1.25 / 200)


@pytest.mark.parametrize("box", [(30.0, 12.0, 70.0, 44.0), None])
def test_keypoints_are_mapped_back_to_original_pixels(box, monkeypatch):
  predictor = _predictor()
  seen = []
  monkeypatch.setattr(predictor, "_predict_fn", _fake_predict_fn(seen))
  image = _image(48, 80)
  result = predictor(image, box=box)
  if box is None:
    # The whole 80 x 48 image: centre of its pixel centres, side 80 * 1.25;
    # 6.25 px per heatmap pixel, so joint 0 at heatmap (2, 3) is at
    # (39.5 - 5.5 * 6.25, 23.5 - 4.5 * 6.25).
    center, side, joint0 = [39.5, 23.5], 100.0, [5.125, -4.625]
  else:
    # Side 40 * 1.25 = 50, 3.125 px per heatmap pixel.
    center, side, joint0 = [50.0, 28.0], 50.0, [32.8125, 13.9375]
  np.testing.assert_allclose(result.center, center)
  assert result.scale == pytest.approx(side / 200)
  np.testing.assert_allclose(result.keypoints[0], joint0, atol=1e-3)
  np.testing.assert_allclose(result.keypoints, _expected(center, side),
                             atol=1e-3)
  # Back on the crop, heatmap pixel j is crop pixel 4j + 1.5.
  np.testing.assert_allclose(result.crop_keypoints, 4 * PEAKS + 1.5,
                             atol=1e-3)
  np.testing.assert_allclose(result.confidences, 1.0, atol=1e-6)
  assert result.keypoints.dtype == np.float32
  # The network saw one [0, 1] crop of the input size.
  assert seen[0].shape == (1, INPUT_SIZE, INPUT_SIZE, 3)
  assert 0.0 <= seen[0].min() and seen[0].max() <= 1.0


def test_predict_batch_maps_each_image_with_its_own_crop(monkeypatch):
  predictor = _predictor()
  seen = []
  monkeypatch.setattr(predictor, "_predict_fn", _fake_predict_fn(seen))
  boxes = [(0.0, 0.0, 20.0, 40.0), None]
  results = predictor.predict_batch([_image(60, 30), _image(90, 120)], boxes)
  assert len(seen) == 1 and seen[0].shape[0] == 2  # one call for the batch
  np.testing.assert_allclose(results[0].keypoints,
                             _expected([10.0, 20.0], 40 * 1.25), atol=1e-3)
  np.testing.assert_allclose(results[1].keypoints,
                             _expected([59.5, 44.5], 120 * 1.25), atol=1e-3)


def test_crop_puts_a_known_pixel_where_hand_geometry_says():
  # Crop side 64 px for a 64 px input: the warp is a pure translation that
  # takes the centre (35.6, 35.6) to the crop's middle (31.5, 31.5), so
  # original (40, 30) lands at crop (35.9, 25.9), nearest pixel (36, 26).
  box = (10.0, 10.0, 10.0 + 64 / 1.25, 10.0 + 64 / 1.25)
  image = np.zeros((80, 90, 3), np.uint8)
  image[30, 40] = 255  # original (x, y) = (40, 30)
  center, scale = predict.box_to_crop(box)
  np.testing.assert_allclose(center, [35.6, 35.6], rtol=1e-6)
  assert scale == pytest.approx(64 / 200)
  crop = predict.warp_crop(image, center, scale, INPUT_SIZE)
  row, col = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
  assert (row, col) == (26, 36)
  # Bilinear: 0.9 of the pixel at distance 0.1, 0.9 * 0.9 in both axes.
  assert crop[26, 36, 0] == pytest.approx(0.81, abs=1e-4)
  result = _predictor()(image, box)
  np.testing.assert_array_equal(
      result.crop, np.round(crop * 255).astype(np.uint8))


@pytest.mark.slow
def test_tiny_model_end_to_end_and_batch_matches_single_calls():
  predictor = _predictor()
  images = [_image(70, 50, seed=1), _image(64, 64, seed=2)]
  boxes = [(5, 8, 45, 60), None]
  batch = predictor.predict_batch(images, boxes)
  for image, box, result in zip(images, boxes, batch):
    assert result.keypoints.shape == (16, 2)
    assert result.confidences.shape == (16,)
    assert result.masks.shape == (2, HEATMAP_SIZE, HEATMAP_SIZE)
    assert result.heatmaps.shape == (HEATMAP_SIZE, HEATMAP_SIZE, 16)
    assert result.crop.shape == (INPUT_SIZE, INPUT_SIZE, 3)
    assert result.crop.dtype == np.uint8
    assert np.all(np.isfinite(result.keypoints))
    single = predictor(image, box)
    np.testing.assert_allclose(single.keypoints, result.keypoints, atol=1e-3)
    np.testing.assert_allclose(single.confidences, result.confidences,
                               atol=1e-4)


def test_bad_inputs_raise_input_errors(tmp_path):
  predictor = _predictor()
  with pytest.raises(errors.InputError, match="uint8"):
    predictor(np.zeros((32, 32, 3), np.float32))
  with pytest.raises(errors.InputError, match="x2 > x1"):
    predictor(_image(32, 32), box=(10, 0, 5, 20))
  with pytest.raises(errors.InputError, match="2 images but 1 boxes"):
    predictor.predict_batch([_image(8, 8), _image(8, 8)], [None])
  with pytest.raises(errors.InputError, match="not found"):
    predictor(str(tmp_path / "missing.jpg"))


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,3,4,5", "5,0,1,9"])
def test_parse_box_rejects_bad_boxes(text):
  with pytest.raises(errors.InputError, match="bad box"):
    predict.parse_box(text)


def test_parse_box_accepts_spaces_and_floats():
  assert predict.parse_box(" 1, 2.5,30,40 ") == (1.0, 2.5, 30.0, 40.0)


def test_load_image_reads_files_and_reports_unreadable_ones(tmp_path):
  path = tmp_path / "gray.png"
  Image.fromarray(np.full((5, 7), 128, np.uint8)).save(path)
  image = predict.load_image(path)
  assert image.shape == (5, 7, 3) and image.dtype == np.uint8
  bad = tmp_path / "bad.jpg"
  bad.write_text("not an image")
  with pytest.raises(errors.InputError, match="cannot read image"):
    predict.load_image(bad)


def test_run_writes_the_figure_and_returns_named_keypoints(tmp_path):
  path = tmp_path / "person.png"
  Image.fromarray(_image(72, 48)).save(path)
  output = tmp_path / "out" / "pose.png"
  result = predict.run(_predictor(), str(path), box=(4, 6, 40, 70),
                       output=str(output))
  json.dumps(result)  # JSON-ready
  assert result["image"] == str(path)
  assert result["box"] == [4.0, 6.0, 40.0, 70.0]
  assert [r["joint"] for r in result["keypoints"]] == list(mpii.JOINT_NAMES)
  assert all(set(r) == {"joint", "x", "y", "confidence"}
             for r in result["keypoints"])
  figure = np.asarray(Image.open(output))
  assert figure.shape[0] == 256 and figure.shape[1] > 256 * 3
  assert figure.std() > 0


@TRAINED
@pytest.mark.slow
def test_predictor_loads_a_trained_workdir(trained_workdir):
  path, _ = trained_workdir
  predictor = predict.Predictor.from_checkpoint(path)
  image = (np.random.default_rng(0).random((90, 70, 3)) * 255).astype(
      np.uint8)
  result = predictor(image)
  assert result.keypoints.shape == (16, 2)
  assert np.all(np.isfinite(result.keypoints))
  assert result.masks.shape[0] == 2


# --------------------------------------- every person of a photo, from boxes


def _crowd(seed=3):
  """Three 'people' (noise patches of their own) side by side on a 96 x 180
  grey image, and their boxes, the middle one partly off the top edge."""
  image = np.full((96, 180, 3), 90, np.uint8)
  boxes = [(4.0, 10.0, 54.0, 90.0), (64.0, -8.0, 114.0, 60.0),
           (124.0, 30.0, 170.0, 94.0)]
  for i, (x1, y1, x2, y2) in enumerate(boxes):
    top, left = max(0, int(y1)), int(x1)
    patch = _image(int(y2) - top, int(x2) - left, seed=seed + i)
    image[top:int(y2), left:int(x2)] = patch
  return image, boxes


def test_predict_people_runs_one_batch_in_box_order(monkeypatch):
  predictor = _predictor()
  seen = []
  monkeypatch.setattr(predictor, "_predict_fn", _fake_predict_fn(seen))
  image, boxes = _crowd()
  people = predictor.predict_people(image, boxes)
  # One call; three people padded to four (a power of two, see
  # `predict_people`).
  assert len(seen) == 1 and seen[0].shape == (4, INPUT_SIZE, INPUT_SIZE, 3)
  assert len(people) == 3
  for (x1, y1, x2, y2), person in zip(boxes, people):
    center = [(x1 + x2) / 2, (y1 + y2) / 2]
    np.testing.assert_allclose(
        person.keypoints, _expected(center, max(x2 - x1, y2 - y1) * 1.25),
        atol=1e-3)
    single = predictor(image, (x1, y1, x2, y2))
    np.testing.assert_array_equal(single.crop, person.crop)
    np.testing.assert_allclose(single.keypoints, person.keypoints, atol=1e-4)
  assert predictor.predict_people(image, []) == []


def test_predict_people_names_the_bad_box(monkeypatch):
  predictor = _predictor()
  monkeypatch.setattr(predictor, "_predict_fn", _fake_predict_fn([]))
  image, boxes = _crowd()
  with pytest.raises(errors.InputError,
                     match="^Box 1: box 300,0,320,9 lies wholly outside"):
    predictor.predict_people(image, [boxes[0], (300, 0, 320, 9)])
  with pytest.raises(errors.InputError, match="^f.json.2.: bad box"):
    predictor.predict_people(image, [boxes[0]] * 2 + [(5, 5, 1, 9)],
                             names=["f.json[0]", "f.json[1]", "f.json[2]"])
  with pytest.raises(errors.InputError, match="one box per person"):
    predictor.predict_people(image, [None])


class _FakeExport:
  """An `ExportedModel` stand-in: every crop's joints at crop pixel
  (10 + k, 20) for joint k."""
  input_size = INPUT_SIZE

  def __call__(self, images):
    count = len(images)
    points = np.stack([10.0 + np.arange(16), np.full(16, 20.0)], -1)
    return dict(keypoints=np.repeat(points[None], count, 0),
                confidences=np.full((count, 16), 0.5, np.float32),
                heatmaps=np.zeros((count, 16, 16, 16), np.float32),
                masks=np.ones((count, 2, 16, 16), np.float32))


def test_exported_predictor_predicts_people_like_single_calls():
  predictor = predict.ExportedPredictor(_FakeExport())
  image, boxes = _crowd()
  people = predictor.predict_people(image, boxes)
  assert [p.scale for p in people] == pytest.approx(
      [80 * 1.25 / 200, 68 * 1.25 / 200, 64 * 1.25 / 200])
  for box, person in zip(boxes, people):
    np.testing.assert_allclose(predictor(image, box).keypoints,
                               person.keypoints, atol=1e-4)


@pytest.mark.slow
def test_tiny_model_predicts_people_as_one_call_per_box():
  predictor = _predictor()
  image, boxes = _crowd()
  people = predictor.predict_people(image, boxes)
  for box, person in zip(boxes, people):
    single = predictor(image, box)
    np.testing.assert_allclose(person.keypoints, single.keypoints, atol=1e-3)
    np.testing.assert_allclose(person.confidences, single.confidences,
                               atol=1e-5)
    np.testing.assert_allclose(person.heatmaps, single.heatmaps, atol=1e-5)
  # Different people, different answers: the order is the boxes'.
  assert not np.allclose(people[0].heatmaps, people[2].heatmaps)


def _crowd_files(tmp_path):
  """crowd.png (the `_crowd` image) and a COCO detections file for it: its
  three people, a dog and a person below the minimum score."""
  image, boxes = _crowd()
  Image.fromarray(image).save(tmp_path / "crowd.png")
  # bbox [x, y, w, h] measures pixel edges: box corner + 0.5.
  entries = [{"image_id": "crowd.png", "bbox": [x1 + 0.5, y1 + 0.5,
                                                 x2 - x1, y2 - y1],
              "score": 0.9 - 0.1 * i, "category_id": 1}
             for i, (x1, y1, x2, y2) in enumerate(boxes)]
  entries.insert(1, {"image_id": "crowd.png", "bbox": [0, 0, 30, 30],
                     "score": 0.99, "category_id": 18})
  entries.append({"image_id": "crowd.png", "bbox": [0, 0, 30, 30],
                  "score": 0.2, "category_id": 1})
  path = tmp_path / "boxes.json"
  path.write_text(json.dumps(entries))
  return str(tmp_path / "crowd.png"), str(path), boxes


def test_run_people_writes_coco_results_and_one_picture(tmp_path,
                                                        monkeypatch, caplog):
  predictor = _predictor()
  monkeypatch.setattr(predictor, "_predict_fn", _fake_predict_fn([]))
  image, boxes_file, boxes = _crowd_files(tmp_path)
  caplog.set_level("INFO")
  [people] = predict.plan_people([image], boxes_file, min_score=0.5)
  assert "Left out 1 entry of" in caplog.text  # the dog
  assert people.low_scores == 1 and len(people.people) == 3
  output = tmp_path / "out" / "crowd_pose.png"
  results = predict.run_people(predictor, people, str(output))
  parsed = json.loads(predict.results_json(results))
  assert [r["image_id"] for r in parsed] == ["crowd.png"] * 3
  assert all(r["category_id"] == 1 and len(r["keypoints"]) == 48
             for r in parsed)
  for result, box, detection in zip(parsed, boxes, people.people):
    assert result["bbox"] == list(detection.bbox)
    flat = np.array(result["keypoints"]).reshape(16, 3)
    x1, y1, x2, y2 = box
    np.testing.assert_allclose(
        flat[:, :2], _expected([(x1 + x2) / 2, (y1 + y2) / 2],
                               max(x2 - x1, y2 - y1) * 1.25), atol=0.01)
    # The fake heatmaps peak at 1: the score is the detection's.
    assert result["score"] == pytest.approx(detection.score, abs=1e-3)
  picture = np.asarray(Image.open(output))
  assert picture.shape == (96, 180, 3)
  assert not np.array_equal(picture, np.asarray(Image.open(image)))


def test_an_image_without_kept_people_is_a_warning(tmp_path, monkeypatch,
                                                   caplog):
  predictor = _predictor()
  seen = []
  monkeypatch.setattr(predictor, "_predict_fn", _fake_predict_fn(seen))
  image, boxes_file, _ = _crowd_files(tmp_path)
  [people] = predict.plan_people([image], boxes_file, min_score=0.95)
  output = tmp_path / "empty.png"
  assert predict.run_people(predictor, people, str(output),
                            min_score=0.95) == []
  assert not seen and output.is_file()
  warnings = [r.getMessage() for r in caplog.records
              if r.levelname == "WARNING"]
  assert warnings == [f"{image}: no person to predict: its 4 person boxes "
                      "score below --min_score 0.95."]
  assert predict.results_json([]) == "[]\n"


def test_a_folder_pairs_images_and_entries(tmp_path):
  folder = tmp_path / "photos"
  folder.mkdir()
  for name in ("000000000007.jpg", "b.png", "c.png"):
    Image.fromarray(_image(40, 30)).save(folder / name)
  (folder / "notes.txt").write_text("not an image")
  entries = [{"image_id": 7, "bbox": [1, 1, 20, 30], "score": 0.9,
              "category_id": 1},
             {"image_id": "b", "bbox": [2, 2, 20, 30], "score": 0.9,
              "category_id": 1}]
  boxes = tmp_path / "boxes.json"
  boxes.write_text(json.dumps(entries))
  names = predict.image_files(str(folder))
  assert names == ["000000000007.jpg", "b.png", "c.png"]
  plan = predict.plan_people([str(folder / n) for n in names], str(boxes),
                             folder=str(folder))
  assert [len(p.people) for p in plan] == [1, 1, 0]
  assert predict.picture_names(["a.jpg", "a.png", "b.jpg"]) == [
      "a_jpg_pose.png", "a_png_pose.png", "b_pose.png"]


def test_image_shape_reads_the_upright_size_from_the_header(tmp_path):
  path = tmp_path / "turned.jpg"
  exif = Image.Exif()
  exif[0x0112] = 6  # Rotate 90 degrees clockwise to show.
  Image.fromarray(_image(20, 50)).save(path, exif=exif)
  assert predict.image_shape(path) == (50, 20)
  assert predict.load_image(path).shape[:2] == (50, 20)
  with pytest.raises(errors.InputError, match="image file not found"):
    predict.image_shape(tmp_path / "none.jpg")


def test_people_figure_draws_everyone_or_says_why_not():
  from acnn_jax import visualize  # pylint: disable=g-import-not-at-top
  image = np.full((120, 200, 3), 128, np.uint8)
  # Two upright stick people: joint k of person p at x = 40 + 100 p,
  # y from 20 (head) to 100.
  ys = np.linspace(100, 20, 16)
  people = np.stack([np.stack([np.full(16, 40.0 + 100 * p), ys], -1)
                     for p in range(2)])
  boxes = [(20, 10, 60, 110), (120, 10, 160, 110)]
  picture = visualize.people_figure(image, people, np.ones((2, 16)),
                                    boxes=boxes, labels=["1: 0.9", "2: 0.8"])
  assert picture.shape == image.shape
  for p in range(2):  # Each skeleton is drawn inside its own box.
    x1, y1, x2, y2 = boxes[p]
    inner = picture[y1 + 15:y2 - 5, x1 + 5:x2 - 5]
    assert (np.abs(inner.astype(int) - 128).sum(-1) > 60).any()
  empty = visualize.people_figure(image, [], title="no person")
  changed = np.argwhere((empty != image).any(-1))
  assert len(changed) and changed.max(0)[0] < 30  # only the note, top left
  low = visualize.people_figure(image, people, np.zeros((2, 16)))
  assert (low[:30] != image[:30]).any()  # "no joint with confidence >= 0.2"
  assert (low[40:] == image[40:]).all()


@pytest.mark.parametrize("flags_given, pattern", [
    (dict(), "give --image=FILE, or --image_dir"),
    (dict(image="a.jpg", image_dir="d"), "one of them"),
    (dict(image="a.jpg", box="1,2,3,4", boxes="b.json"), "give one"),
    (dict(image_dir="d"), "--image_dir goes with --boxes"),
    (dict(image="a.jpg", output_json="o.json"), "--output_json goes with"),
    (dict(image_dir="d", boxes="b.json", output="o.png"), "--output_dir"),
    (dict(image="a.jpg", boxes="b.json", output="o.png", output_dir="p"),
     "not both"),
    (dict(image_dir="d", boxes="b.json", output_dir="./d/"),
     "other than --image_dir"),
    (dict(image="a.jpg", boxes="b.json", min_score=float("nan")),
     "--min_score must be a number"),
])
def test_flags_that_do_not_go_together_are_usage_errors(flags_given,
                                                        pattern):
  from absl import app  # pylint: disable=g-import-not-at-top
  with pytest.raises(app.UsageError, match=pattern):
    predict.check_usage(**flags_given)


def test_keypoints_go_beside_the_picture_unless_told():
  assert predict.json_destination(output="x/out.png") == "x/out.json"
  assert predict.json_destination(output_dir="p") == "p/keypoints.json"
  assert predict.json_destination(output="o.png", output_json="k.json") == (
      "k.json")
  assert predict.json_destination() is None  # printed
  from absl import app  # pylint: disable=g-import-not-at-top
  with pytest.raises(app.UsageError, match="overwrite the --boxes file"):
    predict.json_destination(output="d/b.png", boxes="d/b.json")


@TRAINED
@pytest.mark.slow
def test_command_line_predicts_every_person_on_a_trained_workdir(
    trained_workdir, tmp_path):
  path, _ = trained_workdir
  image, boxes_file, _ = _crowd_files(tmp_path)
  folder = tmp_path / "photos"
  folder.mkdir()
  (folder / "crowd.png").write_bytes(pathlib.Path(image).read_bytes())
  Image.fromarray(_image(50, 40)).save(folder / "empty.png")
  env = dict(os.environ, PYTHONPATH=str(REPO))
  common = [sys.executable, "-m", "acnn_jax.predict", f"--workdir={path}",
            f"--boxes={boxes_file}"]
  # Started together: each loads JAX and the checkpoint for seconds.
  single = subprocess.Popen(
      common + [f"--image={image}", f"--output={tmp_path / 'one.png'}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  many = subprocess.Popen(
      common + [f"--image_dir={folder}", f"--output_dir={tmp_path / 'out'}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  stderr = {}
  for name, process in (("single", single), ("many", many)):
    _, stderr[name] = process.communicate(timeout=PROCESS_TIMEOUT)
    assert process.returncode == 0, stderr[name]
  one = json.loads((tmp_path / "one.json").read_text())
  assert [r["bbox"][0] for r in one] == [4.5, 64.5, 124.5]
  assert all(len(r["keypoints"]) == 48 and np.isfinite(r["score"])
             for r in one)
  assert Image.open(tmp_path / "one.png").size == (180, 96)
  folder_results = json.loads(
      (tmp_path / "out" / "keypoints.json").read_text())
  assert folder_results == one  # the same people, the same network
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
      "crowd_pose.png", "empty_pose.png", "keypoints.json"]
  assert ("empty.png: no person to predict: it has no person box" in
          stderr["many"])
