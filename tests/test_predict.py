"""Tests of inference on one's own images: crops from boxes, keypoints in
original pixels, the user errors the command line reports, the function
it calls."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from acnn_jax import errors
from acnn_jax import mpii
from acnn_jax import predict
from conftest import TRAINED
from conftest import tiny_model

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
