"""Nothing silently wrong at inference (issue 10): checkpoints with NaN,
non-finite predictions, boxes outside the image, an empty drawing, and
malformed prediction or ground-truth files all end in one clear error (or a
warning), never in a traceback or a wrong answer. Issue 25: damaged
checkpoints (a damaged best/ step with an intact copy, a missing file, a file
for a folder) and images that decode into something else (16 bits, floats,
alpha, CIELAB)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.io
from PIL import Image

from acnn_jax import checkpoints
from acnn_jax import errors
from acnn_jax import evaluate
from acnn_jax import export
from acnn_jax import models
from acnn_jax import pckh
from acnn_jax import predict
from acnn_jax import visualize
from conftest import PROCESS_TIMEOUT
from conftest import tiny_config

REPO = pathlib.Path(__file__).resolve().parents[1]
STEP = 3


def _variables(config):
  """Variables of the config's model: shapes from `jax.eval_shape` (no slow
  init), filled with fan-in scaled noise and unit BatchNorm statistics, so
  the network computes finite, non-trivial outputs."""
  model = models.create_model(config)
  size = config.input_size
  shapes = jax.eval_shape(
      lambda r: model.init(r, jnp.zeros((1, size, size, 3)), train=False),
      jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name in ("scale", "var"):
      return np.ones(leaf.shape, leaf.dtype)
    if name in ("bias", "mean"):
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = max(1, int(np.prod(leaf.shape[:-1])))
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(
        leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, dict(shapes))


def _save_workdir(workdir, config, variables):
  """A workdir with one phase-C checkpoint, written as training writes it."""
  directory = checkpoints.phase_dir(str(workdir), config.phase)
  last, _ = checkpoints.make_managers(directory, keep=1)
  state = {"step": jnp.asarray(STEP, jnp.int32),
           "params": variables["params"],
           "batch_stats": variables["batch_stats"], "opt_state": {}}
  checkpoints.save_state(last, STEP, state)
  last.wait_until_finished()
  # config.json as training writes it (README, "Training on real MPII").
  with open(os.path.join(directory, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  return str(workdir)


@pytest.fixture(scope="module")
def tiny_workdirs(tmp_path_factory):
  """(good workdir, NaN workdir, its checkpoints directory, variables,
  config)."""
  root = tmp_path_factory.mktemp("reliability")
  config = tiny_config("c")
  variables = _variables(config)
  good = _save_workdir(root / "good", config, variables)
  broken = jax.tree_util.tree_map(np.array, variables)
  broken["params"]["stem"]["conv"]["kernel"].flat[0] = np.nan
  bad = _save_workdir(root / "nan", config, broken)
  checkpoints_dir = os.path.join(bad, "phase_c", "checkpoints")
  return good, bad, checkpoints_dir, variables, config


def _image_file(directory, height=40, width=30):
  path = os.path.join(directory, "person.png")
  pixels = (np.random.default_rng(1).random((height, width, 3)) * 255)
  Image.fromarray(pixels.astype(np.uint8)).save(path)
  return path


def _detection(image_id, bbox=(2, 3, 20, 30), score=0.9, category_id=1):
  return dict(image_id=image_id, bbox=list(bbox), score=score,
              category_id=category_id)


def _boxes_file(directory, entries, name="boxes.json"):
  path = os.path.join(directory, name)
  with open(path, "w") as f:
    f.write(entries if isinstance(entries, str) else json.dumps(entries))
  return path


def _damage(step_dir):
  """Cuts every file of a step's OCDBT database to 8 bytes (a copy cut
  short)."""
  for root, _, files in os.walk(step_dir):
    inside = os.path.relpath(root, step_dir)
    for name in files:
      if "ocdbt" in inside or name.endswith(".ocdbt"):
        with open(os.path.join(root, name), "r+b") as f:
          f.truncate(8)


def _with_best_copy(workdir, tmp_path):
  """A copy of `workdir` whose step is saved in best/ too, as training saves
  an evaluation step that is also a save step: (copy, its phase_c)."""
  copy = pathlib.Path(tmp_path) / "run"
  shutil.copytree(workdir, copy)
  phase = copy / "phase_c"
  shutil.copytree(phase / "checkpoints" / str(STEP), phase / "best" / str(STEP))
  return copy, phase


def _start(module, *args):
  """Starts `python -m module args`."""
  env = dict(os.environ, PYTHONPATH=str(REPO))
  return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO,
                          env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def cli_runs(tiny_workdirs, tmp_path_factory):
  """The command lines of this file, started together (each loads JAX and
  TensorFlow for seconds) and awaited: {name: CompletedProcess}."""
  good, bad, _, _, _ = tiny_workdirs
  tmp = tmp_path_factory.mktemp("cli")
  image = _image_file(str(tmp))
  truncated = tmp / "truncated.h5"
  with h5py.File(tmp / "whole.h5", "w") as f:
    f["preds"] = np.ones((5, 16, 2))
  data = (tmp / "whole.h5").read_bytes()
  truncated.write_bytes(data[:len(data) // 2])
  outside = _boxes_file(tmp, [_detection("person.png", [100, 5, 20, 25])],
                        "outside.json")
  folder = tmp / "photos"
  folder.mkdir()
  _image_file(str(folder))
  missing = _boxes_file(tmp, [_detection("person.png"),
                              _detection("nobody.jpg")], "missing.json")
  damaged_best, phase = _with_best_copy(good, tmp)
  _damage(phase / "best" / str(STEP))
  floats = tmp / "floats.tif"
  Image.fromarray(np.full((40, 30), 7.5, np.float32)).save(floats)
  started = {
      "predict_boxes_outside": _start(
          "acnn_jax.predict", f"--workdir={good}", f"--image={image}",
          f"--boxes={outside}"),
      "predict_boxes_missing": _start(
          "acnn_jax.predict", f"--workdir={good}", f"--image_dir={folder}",
          f"--boxes={missing}"),
      "evaluate_nan": _start("acnn_jax.evaluate", f"--workdir={bad}"),
      "predict_nan": _start("acnn_jax.predict", f"--workdir={bad}",
                            f"--image={image}"),
      "predict_outside": _start("acnn_jax.predict", f"--workdir={good}",
                                f"--image={image}", "--box=100,5,120,30"),
      "predict_good": _start("acnn_jax.predict", f"--workdir={good}",
                             f"--image={image}", "--threshold=1e9",
                             f"--output={tmp / 'pose.png'}"),
      "pckh_truncated": _start("acnn_jax.pckh", f"--ground_truth={truncated}",
                               f"--predictions={truncated}"),
      "predict_damaged_best": _start("acnn_jax.predict",
                                     f"--workdir={damaged_best}",
                                     f"--image={image}"),
      "predict_float_image": _start("acnn_jax.predict", f"--workdir={good}",
                                    f"--image={floats}"),
  }
  runs = {}
  for name, process in started.items():
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)
    runs[name] = subprocess.CompletedProcess(process.args, process.returncode,
                                             stdout, stderr)
  runs["output"] = tmp / "pose.png"
  return runs


def _one_error_line(process, command):
  """The single `<command>: error:` line of a run that failed with status 1."""
  assert process.returncode == 1, process.stderr
  assert "Traceback" not in process.stderr, process.stderr
  lines = [l for l in process.stderr.splitlines() if "error:" in l]
  assert len(lines) == 1, process.stderr
  assert lines[0].startswith(f"{command}: error: "), lines
  return lines[0]


# ------------------------------------------------ checkpoints with NaN in them


@pytest.mark.slow
@pytest.mark.parametrize("name, command", [("evaluate_nan", "evaluate"),
                                           ("predict_nan", "predict")])
def test_commands_refuse_a_checkpoint_with_nan(cli_runs, tiny_workdirs, name,
                                               command):
  line = _one_error_line(cli_runs[name], command)
  assert tiny_workdirs[2] in line and "NaN" in line, line
  assert cli_runs[name].stdout == ""


def test_predictor_refuses_a_checkpoint_with_nan(tiny_workdirs):
  _, bad, checkpoints_dir, _, _ = tiny_workdirs
  with pytest.raises(errors.InputError, match="NaN or infinite") as raised:
    predict.Predictor.from_checkpoint(bad)
  assert checkpoints_dir in str(raised.value)


# ------------------------------------------- damaged checkpoints (issue 25)


def test_a_damaged_best_checkpoint_is_read_from_its_intact_copy(
    tiny_workdirs, tmp_path, caplog):
  workdir, phase = _with_best_copy(tiny_workdirs[0], tmp_path)
  _damage(phase / "best" / str(STEP))
  loaded = checkpoints.load_for_inference(str(workdir))
  assert loaded.checkpoint == str(phase / "checkpoints" / str(STEP))
  warnings = [r.getMessage() for r in caplog.records
              if "cannot be used" in r.getMessage()]
  assert len(warnings) == 1, warnings
  assert f"{phase}/best/{STEP} cannot be used (" in warnings[0]
  assert (f"using its copy {phase}/checkpoints/{STEP}, the same training "
          "state" in warnings[0])
  np.testing.assert_array_equal(
      loaded.variables["params"]["stem"]["conv"]["kernel"],
      tiny_workdirs[3]["params"]["stem"]["conv"]["kernel"])
  # Named by its folder, the damaged copy is not swapped for the other.
  with pytest.raises(errors.InputError, match=f"step {STEP}: "):
    checkpoints.load_for_inference(str(phase / "best" / str(STEP)))


@pytest.mark.parametrize("damage,part,what", [
    (lambda step: (step / "default" / "_METADATA").unlink(),
     "default/_METADATA", "is missing"),
    (lambda step: (step / "default" / "_METADATA").write_text('{"tree_me'),
     "default/_METADATA", "is not whole JSON"),
    (lambda step: (step / "default" / "manifest.ocdbt").unlink(),
     "default/manifest.ocdbt", "is missing"),
    (lambda step: shutil.rmtree(step / "default"), "default", "is missing"),
], ids=["no_metadata", "cut_metadata", "no_manifest", "no_item_folder"])
def test_a_missing_or_cut_checkpoint_file_is_named(tiny_workdirs, tmp_path,
                                                   damage, part, what):
  workdir = tmp_path / "run"
  shutil.copytree(tiny_workdirs[0], workdir)
  step = workdir / "phase_c" / "checkpoints" / str(STEP)
  damage(step)
  with pytest.raises(errors.InputError) as raised:
    checkpoints.load_for_inference(str(workdir))
  message = str(raised.value)
  # Not orbax's "argument of type 'NoneType' is not iterable".
  assert str(step / part) in message and what in message, message
  assert "written in part" in message and "\n" not in message, message


def test_a_file_or_nothing_where_a_checkpoint_folder_is_expected(
    tiny_workdirs, tmp_path):
  config_file = os.path.join(tiny_workdirs[0], "phase_c", "config.json")
  with pytest.raises(errors.InputError,
                     match=f"{config_file} is a file, not a folder"):
    checkpoints.load_for_inference(config_file)
  with pytest.raises(errors.MissingError,
                     match=f"{tmp_path / 'run'} does not exist"):
    checkpoints.load_for_inference(str(tmp_path / "run"))


@pytest.mark.slow
def test_predict_uses_the_intact_copy_of_a_damaged_best_checkpoint(cli_runs):
  run = cli_runs["predict_damaged_best"]
  assert run.returncode == 0, run.stderr
  assert "Traceback" not in run.stderr, run.stderr
  assert "Exception ignored" not in run.stderr, run.stderr
  warnings = [l for l in run.stderr.splitlines() if "cannot be used" in l]
  assert len(warnings) == 1, run.stderr
  assert f"best/{STEP} cannot be used" in warnings[0], warnings
  assert "using its copy " in warnings[0], warnings
  assert f"checkpoints/{STEP}, the same training state" in warnings[0]
  assert len(_strict_json(run.stdout)["keypoints"]) == 16


# ------------------------------------------------- what predict prints, draws


def _strict_json(text):
  def refuse(constant):
    raise ValueError(f"{constant} is not JSON")
  return json.loads(text, parse_constant=refuse)


@pytest.mark.slow
def test_predict_prints_strict_json_and_says_when_nothing_is_drawn(cli_runs):
  run = cli_runs["predict_good"]
  assert run.returncode == 0, run.stderr
  result = _strict_json(run.stdout)
  assert len(result["keypoints"]) == 16
  assert all(np.isfinite(r["confidence"]) for r in result["keypoints"])
  warnings = [l for l in run.stderr.splitlines()
              if "No joint has confidence >= 1e+09" in l]
  assert len(warnings) == 1, run.stderr
  assert cli_runs["output"].is_file()


@pytest.fixture
def fake_predictor(tiny_workdirs, monkeypatch):
  """A Predictor of the tiny model whose network and warp are stand-ins:
  fake_predictor(value, calls) has heatmaps all `value` and appends each
  batch's size to `calls`."""
  _, _, _, variables, config = tiny_workdirs
  monkeypatch.setattr(predict, "warp_crop", lambda image, center, scale, size:
                      np.zeros((size, size, 3), np.float32))

  def make(value, calls):
    predictor = predict.Predictor(models.create_model(config), variables,
                                  input_size=config.input_size)
    monkeypatch.setattr(predictor, "_predict_fn", _fake_outputs(value, calls))
    return predictor

  return make


def _fake_outputs(value, calls):
  def fn(variables, images):
    del variables
    calls.append(len(images))
    heatmaps = jnp.full((len(images), 16, 16, 16), value, jnp.float32)
    return dict(heatmaps=heatmaps,
                masks=jnp.ones((2, len(images), 16, 16, 1)),
                stage_predictions=jnp.stack([heatmaps, heatmaps]))
  return fn


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_predictor_refuses_non_finite_predictions(fake_predictor, value):
  predictor = fake_predictor(value, [])
  image = np.zeros((20, 20, 3), np.uint8)
  with pytest.raises(errors.InputError, match="image 0 holds NaN or inf"):
    predictor(image)
  with pytest.raises(errors.InputError, match="NaN or inf"):
    predict.run(predictor, image)


def test_figure_says_when_no_joint_reaches_the_threshold():
  image = np.full((64, 48, 3), 90, np.uint8)
  points = np.full((16, 2), 20.0)
  low = np.full(16, 0.1)
  empty = visualize.prediction_figure(image, points, low, threshold=0.2)
  drawn = visualize.prediction_figure(image, points, low, threshold=0.05)
  unlabelled = visualize.prediction_figure(image, points, low, threshold=None)
  # The note is a second label line under "prediction", absent otherwise.
  note = (slice(14, 40), slice(0, 48))
  assert not np.array_equal(empty[note], unlabelled[note])
  np.testing.assert_array_equal(drawn[:14], unlabelled[:14])
  assert (empty[note] > 200).any()  # white text


# -------------------------------------------------------------------- boxes


@pytest.mark.parametrize("box", [(100, 5, 120, 30), (-40, 5, -1, 30),
                                 (2, -30, 20, -0.5), (2, 39.5, 20, 60)])
def test_a_box_wholly_outside_the_image_is_refused(box):
  # The image is 30 wide and 40 high: x in [-0.5, 29.5], y in [-0.5, 39.5].
  with pytest.raises(errors.InputError, match="wholly outside") as raised:
    predict.check_box_in_image(box, 40, 30)
  message = str(raised.value)
  assert predict.format_box(box) in message and "30 x 40" in message


@pytest.mark.parametrize("box", ["0.1,0.2,0.5,0.9", "10,10,10.5,30",
                                 "10,10,30,10.9"])
def test_a_box_under_a_pixel_is_refused(box):
  with pytest.raises(errors.InputError, match="less than one pixel"):
    predict.parse_box(box)


def test_predictor_checks_boxes_before_running_the_network(fake_predictor,
                                                           caplog):
  calls = []
  predictor = fake_predictor(0.5, calls)
  image = np.zeros((40, 30, 3), np.uint8)
  with pytest.raises(errors.InputError, match="wholly outside"):
    predictor.predict_batch([image, image], [None, (100, 5, 120, 30)])
  assert not calls
  # Partly outside: kept as given (not clipped); a warning below half inside.
  result = predictor(image, box=(20, 0, 60, 20))
  np.testing.assert_allclose(result.center, [40.0, 10.0])
  assert "24% of box 20,0,60,20" in caplog.text
  caplog.clear()
  predictor(image, box=(0, 0, 35, 20))
  assert "of box" not in caplog.text


@pytest.mark.slow
def test_predict_refuses_a_box_outside_the_image_in_one_line(cli_runs):
  line = _one_error_line(cli_runs["predict_outside"], "predict")
  assert "box 100,5,120,30 lies wholly outside" in line
  assert "30 x 40 pixels" in line


# --------------------- images that decode into something else (issue 25)


def _grey(height=6, width=5):
  return np.random.default_rng(2).integers(0, 256, (height, width),
                                           dtype=np.uint8)


def _assert_grey(image, grey):
  """`image` is (H, W, 3) uint8 RGB showing `grey`, within one level."""
  assert image.shape == grey.shape + (3,) and image.dtype == np.uint8
  assert np.abs(image.astype(int) - grey[..., None]).max() <= 1


@pytest.mark.parametrize("name", ["grey.png", "grey.tif", "big_endian.tif",
                                  "grey.pgm"])
def test_16_bit_greyscale_is_scaled_to_8_bits_not_clipped(tmp_path, name):
  """PIL opens these as I;16, I;16, I;16B and I (PGM): its convert("RGB")
  turned each pure white."""
  grey = _grey()
  wide = grey.astype(np.uint16) * 257  # The same brightness in 16 bits.
  path = tmp_path / name
  if name == "big_endian.tif":
    Image.frombytes("I;16B", grey.shape[::-1],
                    wide.astype(">u2").tobytes()).save(path)
  else:
    Image.fromarray(wide).save(path)
  _assert_grey(predict.load_image(path), grey)
  assert predict.image_shape(path) == grey.shape


def test_a_float_image_in_0_1_is_scaled_by_255(tmp_path):
  grey = _grey()
  path = tmp_path / "float.tif"
  Image.fromarray(grey.astype(np.float32) / 255).save(path)
  _assert_grey(predict.load_image(path), grey)


def _transparent_image(directory, kind):
  """An image whose first column is transparent over a hidden colour and
  whose other pixels are opaque: (path, the RGB of its opaque pixels)."""
  height, width = 6, 5
  rng = np.random.default_rng(3)
  alpha = np.full((height, width), 255, np.uint8)
  alpha[:, 0] = 0
  path = os.path.join(directory, f"{kind}.{'tif' if kind == 'PA' else 'png'}")
  if kind == "LA":
    grey = rng.integers(0, 256, (height, width), dtype=np.uint8)
    grey[:, 0] = 0  # Black under the transparent pixels.
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(path)
    return path, np.repeat(grey[..., None], 3, -1)
  if kind == "RGBA":
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    rgb[:, 0] = (10, 200, 30)  # What an eraser left.
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path, rgb
  palette = np.array([[200, 0, 0], [0, 0, 0], [90, 90, 90], [0, 0, 255]],
                     np.uint8)
  index = rng.integers(1, 4, (height, width), dtype=np.uint8)
  index[:, 0] = 0
  if kind == "P_transparency":  # Palette entry 0 is transparent (tRNS).
    picture = Image.fromarray(index, "P")
    picture.putpalette(palette.ravel().tolist())
    picture.save(path, transparency=0)
  else:  # PA: a palette index and an alpha per pixel.
    picture = Image.frombytes("PA", (width, height),
                              np.dstack([index, alpha]).tobytes())
    picture.putpalette(palette.ravel().tolist())
    picture.save(path)
  return path, palette[index]


@pytest.mark.parametrize("kind", ["LA", "RGBA", "P_transparency", "PA"])
def test_transparent_pixels_are_white_not_their_hidden_colour(tmp_path, kind):
  path, opaque = _transparent_image(str(tmp_path), kind)
  image = predict.load_image(path)
  assert image.shape == opaque.shape and image.dtype == np.uint8
  np.testing.assert_array_equal(image[:, 0], 255)
  np.testing.assert_array_equal(image[:, 1:], opaque[:, 1:])


def test_an_rgba_array_is_composited_as_its_file_is(tmp_path):
  path, _ = _transparent_image(str(tmp_path), "RGBA")
  with Image.open(path) as picture:
    rgba = np.asarray(picture).copy()
  rgba[0, 1, 3] = 128  # Half transparent: halfway to white.
  Image.fromarray(rgba, "RGBA").save(path)
  image = predict.as_image(rgba)
  np.testing.assert_array_equal(image, predict.load_image(path))
  np.testing.assert_array_equal(image[:, 0], 255)
  expected = (rgba[0, 1, :3].astype(int) * 128 + 255 * 127) / 255
  assert np.abs(image[0, 1].astype(int) - expected).max() <= 1


def _refused(directory, name):
  path = os.path.join(directory, name)
  grey = _grey()
  if name == "int32.tif":  # 32-bit integers: which range is white?
    Image.fromarray(grey.astype(np.int32) * 257).save(path)
  elif name == "wide_float.tif":
    Image.fromarray(grey.astype(np.float32) * 2).save(path)
  elif name == "nan_float.tif":
    values = grey.astype(np.float32) / 255
    values[1, 2] = np.nan
    Image.fromarray(values).save(path)
  else:  # CIELAB, which PIL turns into RGB as if it were RGB.
    Image.new("LAB", (5, 6), (50, 0, 0)).save(path)
  return path


@pytest.mark.parametrize("name,words,from_header", [
    ("int32.tif", "holds 32-bit integers (PIL mode I; 32-bit values)", True),
    ("wide_float.tif", "32-bit floats (PIL mode F) from ", False),
    ("nan_float.tif", "some NaN or infinite", False),
    ("lab.tif", "CIELAB image (PIL mode LAB)", True),
], ids=["int32", "wide_float", "nan_float", "lab"])
def test_images_without_a_known_8_bit_brightness_are_refused_in_one_line(
    tmp_path, name, words, from_header):
  path = _refused(str(tmp_path), name)
  with pytest.raises(errors.InputError) as raised:
    predict.load_image(path)
  message = str(raised.value)
  assert message.startswith(f"cannot use image {path}: "), message
  assert words in message and "Save it as 8-bit" in message, message
  assert "\n" not in message
  if from_header:  # Refused before the network is loaded.
    with pytest.raises(errors.InputError, match="PIL mode"):
      predict.image_shape(path)
  else:
    assert predict.image_shape(path) == (6, 5)


@pytest.mark.parametrize("mode", ["1", "YCbCr"])
def test_modes_pil_converts_exactly_still_are(tmp_path, mode):
  """Bilevel (black and white) and YCbCr TIFF: PIL's own conversion."""
  grey = _grey()
  path = tmp_path / "picture.tif"
  if mode == "1":
    grey = np.where(grey > 127, 255, 0).astype(np.uint8)
    Image.fromarray(grey > 127).save(path)
  else:  # Y is the brightness; Cb = Cr = 128 is no colour.
    Image.fromarray(np.dstack([grey, np.full_like(grey, 128),
                               np.full_like(grey, 128)]), "YCbCr").save(path)
  _assert_grey(predict.load_image(path), grey)


def test_a_folder_given_as_an_image_is_called_a_folder(tmp_path):
  for read in (predict.load_image, predict.image_shape, predict.as_image):
    with pytest.raises(errors.InputError,
                       match=f"{tmp_path} is a folder, not an image file"):
      read(tmp_path)


@pytest.mark.slow
def test_predict_refuses_an_image_of_unknown_brightness_in_one_line(cli_runs):
  line = _one_error_line(cli_runs["predict_float_image"], "predict")
  assert "floats.tif: it holds 32-bit floats (PIL mode F)" in line, line


# ------------------------------------------------- person boxes (--boxes)


def _plan_error(tmp_path, entries, folder=False):
  """The message of `plan_people`'s InputError for person.png (40 x 30)
  and the detections `entries`; it must be one line naming the file."""
  image = _image_file(str(tmp_path))
  boxes = _boxes_file(str(tmp_path), entries)
  with pytest.raises(errors.InputError) as raised:
    predict.plan_people([image], boxes,
                        folder=str(tmp_path) if folder else None)
  message = str(raised.value)
  assert boxes in message and "\n" not in message, message
  return message


def test_a_detection_outside_its_image_is_one_line_naming_the_entry(
    tmp_path):
  # bbox [100, 5, 20, 25] starts right of the 30 pixel wide image.
  message = _plan_error(tmp_path, [_detection("person.png"),
                                   _detection("person.png", [100, 5, 20, 25])])
  assert message.startswith(
      f"{tmp_path / 'boxes.json'}[1] (image_id 'person.png'): bbox [100, 5, "
      "20, 25] lies wholly outside"), message
  assert "30 x 40 pixels" in message


def test_a_detection_under_a_pixel_is_one_line(tmp_path):
  message = _plan_error(tmp_path, [_detection("person", [0.1, 0.2, 0.5, 0.7])])
  assert ("boxes.json[0] (image_id 'person'): bbox [0.1, 0.2, 0.5, 0.7] is "
          "less than one pixel") in message, message
  assert "not fractions" in message


def test_an_entry_naming_no_image_of_the_folder_is_one_line(tmp_path):
  message = _plan_error(tmp_path, [_detection("person.png"),
                                   _detection(17)], folder=True)
  assert "boxes.json[1] (image_id 17) names no image in" in message, message
  assert "000000000017.jpg" in message  # how an int image_id names a file


def test_an_image_no_entry_names_is_one_line(tmp_path):
  message = _plan_error(tmp_path, [_detection("other.png"), _detection(3)])
  assert "holds no entry for" in message and "person.png" in message
  assert "'other.png'" in message and "3" in message  # the ids it has


def test_a_malformed_detections_file_is_one_line(tmp_path):
  message = _plan_error(tmp_path, [_detection("person.png"),
                                   {"image_id": "person.png"}])
  assert "boxes.json[1]: no 'bbox'" in message, message
  message = _plan_error(tmp_path, '{"image_id": 1}')
  assert "holds a JSON dict" in message


def test_other_categories_are_counted_and_no_person_is_a_warning(
    tmp_path, caplog):
  image = _image_file(str(tmp_path))
  boxes = _boxes_file(str(tmp_path), [
      _detection("person.png", category_id=18),
      _detection("person.png", category_id=3),
      _detection("person.png", score=0.1)])
  caplog.set_level("INFO")
  [people] = predict.plan_people([image], boxes)
  assert not people.people and people.low_scores == 1
  assert "Left out 2 entries of" in caplog.text
  assert "whose category_id is not 1 (person)" in caplog.text


@pytest.mark.slow
def test_predict_reports_a_bad_detection_in_one_line(cli_runs):
  line = _one_error_line(cli_runs["predict_boxes_outside"], "predict")
  assert ("outside.json[0] (image_id 'person.png'): bbox [100, 5, 20, 25] "
          "lies wholly outside") in line, line
  line = _one_error_line(cli_runs["predict_boxes_missing"], "predict")
  assert "missing.json[1] (image_id 'nobody.jpg') names no image in" in line
  assert "photos" in line
  for name in ("predict_boxes_outside", "predict_boxes_missing"):
    assert cli_runs[name].stdout == ""


# ------------------------------------------------ prediction and truth files


def _write_h5(path, **arrays):
  with h5py.File(path, "w") as f:
    for key, value in arrays.items():
      f[key] = value
  return str(path)


def test_published_predictions_read_the_same_in_both_layouts(shared_mpii,
                                                             tmp_path):
  gt = str(shared_mpii / "gt_valid.mat")
  newell = str(shared_mpii / "reference_preds/newell.h5")
  expected = pckh.evaluate_files(gt, newell)
  with h5py.File(newell, "r") as f:
    preds = np.asarray(f["preds"])
  assert preds.shape == (2958, 16, 2)
  matlab = str(tmp_path / "pred.mat")  # MATLAB's (2, 16, N), as v5 .mat
  scipy.io.savemat(matlab, {"preds": preds.transpose(2, 1, 0)})
  assert pckh.evaluate_files(gt, matlab) == expected
  as_h5 = _write_h5(tmp_path / "pred.h5", preds=preds.transpose(2, 1, 0))
  assert pckh.evaluate_files(gt, as_h5) == expected


def test_the_two_layouts_and_the_ambiguous_case(tmp_path):
  preds = np.arange(3 * 16 * 2, dtype=np.float64).reshape(3, 16, 2)
  path = _write_h5(tmp_path / "p.h5", preds=preds.transpose(2, 1, 0))
  np.testing.assert_array_equal(pckh.load_predictions(path), preds)
  # N == 2 fits both layouts: read as (N, 16, 2), what evaluate writes.
  two = preds[:2]
  path = _write_h5(tmp_path / "two.h5", preds=two)
  np.testing.assert_array_equal(pckh.load_predictions(path), two)
  assert pckh.predictions_layout((2, 16, 2)) == "N,16,2"


@pytest.mark.parametrize("shape", [(3, 16, 3), (16, 2, 5), (5, 32), (2, 15, 4)])
def test_other_prediction_shapes_name_file_shape_and_layouts(tmp_path, shape):
  path = _write_h5(tmp_path / "p.h5", preds=np.zeros(shape))
  with pytest.raises(errors.InputError) as raised:
    pckh.load_predictions(path)
  message = str(raised.value)
  for part in (path, str(shape), "(N, 16, 2)", "(2, 16, N)"):
    assert part in message, message


def _truncated(path, source):
  data = pathlib.Path(source).read_bytes()
  path.write_bytes(data[:len(data) // 2])
  return str(path)


def _assert_one_line_input_errors(load, cases):
  """Each (path, pattern) case: `load(path)` raises one line naming the file
  (pattern None: worded by input_pipeline.array_files, not checked here)."""
  for path, pattern in cases:
    with pytest.raises(errors.InputError, match=pattern) as raised:
      load(path)
    message = str(raised.value)
    assert path in message and "\n" not in message, message


def test_malformed_prediction_files_are_input_errors(tmp_path):
  whole = _write_h5(tmp_path / "whole.h5", preds=np.ones((4, 16, 2)))
  notes = tmp_path / "notes.mat"
  notes.write_text("not a matrix\n")
  text = str(tmp_path / "text.mat")
  scipy.io.savemat(text, {"preds": "x"})
  nan = np.ones((4, 16, 2))
  nan[1, 3, 0] = np.nan
  nan_file = str(tmp_path / "nan.mat")
  scipy.io.savemat(nan_file, {"preds": nan})
  _assert_one_line_input_errors(pckh.load_predictions, [
      (_truncated(tmp_path / "cut.h5", whole), None),
      (str(notes), None),
      (_write_h5(tmp_path / "o.h5", joints=np.ones(3)), "no 'preds' array"),
      (text, "preds must be an array of numbers"),
      (nan_file, r"NaN or inf \(first at person 1, joint 3\)"),
  ])


def test_malformed_ground_truth_files_are_input_errors(shared_mpii, tmp_path):
  part = np.ones((4, 16, 2))
  nan_joint = part.copy()
  nan_joint[2, 5] = np.nan
  mat = str(tmp_path / "gt_text.mat")
  scipy.io.savemat(mat, {"pos_gt_src": "x", "jnt_missing": np.zeros((16, 1)),
                         "headboxes_src": np.zeros((2, 2, 1))})
  _assert_one_line_input_errors(pckh.load_ground_truth, [
      (_truncated(tmp_path / "cut.h5", shared_mpii / "valid.h5"), None),
      (_write_h5(tmp_path / "head.h5", part=part,
                 normalize=[1.0, np.nan, 1.0, 1.0]),
       "head sizes must be positive.*person 1"),
      (_write_h5(tmp_path / "joint.h5", part=nan_joint, normalize=np.ones(4)),
       "annotated joints hold NaN.*person 2"),
      (_write_h5(tmp_path / "text.h5", part=np.array([b"x", b"y"]),
                 normalize=np.ones(4)), "part must be an array of numbers"),
      (mat, "pos_gt_src must be an array of numbers"),
  ])


@pytest.mark.slow
def test_pckh_reports_a_truncated_file_in_one_line(cli_runs):
  line = _one_error_line(cli_runs["pckh_truncated"], "pckh")
  assert "truncated.h5" in line


# ------------------------------------- where the results go (issue 25)

COMMANDS = {"predict": predict, "evaluate": evaluate, "export": export}
# A folder that exists and takes no new file, even from root.
UNWRITABLE = "/proc"
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"),
                                reason="needs Linux's /proc")


def _output_run(run_command, tmp_path, command, args):
  """Runs `command` in this process with `args`, in which TMP is
  `tmp_path`, FILE a regular file there and RUN a workdir that does not
  exist (the output must be refused before the workdir is looked at):
  (exit status, stdout, stderr)."""
  (tmp_path / "file").write_text("a regular file, not a folder\n")
  args = [a.replace("TMP", str(tmp_path)).replace("FILE",
                                                    str(tmp_path / "file"))
          .replace("RUN", str(tmp_path / "no_run")) for a in args]
  module = COMMANDS[command]
  return run_command(command, module.main, module.define_flags, args)


PREDICT = ["--workdir=RUN", "--image=TMP/person.png"]
BOXES = PREDICT + ["--boxes=TMP/boxes.json"]
# Each: a command, an output it cannot write, and its one error line. On
# the code before issue 25 each ran on (here, to a missing workdir or
# image; with real ones, to a traceback after the work).
OUTPUT_MISTAKES = [
    pytest.param("predict", PREDICT + ["--output=FILE/pose.png"],
                 "--output=FILE/pose.png: cannot create the folder FILE: "
                 "FILE is a file, not a folder.", id="predict_under_a_file"),
    pytest.param("predict", PREDICT + ["--output=TMP"],
                 "--output=TMP: TMP is a folder; name a file to write",
                 id="predict_output_is_a_folder"),
    pytest.param("predict", PREDICT + [f"--output={UNWRITABLE}/pose.png"],
                 f"--output={UNWRITABLE}/pose.png: cannot write in "
                 f"{UNWRITABLE} (", id="predict_unwritable", marks=needs_proc),
    pytest.param("predict", BOXES + ["--output_json=FILE/people.json"],
                 "--output_json=FILE/people.json: cannot create the folder "
                 "FILE", id="predict_json_under_a_file"),
    pytest.param("predict", BOXES + ["--output_dir=FILE"],
                 "--output_dir=FILE: FILE is a file, not a folder",
                 id="predict_output_dir_is_a_file"),
    pytest.param("predict", BOXES + [f"--output_dir={UNWRITABLE}/poses"],
                 f"--output_dir={UNWRITABLE}/poses: cannot create the folder "
                 f"{UNWRITABLE}/poses (", id="predict_output_dir_unwritable",
                 marks=needs_proc),
    pytest.param("predict", BOXES + ["--output=TMP/crowd.png"],
                 "the keypoints file TMP/crowd.json: TMP/crowd.json is a "
                 "folder", id="predict_json_beside_output_is_a_folder"),
    pytest.param("evaluate", ["--workdir=RUN", "--pred_mat=FILE/pred.mat"],
                 "--pred_mat=FILE/pred.mat: cannot create the folder FILE: "
                 "FILE is a file", id="evaluate_under_a_file"),
    pytest.param("evaluate", ["--workdir=RUN", "--pred_mat=TMP"],
                 "--pred_mat=TMP: TMP is a folder",
                 id="evaluate_pred_mat_is_a_folder"),
    pytest.param("evaluate", ["--workdir=RUN",
                              f"--pred_mat={UNWRITABLE}/pred.mat"],
                 f"--pred_mat={UNWRITABLE}/pred.mat: cannot write in "
                 f"{UNWRITABLE} (", id="evaluate_unwritable",
                 marks=needs_proc),
    pytest.param("evaluate", ["--workdir=RUN", "--split=test",
                              "--submission=FILE/pred_keypoints_mpii.mat"],
                 "--submission=FILE/pred_keypoints_mpii.mat: cannot create "
                 "the folder FILE", id="evaluate_submission_under_a_file"),
    pytest.param("export", ["--workdir=RUN", "--output=FILE/export"],
                 "--output=FILE/export: cannot create the folder FILE: FILE "
                 "is a file", id="export_under_a_file"),
    pytest.param("export", ["--workdir=RUN",
                            f"--output={UNWRITABLE}/export"],
                 f"--output={UNWRITABLE}/export: cannot write in "
                 f"{UNWRITABLE} (", id="export_unwritable", marks=needs_proc),
]


@pytest.mark.parametrize("command,args,message", OUTPUT_MISTAKES)
def test_outputs_that_cannot_be_written_are_refused_before_any_work(
    run_command, tmp_path, command, args, message):
  (tmp_path / "crowd.json").mkdir()
  code, stdout, stderr = _output_run(run_command, tmp_path, command, args)
  assert code == 1, stderr
  assert "Traceback" not in stderr, stderr
  lines = [l for l in stderr.splitlines() if "error:" in l]
  assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), (
      stderr)
  expected = message.replace("TMP", str(tmp_path)).replace(
      "FILE", str(tmp_path / "file"))
  assert expected in lines[0], lines[0]
  assert stdout == ""
  assert sorted(os.listdir(tmp_path)) == ["crowd.json", "file"]  # No probe.


def test_every_command_creates_missing_parent_folders_first(run_command,
                                                            tmp_path):
  """Then fails on a missing input (image, boxes or workdir): the folders
  are made before any work, and hold nothing (the writability probe is
  removed)."""
  for command, args, folder in [
      ("predict", PREDICT + ["--output=TMP/a/b/pose.png"], "a/b"),
      ("predict", BOXES + ["--output_dir=TMP/c/d"], "c/d"),
      ("predict", BOXES + ["--output_json=TMP/e/f/people.json"], "e/f"),
      ("evaluate", ["--workdir=RUN", "--pred_mat=TMP/g/h/pred.mat"], "g/h"),
      ("evaluate", ["--workdir=RUN", "--split=test",
                    "--submission=TMP/i/j/pred_keypoints_mpii.mat"], "i/j"),
      ("export", ["--workdir=RUN", "--output=TMP/k/l/export"], "k/l")]:
    code, _, stderr = _output_run(run_command, tmp_path, command, args)
    # "image file not found", "No checkpoint found": an input's error.
    assert code == 1 and "found" in stderr, stderr
    assert os.listdir(tmp_path / folder) == [], (command, args)


def test_read_only_outputs_are_refused(run_command, tmp_path):
  locked, kept = tmp_path / "locked", tmp_path / "kept.png"
  locked.mkdir()
  kept.write_bytes(b"the user's picture")
  locked.chmod(0o555)
  kept.chmod(0o444)
  try:
    if os.access(locked, os.W_OK):  # Root (CAP_DAC_OVERRIDE) writes there.
      pytest.skip("permission bits do not stop this user")
    for output, message in [(locked / "pose.png", "cannot write in"),
                            (kept, "exists and is read-only")]:
      code, _, stderr = _output_run(run_command, tmp_path, "predict",
                                    PREDICT + [f"--output={output}"])
      assert code == 1 and f"--output={output}: " in stderr, stderr
      assert message in stderr, stderr
  finally:
    locked.chmod(0o755)
  assert kept.read_bytes() == b"the user's picture"
