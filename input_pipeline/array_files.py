"""Reading the arrays of MATLAB .mat and HDF5 files (MPII's annotation files).

MPII's ground truth and predictions come as MATLAB files (`gt_valid.mat`,
`pred.mat`, v5 or the HDF5-based v7.3) or as HDF5 (`valid.h5`,
`newell.h5`). `read_arrays` reads either kind, told apart by content, not by
extension, and names the file in every error.
"""

import os
from typing import Dict

import h5py
import numpy as np
import scipy.io

from acnn_jax import errors


def read_arrays(path: str, what: str) -> Dict[str, np.ndarray]:
  """All top-level arrays of an HDF5 file or a MATLAB .mat file.

  Args:
    path: the file.
    what: what the file is meant to be, for error messages ('ground-truth').

  Returns:
    {name: array}; for a MATLAB v5 file also scipy's `__header__` entries.

  Raises:
    errors.MissingError: the file does not exist.
    errors.InputError: it is neither HDF5 nor a MATLAB file.
  """
  if not os.path.isfile(path):
    raise errors.MissingError(f"{what} file {path!r} does not exist.")
  # MATLAB v7.3 .mat files are HDF5.
  if h5py.is_hdf5(path):
    with h5py.File(path, "r") as f:
      return {key: np.asarray(f[key]) for key in f
              if isinstance(f[key], h5py.Dataset)}
  try:
    return scipy.io.loadmat(path)
  except Exception as e:  # pylint: disable=broad-except
    # scipy raises several types for non-MAT input; one message serves all.
    raise errors.InputError(
        f"{what} file {path!r} is neither HDF5 nor a MATLAB .mat file "
        f"({type(e).__name__}: {e}).") from e
