"""Tests of exported models: `acnn_jax.export` writes them, `acnn_jax.predict`
runs them without Flax.

One export of the tiny network (written by the command line) is shared by the
tests; it is reloaded in fresh processes, as a jax.export artifact (with Flax,
orbax, ml_collections and TensorFlow made unimportable) and as a SavedModel,
and compared with `model.apply` on random crops. The workdir's phases B and C
hold two different networks with random attention heads, whose masks vary
over the image and between stages, so that exporting the wrong phase, or
masks in the wrong layout, stage order or from the mirrored pass, fails.
"""

import functools
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from acnn_jax import checkpoints
from acnn_jax import errors
from acnn_jax import export
from acnn_jax import geometry
from acnn_jax import mpii
from acnn_jax import predict
from acnn_jax import saved_config
from conftest import PROCESS_TIMEOUT
from conftest import random_heads
from conftest import tiny_config
from conftest import tiny_model

REPO = pathlib.Path(__file__).resolve().parents[1]
INPUT_SIZE = 64  # configs/tiny.py's network.
NUM_STACKS = 2
STEPS = dict(b=3, c=5)  # The phases of the workdir and their last steps.
SEEDS = dict(b=1, c=2)  # Each phase's network (`conftest.random_heads`).
BOX = (5.0, 8.0, 60.0, 84.0)
# Modules the jax.export artifact must run without.
HEAVY = ("flax", "orbax", "ml_collections", "optax", "tensorflow", "clu")


@functools.lru_cache(maxsize=None)
def _tiny(phase="c"):
  """The tiny network and the variables of `phase` in the workdir."""
  model, variables = tiny_model(num_stacks=NUM_STACKS)
  return model, random_heads(variables, SEEDS[phase])


def _env():
  return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")


def _run(*args, **kwargs):
  return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(),
                        capture_output=True, text=True,
                        timeout=PROCESS_TIMEOUT, check=False, **kwargs)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A workdir with phases B and C, saved as training saves them (config.json
  and checkpoints/<step>), holding the tiny network with two sets of
  variables (`_tiny(phase)`)."""
  path = str(tmp_path_factory.mktemp("export") / "workdir")
  for phase, step in STEPS.items():
    _, variables = _tiny(phase)
    directory = checkpoints.phase_dir(path, phase)
    saved_config.save_config(tiny_config(phase), directory)
    last, _ = checkpoints.make_managers(directory, keep=1)
    checkpoints.save_state(last, step, dict(step=step, **variables))
    last.wait_until_finished()
  return path


@pytest.fixture(scope="module")
def exported_dir(workdir, tmp_path_factory):
  """The workdir exported by the command line (phase C, flip test on)."""
  output = tmp_path_factory.mktemp("exports") / "acnn"
  run = _run("-m", "acnn_jax.export", f"--workdir={workdir}",
             f"--output={output}")
  assert run.returncode == 0, run.stderr
  assert "phase c, step 5, flip test on" in run.stdout, run.stdout
  return str(output)


@functools.lru_cache(maxsize=None)
def _crops():
  rng = np.random.default_rng(0)
  return {b: rng.random((b, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
          for b in (1, 3)}


@functools.lru_cache(maxsize=None)
def _applied():
  """Phase C's `model.apply` on every crop of `_crops()` and on their
  mirrors: one eager call (eager calls of the tiny network cost seconds
  each)."""
  model, variables = _tiny()
  crops = np.concatenate(list(_crops().values()))
  output = model.apply(variables, np.concatenate([crops, crops[:, :, ::-1]]),
                       train=False)
  return np.asarray(output.predictions[-1]), np.asarray(output.masks)


def _decode(heatmaps):
  """(B, h, w, K) heatmaps -> joints in crop pixels and peaks, written out
  joint by joint: the argmax, a quarter pixel towards the higher neighbour
  off the border (pose-hg-train), heatmap pixel j at crop pixel 4j + 1.5."""
  batch, height, width, joints = heatmaps.shape
  coords = np.zeros((batch, joints, 2), np.float32)
  peaks = np.zeros((batch, joints), np.float32)
  for b in range(batch):
    for k in range(joints):
      heatmap = heatmaps[b, :, :, k]
      y, x = np.unravel_index(np.argmax(heatmap), heatmap.shape)
      px, py = float(x), float(y)
      if 0 < x < width - 1:
        px += 0.25 * np.sign(heatmap[y, x + 1] - heatmap[y, x - 1])
      if 0 < y < height - 1:
        py += 0.25 * np.sign(heatmap[y + 1, x] - heatmap[y - 1, x])
      coords[b, k] = 4.0 * px + 1.5, 4.0 * py + 1.5
      peaks[b, k] = heatmap[y, x]
  return coords, peaks


def _reference(batch, flip_test=True):
  """The outputs for `_crops()[batch]` from `model.apply` itself, with the
  flip test and the decoding written out here rather than taken from
  `inference`, `codec` or `export`."""
  final, masks = _applied()
  start = list(_crops()).index(batch)  # Batch 1 is crop 0, batch 3 crops 1-3.
  mine = slice(start, start + batch)
  heatmaps = final[mine]
  if flip_test:
    mirrors = final[len(final) // 2:][mine][:, :, ::-1]
    heatmaps = 0.5 * (heatmaps + mirrors[..., mpii.FLIP_PERMUTATION])
  keypoints, confidences = _decode(heatmaps)
  # The masks of the un-mirrored crops, (B, S, h, w).
  return dict(keypoints=keypoints, confidences=confidences,
              heatmaps=heatmaps,
              masks=np.moveaxis(masks[:, mine, ..., 0], 0, 1))


def _assert_matches(outputs, expected):
  assert set(outputs) == set(predict.OUTPUT_NAMES)
  for name in predict.OUTPUT_NAMES:
    assert outputs[name].shape == expected[name].shape, name
    assert outputs[name].dtype == np.float32, name
    np.testing.assert_allclose(outputs[name], expected[name], rtol=0,
                               atol=1e-4, err_msg=name)


def _image(tmp_path):
  path = tmp_path / "person.png"
  pixels = (np.random.default_rng(1).random((96, 72, 3)) * 255)
  Image.fromarray(pixels.astype(np.uint8)).save(path)
  return str(path)


# Runs in a fresh process with the heavy modules unimportable: the artifact
# as it is (jax.export.deserialize) and through `predict.ExportedPredictor`.
JAX_RELOAD = f"""
import json, sys
for name in {HEAVY!r}:
  sys.modules[name] = None  # Importing it now fails.
import numpy as np
from jax import export as jax_export
from acnn_jax import predict
directory, inputs, image, box, out = sys.argv[1:]
with open(directory + "/" + predict.ARTIFACT_FILE, "rb") as f:
  program = jax_export.deserialize(bytearray(f.read()))
crops = np.load(inputs)
results = {{f"{{batch}}/{{key}}": np.asarray(value) for batch in crops.files
           for key, value in program.call(crops[batch]).items()}}
predictor = predict.ExportedPredictor.from_export(directory)
found = predictor(image, box=json.loads(box))
for key in ("keypoints", "confidences", "crop", "masks", "crop_keypoints"):
  results["predictor/" + key] = getattr(found, key)
np.savez(out, **results)
print(json.dumps(sorted(m for m, v in sys.modules.items()
                        if v is not None and m.split(".")[0] in {HEAVY!r})))
"""

# Runs in a fresh process: the SavedModel as TF Serving would, by signature.
TF_RELOAD = """
import sys
import numpy as np
import tensorflow as tf
directory, inputs, out = sys.argv[1:]
serve = tf.saved_model.load(directory + "/saved_model").signatures[
    "serving_default"]
crops = np.load(inputs)
np.savez(out, **{f"{batch}/{key}": value.numpy() for batch in crops.files
                 for key, value in serve(images=tf.constant(crops[batch])
                                         ).items()})
"""


class Reloads:
  """The reloading processes, started at once; `result` waits for one.

  Tests compute their in-process expectations before they wait, so that the
  processes and the tests run side by side.
  """

  def __init__(self, folder, commands):
    self.folder = folder
    self._processes = {}
    for name, args in commands.items():
      # Into files, not pipes: a full pipe would stop a process that is not
      # waited for yet.
      with open(folder / f"{name}.out", "w") as out, open(
          folder / f"{name}.err", "w") as err:
        self._processes[name] = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=_env(), stdout=out,
            stderr=err)

  def result(self, name):
    """({key: array} that process `name` saved, its last stdout line)."""
    process = self._processes[name]
    process.wait(timeout=PROCESS_TIMEOUT)
    assert process.returncode == 0, (self.folder / f"{name}.err").read_text()
    lines = (self.folder / f"{name}.out").read_text().strip().splitlines()
    return dict(np.load(self.folder / f"{name}.npz")), (lines or [""])[-1]

  def close(self):
    for process in self._processes.values():
      if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def reloads(exported_dir, tmp_path_factory):
  """The export reloaded in two fresh processes: 'jax' (the artifact and
  `ExportedPredictor` on `reloads.image`, without the HEAVY modules) and
  'saved_model' (TensorFlow); each runs on `_crops()`."""
  folder = tmp_path_factory.mktemp("reloaded")
  inputs = str(folder / "crops.npz")
  np.savez(inputs, **{f"batch{b}": crops for b, crops in _crops().items()})
  image = _image(folder)
  reloading = Reloads(folder, {
      "jax": ["-c", JAX_RELOAD, exported_dir, inputs, image, json.dumps(BOX),
              str(folder / "jax.npz")],
      "saved_model": ["-c", TF_RELOAD, exported_dir, inputs,
                      str(folder / "saved_model.npz")],
  })
  reloading.image = image
  yield reloading
  reloading.close()


def _part(arrays, prefix):
  return {key.split("/")[1]: value for key, value in arrays.items()
          if key.startswith(prefix + "/")}


@pytest.mark.slow
def test_exported_predictor_matches_the_checkpoint_predictor(workdir,
                                                             reloads):
  expected = predict.Predictor.from_checkpoint(workdir)(reloads.image,
                                                        box=BOX)
  found = _part(reloads.result("jax")[0], "predictor")
  # The numpy warp is TensorFlow's, so the network saw the same crop.
  np.testing.assert_array_equal(found["crop"], expected.crop)
  for key in ("keypoints", "crop_keypoints", "confidences", "masks"):
    np.testing.assert_allclose(found[key], getattr(expected, key), rtol=0,
                               atol=1e-4, err_msg=key)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["jax", "saved_model"])
@pytest.mark.parametrize("batch", [1, 3])
def test_reloaded_export_matches_model_apply(reloads, form, batch):
  expected = _reference(batch)
  _assert_matches(_part(reloads.result(form)[0], f"batch{batch}"), expected)


@pytest.mark.slow
def test_jax_export_runs_without_flax_orbax_or_tensorflow(reloads):
  assert json.loads(reloads.result("jax")[1]) == []


@pytest.mark.slow
def test_export_json_describes_the_export(exported_dir, workdir):
  with open(os.path.join(exported_dir, predict.METADATA_FILE)) as f:
    metadata = json.load(f)
  assert metadata["phase"] == "c" and metadata["step"] == STEPS["c"]
  assert metadata["checkpoint"] == os.path.join(
      checkpoints.phase_dir(workdir, "c"), "checkpoints", str(STEPS["c"]))
  assert metadata["flip_test"] is True and metadata["masks_to_one"] is False
  assert (metadata["input_size"], metadata["heatmap_size"]) == (64, 16)
  assert metadata["joint_names"] == list(mpii.JOINT_NAMES)
  assert metadata["num_stacks"] == NUM_STACKS
  assert metadata["outputs"]["masks"]["shape"] == ["batch", 2, 16, 16]
  assert metadata["versions"]["jax"] == jax.__version__
  assert sorted(os.listdir(exported_dir)) == [
      "acnn.jax_export", "export.json", "saved_model"]
  # Nothing is left beside it.
  assert os.listdir(os.path.dirname(exported_dir)) == ["acnn"]


def test_export_refuses_a_non_empty_output_and_leaves_it_alone(tmp_path):
  output = tmp_path / "mine"
  output.mkdir()
  (output / "notes.txt").write_text("keep me")
  with pytest.raises(errors.UserError, match=f"{output} exists and is not "
                     "empty"):
    export.export_model(str(tmp_path / "no_workdir"), str(output))
  assert os.listdir(output) == ["notes.txt"]
  assert (output / "notes.txt").read_text() == "keep me"
  assert sorted(os.listdir(tmp_path)) == ["mine"]


def test_missing_workdir_and_phase_are_clear_errors(workdir, tmp_path):
  with pytest.raises(errors.MissingError,
                     match="workdir or checkpoint not found"):
    export.export_model(str(tmp_path / "nowhere"), str(tmp_path / "out"))
  with pytest.raises(errors.MissingError, match="no phase A"):
    export.load_checkpoint(workdir, "a")
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(errors.MissingError, match="No checkpoint found"):
    export.load_checkpoint(str(empty))
  assert sorted(os.listdir(tmp_path)) == ["empty"]


def _logits(variables):
  return np.asarray(variables["params"]["attention_0"]["logits"]["kernel"])


def test_the_test_networks_tell_phases_and_mask_layouts_apart():
  """What the export tests compare can differ: B and C are two networks, and
  phase C's masks change when transposed, swapped or taken from the mirror."""
  assert np.abs(_logits(_tiny("b")[1]) - _logits(_tiny("c")[1])).max() > 0.1
  _, masks = _applied()
  masks = masks[..., 0]  # (S, 2N, h, w): the crops, then their mirrors.
  half = masks.shape[1] // 2
  own, mirrors = masks[:, :half], masks[:, half:]
  for wrong in (own.swapaxes(2, 3), own[::-1], mirrors):
    assert np.abs(wrong - own).max() > 0.05


def test_phase_picks_the_checkpoint(workdir):
  newest_loaded, newest = export.load_checkpoint(workdir)
  assert (newest["phase"], newest["step"]) == ("c", STEPS["c"])
  np.testing.assert_array_equal(_logits(newest_loaded.variables),
                                _logits(_tiny("c")[1]))
  loaded, chosen = export.load_checkpoint(
      checkpoints.phase_dir(workdir, "c"), "b")
  assert (chosen["phase"], chosen["step"]) == ("b", STEPS["b"])
  np.testing.assert_array_equal(_logits(loaded.variables),
                                _logits(_tiny("b")[1]))
  assert not loaded.masks_to_one
  one = os.path.join(checkpoints.phase_dir(workdir, "b"), "checkpoints",
                     str(STEPS["b"]))
  with pytest.raises(errors.InputError, match="phase B checkpoint, not "
                     "phase C"):
    export.load_checkpoint(one, "c")


def test_a_failed_export_leaves_nothing(workdir, tmp_path, monkeypatch):
  def fail(*args, **kwargs):
    raise RuntimeError("disk full")
  monkeypatch.setattr(export, "export_saved_model", fail)
  with pytest.raises(RuntimeError, match="disk full"):
    export.export_model(workdir, str(tmp_path / "out"),
                        formats=("saved_model",))
  assert os.listdir(tmp_path) == []


def test_jax_export_without_flip_test_matches_model_apply(tmp_path):
  model, variables = _tiny()
  result = export.export_variables(model, variables, str(tmp_path / "out"),
                                   INPUT_SIZE, flip_test=False,
                                   formats=("jax",), platforms=("cpu",))
  assert result.metadata["flip_test"] is False
  assert result.metadata["phase"] is None
  assert sorted(result.files) == ["jax", "metadata"]
  _assert_matches(predict.ExportedModel(result.directory)(_crops()[3]),
                  _reference(3, flip_test=False))


def test_exported_model_errors(tmp_path):
  with pytest.raises(errors.MissingError, match="export folder not found"):
    predict.ExportedModel(tmp_path / "nowhere")
  with pytest.raises(errors.MissingError, match="holds no export.json"):
    predict.ExportedModel(tmp_path)
  (tmp_path / predict.METADATA_FILE).write_text(
      json.dumps(dict(format_version=1, input_size=64)))
  with pytest.raises(errors.MissingError, match="holds no acnn.jax_export"):
    predict.ExportedModel(tmp_path)
  (tmp_path / predict.ARTIFACT_FILE).write_bytes(b"not an artifact")
  with pytest.raises(errors.InputError, match="cannot be read"):
    predict.ExportedModel(tmp_path)


@pytest.mark.parametrize("size", [64, 256])
def test_predictions_warp_equals_trainings(size):
  """The predictors' numpy crop is bit for bit the TensorFlow warp that
  training uses."""
  rng = np.random.default_rng(size)
  for height, width in [(96, 72), (40, 130), (7, 5)]:
    image = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    x1, y1 = rng.uniform(-20, 20, 2)
    for box in [(x1, y1, x1 + width / 2, y1 + height * 1.3),
                predict.whole_image_box(height, width)]:
      center, scale = predict.box_to_crop(box)
      np.testing.assert_array_equal(
          predict.warp_crop(image, center, scale, size),
          geometry.warp_image(np.asarray(image, np.float32) / 255.0,
                              geometry.affine_matrix(center, scale, size),
                              size).numpy())

