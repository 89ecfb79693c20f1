"""acnn-jax's data: MPII files -> TFDS `mpii` -> tf.data batches.

Importing the package registers the TFDS builder `mpii`
(`input_pipeline.mpii_builder`), so `tfds.builder("mpii")` finds it.
"""

from input_pipeline import mpii_builder  # registers 'mpii'
from input_pipeline.pipeline import create_dataset
from input_pipeline.pipeline import prefetch_to_device
from input_pipeline.pipeline import shard
from input_pipeline.pipeline import sharded_batches
from input_pipeline.prepare import prepare_builder
import tensorflow_datasets as _tfds

as_numpy = _tfds.as_numpy
