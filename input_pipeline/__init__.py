"""acnn-jax's data: MPII files -> TFDS `mpii` -> tf.data batches.

Import the modules you need; importing the package itself loads nothing, so
light commands (`python -m input_pipeline.synthetic`) stay free of
TensorFlow:

  prepare.prepare_builder(config, workdir)   the prepared `mpii` TFDS builder
  pipeline.create_dataset(config, split, builder)   tf.data batches
  mpii_builder    the TFDS builder (importing it registers `mpii`)
  mpii_layouts, mpii_official, mpii_json, array_files   the file readers
  synthetic       the synthetic MPII-format data set
"""
