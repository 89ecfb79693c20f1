"""Where a run's MPII data comes from: the user's files or the synthetic set.

`prepare_builder` returns the prepared `mpii` TFDS builder for a config:
  * `config.manual_dir` names the raw MPII files (see
    `mpii_builder.MANUAL_DOWNLOAD_INSTRUCTIONS`); TFDS prepares them once into
    `config.data_dir` (default ~/tensorflow_datasets).
  * With `config.synthetic_images > 0`, the synthetic MPII-format set is
    written (once) to WORKDIR/synthetic_mpii, or to `config.manual_dir` if
    that is a new folder or a synthetic one, and prepared into WORKDIR/tfds,
    so the same builder runs with no download at all. A real data folder is
    never written into.
  * A folder missing part of its images stops the preparation unless
    `config.allow_missing_images` (see `mpii_builder.missing_images_error`).
"""

import os

from absl import logging
import ml_collections
import tensorflow_datasets as tfds

from acnn_jax import errors
from input_pipeline import mpii_builder
from input_pipeline import mpii_official
from input_pipeline import synthetic


def data_dirs(config: ml_collections.ConfigDict, workdir: str):
  """(manual_dir, data_dir) for a config and workdir."""
  use_synthetic = config.synthetic_images > 0
  manual_dir = config.manual_dir
  if not manual_dir and use_synthetic:
    manual_dir = os.path.join(workdir, "synthetic_mpii")
  data_dir = config.data_dir
  if not data_dir:
    data_dir = (os.path.join(workdir, "tfds") if use_synthetic else
                "~/tensorflow_datasets")
  return os.path.expanduser(manual_dir), os.path.expanduser(data_dir)


def _write_synthetic(config: ml_collections.ConfigDict, directory: str,
                     in_workdir: bool) -> None:
  """Writes the config's synthetic set into `directory` unless it is there.

  Raises:
    errors.ConfigError: `directory` (config.manual_dir) is not a synthetic
      folder, or holds a synthetic set made with other values.
  """
  wanted = synthetic.settings_of(config.synthetic_images,
                                 config.synthetic_seed)
  marker = synthetic.read_marker(directory)
  has_release = os.path.exists(
      os.path.join(directory, mpii_official.RELEASE_FILE))
  if marker is None and in_workdir and has_release:
    return  # Written by a version before the marker, in the run's own dir.
  if marker is None and not in_workdir and os.path.exists(directory):
    raise errors.ConfigError(
        f"config.synthetic_images={config.synthetic_images} asks for "
        f"synthetic data, but config.manual_dir={directory} is not a "
        f"synthetic folder (no {synthetic.MARKER}), and a data folder "
        "is never written into. To train on the files there, set "
        "--config.synthetic_images=0; for synthetic data, leave "
        "config.manual_dir empty (WORKDIR/synthetic_mpii) or name a new "
        "folder.")
  if marker and marker.get("complete"):
    if marker.get("settings") == wanted:
      return
    made = marker.get("settings") or {}
    raise errors.ConfigError(
        f"{directory} holds the synthetic set of synthetic_images="
        f"{made.get('num_images')}, synthetic_seed={made.get('seed')}, not "
        f"of config.synthetic_images={config.synthetic_images}, "
        f"config.synthetic_seed={config.synthetic_seed}. Use those values, "
        "or another --workdir (or config.manual_dir) for the new set.")
  logging.info("Writing %d synthetic MPII-format images to %s.",
               config.synthetic_images, directory)
  synthetic.generate(directory, config.synthetic_images,
                     seed=config.synthetic_seed)


def prepare_builder(config: ml_collections.ConfigDict,
                    workdir: str) -> tfds.core.DatasetBuilder:
  """The prepared `mpii` builder for `config` (writes synthetic data if asked).

  Synthetic data is only written into a folder this project owns:
  WORKDIR/synthetic_mpii, or a `config.manual_dir` that does not exist yet
  or that it wrote before (`synthetic.read_marker`); never into a user's
  data.

  Raises:
    mpii_layouts.MissingFilesError: the data set is not prepared yet and
      `manual_dir` lacks a file; the message names it and says where to get it.
    errors.ConfigError: synthetic data asked for in a folder not ours.
    errors.InputError: more than `mpii_builder.MAX_MISSING_IMAGE_SHARE` of
      the train or validation people lack their image, and
      `config.allow_missing_images` is False.
  """
  manual_dir, data_dir = data_dirs(config, workdir)
  if config.synthetic_images > 0:
    _write_synthetic(config, manual_dir, in_workdir=not config.manual_dir)
  return mpii_builder.build(
      manual_dir, data_dir,
      allow_missing_images=config.allow_missing_images)
