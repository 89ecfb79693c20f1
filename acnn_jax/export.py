"""Exports a trained network for serving: jax.export (StableHLO) and SavedModel.

  python -m acnn_jax.export --workdir=runs/acnn [--phase=c] \
      --output=exports/acnn [--no_flip] [--formats=jax,saved_model] \
      [--platforms=cpu,cuda]

takes the checkpoint `predict.Predictor.from_checkpoint` would (the best one
of the newest phase, or of --phase) and writes into --output, a new or empty
folder:

  acnn.jax_export  the network with its weights, the flip test (the config's
                   flip_test unless --no_flip) and the decoding, serialized
                   by `jax.export` with a symbolic batch size: load it with
                   `predict.ExportedModel` or `predict.ExportedPredictor`
                   (jax and numpy only) or
                   `jax.export.deserialize(blob).call(crops)`;
  saved_model/     the same function through jax2tf, weights as variables,
                   signature `serving_default` (`images` float32
                   [None, R, R, 3]), for TF Serving or `tf.saved_model.load`;
  export.json      sizes, joint names, flip test, phase, step, checkpoint,
                   output names and shapes, versions.

Both take (B, R, R, 3) float32 RGB crops in [0, 1] (R = the config's
input_size) and return `keypoints` (B, K, 2) x, y in crop pixels (0-based pixel
centres, `codec.HeatmapCodec.decode_to_crop`), `confidences` (B, K),
`heatmaps` (B, h, w, K) and every stage's attention mask `masks` (B, S, h, w).
The function is `inference.make_predict_fn` and the codec's decoding, what
evaluation and `predict.Predictor` run, so an export cannot disagree with
them.

The folder is written under a temporary name beside --output and renamed at
the end, so a failed export leaves nothing half-written; nothing that exists
is overwritten.
"""

import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, NamedTuple, Optional, Sequence

from absl import flags
from absl import logging
import jax
from jax import export as jax_export
from jax.experimental import jax2tf
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

import acnn_jax
from acnn_jax import checkpoints
from acnn_jax import cli
from acnn_jax import errors
from acnn_jax import inference
from acnn_jax import mpii
from acnn_jax import output_paths
from acnn_jax import phases
from acnn_jax import predict
from acnn_jax.codec import HeatmapCodec

FORMATS = ("jax", "saved_model")
# Where the artifacts can run: jax.export's platform names. One artifact
# holds a program per platform; they share the weights, so a second platform
# adds a few percent (3% for the tiny network, less for larger ones).
DEFAULT_PLATFORMS = ("cpu", "cuda")
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
SIGNATURE = "serving_default"
# Where the SavedModel goes in an export folder (beside
# `predict.ARTIFACT_FILE` and `predict.METADATA_FILE`).
SAVED_MODEL_DIR = "saved_model"


def output_shapes(input_size: int, num_joints: int, num_stacks: int,
                  stride: int = 4) -> Dict[str, list]:
  """The outputs' shapes, "batch" standing for the symbolic batch size."""
  size = input_size // stride
  return dict(keypoints=["batch", num_joints, 2],
              confidences=["batch", num_joints],
              heatmaps=["batch", size, size, num_joints],
              masks=["batch", num_stacks, size, size])


class ExportResult(NamedTuple):
  """What `export_model` wrote.

  Attributes:
    directory: the export folder.
    files: {format: path} of the artifacts written ('jax', 'saved_model'),
      and 'metadata': the export.json.
    metadata: the content of export.json.
    seconds: how long exporting took (without loading the checkpoint).
  """
  directory: str
  files: Dict[str, str]
  metadata: Dict[str, Any]
  seconds: float


def make_serving_fn(model, input_size: int, flip_test: bool = True,
                    flip_shift: bool = False, masks_to_one: bool = False):
  """The function both formats hold: (variables, crops) -> named outputs.

  Args:
    model: an `models.ACNN`.
    input_size: side R of the crops.
    flip_test, flip_shift, masks_to_one: see `inference.make_predict_fn`.

  Returns:
    `fn(variables, images)` for (B, R, R, 3) float32 crops in [0, 1],
    returning {keypoints (B, K, 2) in crop pixels, confidences (B, K),
    heatmaps (B, h, w, K), masks (B, S, h, w)}.
  """
  predict = inference.make_predict_fn(model, flip_test=flip_test,
                                      flip_shift=flip_shift,
                                      masks_to_one=masks_to_one)
  codec = HeatmapCodec(input_size=input_size)

  def serve(variables, images):
    outputs = predict(variables, images)
    heatmaps = outputs["heatmaps"]
    keypoints, confidences = codec.decode_to_crop(heatmaps)
    return dict(keypoints=keypoints, confidences=confidences,
                heatmaps=heatmaps,
                masks=jnp.moveaxis(outputs["masks"][..., 0], 0, 1))

  return serve


def _crops_shape(input_size: int) -> str:
  return f"batch, {input_size}, {input_size}, 3"


def export_jax(serve, variables, input_size: int,
               platforms: Sequence[str] = DEFAULT_PLATFORMS) -> bytes:
  """`serve` with `variables` as a serialized `jax.export` artifact.

  The weights become constants of the program, so the artifact is one file
  called with the crops alone; the batch size is symbolic.
  """
  spec = jax.ShapeDtypeStruct(
      jax_export.symbolic_shape(_crops_shape(input_size)), jnp.float32)
  program = jax_export.export(
      jax.jit(lambda images: serve(variables, images)),
      platforms=tuple(platforms))(spec)
  return bytes(program.serialize())


def export_saved_model(serve, variables, input_size: int, directory: str,
                       platforms: Sequence[str] = DEFAULT_PLATFORMS) -> None:
  """Writes `serve` with `variables` as a TensorFlow SavedModel (jax2tf).

  The weights are TensorFlow variables (saved in variables/, as TF Serving
  expects, and clear of the graph's 2 GB protobuf limit); the batch size is
  polymorphic, and the signature `serving_default` takes `images`.
  """
  tf_serve = jax2tf.convert(
      serve, polymorphic_shapes=[None, f"({_crops_shape(input_size)})"],
      with_gradient=False, native_serialization_platforms=tuple(platforms))
  module = tf.Module()
  module.weights = tf.nest.map_structure(
      lambda x: tf.Variable(np.asarray(x), trainable=False),
      jax.device_get(variables))

  @tf.function(autograph=False, input_signature=[tf.TensorSpec(
      [None, input_size, input_size, 3], tf.float32, name="images")])
  def serving_default(images):
    return tf_serve(module.weights, images)

  module.serving_default = serving_default
  tf.saved_model.save(module, directory,
                      signatures={SIGNATURE: serving_default})


def _check_output(output_dir: str) -> str:
  """The absolute --output; refuses one that exists and is not empty, or
  whose folder cannot be created or written in (`output_paths`)."""
  given, output_dir = output_dir, os.path.abspath(
      os.path.expanduser(output_dir))
  if os.path.lexists(output_dir):
    if not os.path.isdir(output_dir):
      raise errors.InputError(
          f"{output_dir} exists and is not a folder; name a new or empty "
          "folder as --output.")
    if os.listdir(output_dir):
      raise errors.InputError(
          f"{output_dir} exists and is not empty; name a new or empty folder "
          "as --output (an export never overwrites anything).")
  # The export is written beside it, then renamed: its folder must take it.
  output_paths.parent(given, "--output")
  return output_dir


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def export_variables(model, variables, output_dir: str, input_size: int,
                     flip_test: bool = True, flip_shift: bool = False,
                     masks_to_one: bool = False,
                     formats: Sequence[str] = FORMATS,
                     platforms: Sequence[str] = DEFAULT_PLATFORMS,
                     source: Optional[Dict[str, Any]] = None) -> ExportResult:
  """Exports a model and its variables (no checkpoint needed) to a folder.

  Args:
    model: an `models.ACNN`.
    variables: its {'params', 'batch_stats'}.
    output_dir: a new or empty folder.
    input_size, flip_test, flip_shift, masks_to_one: see `make_serving_fn`.
    formats: some of `FORMATS`.
    platforms: some of `PLATFORMS`: where the artifacts can run.
    source: what export.json says of the checkpoint (phase, step,
      checkpoint); None for variables of no checkpoint.

  Returns:
    An `ExportResult`.

  Raises:
    errors.InputError: `output_dir` exists and is not empty (or not a folder).
    ValueError: unknown formats or platforms.
  """
  unknown = (set(formats) - set(FORMATS)) | (set(platforms) - set(PLATFORMS))
  if unknown or not formats or not platforms:
    raise ValueError(f"formats must be some of {FORMATS} and platforms some "
                     f"of {PLATFORMS}; got {list(formats)}, {list(platforms)}.")
  output_dir = _check_output(output_dir)
  parent = os.path.dirname(output_dir)
  os.makedirs(parent, exist_ok=True)
  # Written beside the output, renamed at the end: a failure leaves no half
  # export, and the rename stays on one file system.
  partial = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.",
                             suffix=".partial", dir=parent)
  os.chmod(partial, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it.
  start = time.time()
  try:
    serve = make_serving_fn(model, input_size, flip_test, flip_shift,
                            masks_to_one)
    files = {}
    if "jax" in formats:
      blob = export_jax(serve, variables, input_size, platforms)
      with open(os.path.join(partial, predict.ARTIFACT_FILE), "wb") as f:
        f.write(blob)
      files["jax"] = predict.ARTIFACT_FILE
    if "saved_model" in formats:
      export_saved_model(serve, variables, input_size,
                         os.path.join(partial, SAVED_MODEL_DIR),
                         platforms)
      files["saved_model"] = SAVED_MODEL_DIR
    metadata = _metadata(model, input_size, flip_test, flip_shift,
                         masks_to_one, files, platforms, source or {})
    files["metadata"] = predict.METADATA_FILE
    with open(os.path.join(partial, predict.METADATA_FILE), "w") as f:
      f.write(_to_json(metadata))
    _check_output(output_dir)  # Still free after the minutes of export?
    os.replace(partial, output_dir)  # Takes the place of an empty folder.
  except BaseException:
    shutil.rmtree(partial, ignore_errors=True)
    raise
  seconds = time.time() - start
  return ExportResult(
      output_dir, {k: os.path.join(output_dir, v) for k, v in files.items()},
      metadata, seconds)


def _metadata(model, input_size, flip_test, flip_shift, masks_to_one, files,
              platforms, source) -> Dict[str, Any]:
  """export.json: what a caller needs to feed the export and read it."""
  num_joints, num_stacks = model.num_joints, model.num_stacks
  return dict(
      format_version=predict.FORMAT_VERSION,
      model="ACNN (stacked hourglass with attention masks), MPII joints",
      files=files,
      inputs=dict(images=dict(
          shape=["batch", input_size, input_size, 3], dtype="float32",
          meaning="RGB person crops scaled to [0, 1]")),
      outputs={name: dict(shape=shape, dtype="float32") for name, shape in
               output_shapes(input_size, num_joints, num_stacks).items()},
      keypoints_frame=("x, y in crop pixels; pixel (i, j) has its centre at "
                       "x = j, y = i"),
      signature=SIGNATURE if "saved_model" in files else None,
      input_size=input_size,
      heatmap_size=HeatmapCodec(input_size=input_size).heatmap_size,
      num_joints=num_joints,
      joint_names=(list(mpii.JOINT_NAMES) if num_joints == mpii.NUM_JOINTS
                   else None),
      num_stacks=num_stacks,
      flip_test=bool(flip_test), flip_shift=bool(flip_shift),
      masks_to_one=bool(masks_to_one),
      phase=source.get("phase"), step=source.get("step"),
      checkpoint=source.get("checkpoint"),
      platforms=list(platforms),
      versions=dict(acnn_jax=acnn_jax.__version__, jax=jax.__version__,
                    tensorflow=tf.__version__),
  )


def _to_json(value) -> str:
  return json.dumps(value, indent=2) + "\n"


def load_checkpoint(path, phase: Optional[str] = None):
  """The checkpoint `predict.Predictor.from_checkpoint(path)` would load.

  Args:
    path: a workdir, a phase_<p> folder, a checkpoints/best folder or one
      checkpoint (see `checkpoints.resolve`).
    phase: 'a', 'b' or 'c': that phase of the workdir; None: the newest
      phase with checkpoints (or the one `path` names).

  Returns:
    (`checkpoints.LoadedModel`, {'phase', 'step', 'checkpoint'}).

  Raises:
    errors.MissingError: no such path, phase or checkpoint.
    errors.InputError: no usable checkpoint, or one of another phase.
  """
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if not os.path.exists(path):
    raise errors.MissingError(
        f"workdir or checkpoint not found: {path} (pass the --workdir of a "
        "training run, one of its phase_<p> folders, or one checkpoint).")
  if phase is not None:
    if phase not in phases.NAMES:
      raise errors.InputError(f"unknown phase {phase!r}; expected one of "
                              f"{', '.join(phases.NAMES)}.")
    base = os.path.basename(path)
    if not (base.isdigit() or base in ("checkpoints", "best")):
      path = checkpoints.phase_dir(checkpoints.root_workdir(path), phase)
      if not os.path.isdir(path):
        raise errors.MissingError(
            f"{path} not found: this workdir has no phase {phase.upper()}. "
            "Train it first, or leave --phase out for the newest phase.")
  # The best checkpoint when there is one, as `Predictor` takes.
  loaded = checkpoints.load_for_inference(path, prefer_best=True)
  if phase is not None and loaded.config.phase != phase:
    raise errors.InputError(
        f"{path} holds a phase {loaded.config.phase.upper()} checkpoint, not "
        f"phase {phase.upper()}; name a checkpoint of phase {phase.upper()}, "
        "or leave --phase out.")
  return loaded, dict(phase=loaded.config.phase, step=loaded.step,
                      checkpoint=loaded.checkpoint)


def export_model(path, output_dir: str, phase: Optional[str] = None,
                 flip_test: Optional[bool] = None,
                 formats: Sequence[str] = FORMATS,
                 platforms: Sequence[str] = DEFAULT_PLATFORMS
                 ) -> ExportResult:
  """Exports a trained checkpoint (what the command line does).

  Args:
    path: a workdir, phase folder or checkpoint (see `load_checkpoint`).
    output_dir: a new or empty folder.
    phase: the workdir's phase to export; None: the newest.
    flip_test: None: the checkpoint config's flip_test.
    formats: some of `FORMATS`.
    platforms: some of `PLATFORMS`.

  Returns:
    An `ExportResult`.

  Raises:
    errors.InputError: `output_dir` exists and is not empty; no usable
      checkpoint.
    errors.MissingError: no such workdir, phase or checkpoint.
  """
  _check_output(output_dir)  # Before the slow part.
  loaded, source = load_checkpoint(path, phase)
  config = loaded.config
  return export_variables(
      loaded.model, loaded.variables, output_dir,
      input_size=config.input_size,
      flip_test=config.flip_test if flip_test is None else flip_test,
      flip_shift=config.flip_shift, masks_to_one=loaded.masks_to_one,
      formats=formats, platforms=platforms, source=source)


def disk_size(path: str) -> int:
  """Bytes of a file, or of every file under a folder."""
  if not os.path.isdir(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)


def _megabytes(size: int) -> str:
  return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("workdir", None, "Training workdir, phase_<p> folder or "
                      "checkpoint to export.")
  flags.DEFINE_enum("phase", None, list(phases.NAMES), "Phase of the workdir "
                    "to export (default: the newest one with checkpoints).")
  flags.DEFINE_string("output", None, "Folder to write, new or empty.")
  flags.DEFINE_bool("no_flip", False, "Export without the flip test "
                    "(default: the checkpoint config's flip_test).")
  flags.DEFINE_list("formats", list(FORMATS), "What to write: jax "
                    "(acnn.jax_export), saved_model (TensorFlow), or both.")
  flags.DEFINE_list("platforms", list(DEFAULT_PLATFORMS), "Where the export "
                    f"can run: some of {','.join(PLATFORMS)}.")
  flags.register_validator(
      "formats", lambda v: bool(v) and set(v) <= set(FORMATS),
      f"--formats takes some of {','.join(FORMATS)}.")
  flags.register_validator(
      "platforms", lambda v: bool(v) and set(v) <= set(PLATFORMS),
      f"--platforms takes some of {','.join(PLATFORMS)}.")
  flags.mark_flags_as_required(["workdir", "output"])


def main(argv):
  del argv  # cli.run allows none.
  cli.hide_gpus_from_tensorflow()
  # Saving a SavedModel logs a dozen INFO lines (assets, sharding, renamed
  # inputs) that say nothing to the user, who gets the result printed below;
  # warnings still show.
  logging.set_verbosity(logging.WARNING)
  result = export_model(FLAGS.workdir, FLAGS.output, FLAGS.phase,
                        flip_test=False if FLAGS.no_flip else None,
                        formats=FLAGS.formats, platforms=FLAGS.platforms)
  metadata = result.metadata
  print(f"Exported {metadata['checkpoint']} (phase {metadata['phase']}, step "
        f"{metadata['step']}, flip test "
        f"{'on' if metadata['flip_test'] else 'off'}) in "
        f"{result.seconds:.0f} s to {result.directory}:")
  for path in result.files.values():
    print(f"  {os.path.relpath(path, result.directory)}"
          f"{'/' if os.path.isdir(path) else ''}  "
          f"{_megabytes(disk_size(path))}")


if __name__ == "__main__":
  cli.run(main, define_flags)
