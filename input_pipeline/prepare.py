"""Where a run's MPII data comes from: the user's files or the synthetic set.

`prepare_builder` returns the prepared `mpii` TFDS builder for a config:
  * `config.manual_dir` names the raw MPII files (see
    `mpii_builder.MANUAL_DOWNLOAD_INSTRUCTIONS`); TFDS prepares them once into
    `config.data_dir` (default ~/tensorflow_datasets).
  * With `config.synthetic_images > 0` and no manual_dir, the synthetic
    MPII-format set is written to WORKDIR/synthetic_mpii (once) and prepared
    into WORKDIR/tfds, so the same builder runs with no download at all.
"""

import os

import ml_collections
import tensorflow_datasets as tfds

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


def prepare_builder(config: ml_collections.ConfigDict,
                    workdir: str) -> tfds.core.DatasetBuilder:
  """The prepared `mpii` builder for `config` (writes synthetic data if asked).

  Raises:
    mpii_layouts.MissingFilesError: the data set is not prepared yet and
      `manual_dir` lacks a file; the message names it and says where to get it.
  """
  manual_dir, data_dir = data_dirs(config, workdir)
  if config.synthetic_images > 0 and not os.path.exists(
      os.path.join(manual_dir, mpii_official.RELEASE_FILE)):
    synthetic.generate(manual_dir, config.synthetic_images,
                       seed=config.synthetic_seed)
  return mpii_builder.build(manual_dir, data_dir)
