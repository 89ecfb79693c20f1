"""Installs acnn-jax: the `acnn_jax` model/training package and `input_pipeline`.

The version ranges are the ones that resolved together and were tested (see
README.md, "Tested versions"). `pip install -e .[test]` adds the test tools.
"""

import setuptools

INSTALL_REQUIRES = [
    "jax>=0.10.2,<0.11",
    "flax>=0.12.8,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12.8,<0.13",
    # TensorFlow only feeds data (tf.data, TFDS); JAX owns the accelerator.
    "tensorflow-cpu>=2.21,<2.22",
    "tensorflow-datasets>=4.9.10,<4.10",
    # clu.metric_writers needs it and TF 2.21 no longer pulls it in.
    "tensorboard>=2.20",
    "ml-collections>=1.1,<2",
    "clu>=0.0.12",
    "numpy>=2.0,<3",
    "scipy>=1.13",
    "h5py>=3.11",
    "pillow>=10",
    # The PCKh and mask-statistics plots (acnn_jax/plots.py), on Agg.
    "matplotlib>=3.8",
    # TFDS needs it to build data sets but only declares it for Python < 3.9.
    "importlib_resources>=6",
]

TEST_REQUIRES = [
    # pytest-xdist 3.8's `--dist loadgroup` (launch.sh) renames items through
    # `Item._nodeid`, which pytest 9.2 no longer reads: its groups then split.
    "pytest>=8,<9.2",
    "pytest-xdist>=3.5",
    # tests/test_notebook.py runs notebooks/acnn_jax_colab.ipynb in a kernel.
    "nbformat>=5.11",
    "nbclient>=0.11",
    "jupyter-client>=8.10",
    "ipykernel>=7.4",
]

setuptools.setup(
    name="acnn-jax",
    version="0.1.0",
    description=("ACNN (attention stacked hourglass) for single-person human "
                 "pose estimation on MPII, in JAX/Flax."),
    packages=setuptools.find_packages(include=["acnn_jax", "acnn_jax.*",
                                               "input_pipeline",
                                               "input_pipeline.*", "configs"]),
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": TEST_REQUIRES},
)
