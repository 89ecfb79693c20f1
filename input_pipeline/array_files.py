"""Reading the arrays of MATLAB .mat and HDF5 files (MPII's annotation files).

MPII's ground truth and predictions come as MATLAB files (`gt_valid.mat`,
`pred.mat`, v5 or the HDF5-based v7.3) or as HDF5 (`valid.h5`,
`newell.h5`). `read_arrays` reads either kind, told apart by content, not by
extension; `load_mat` reads MATLAB v5 structs (the release). Both name the
file in every error and end it with the caller's advice on how to fix it:
a damaged file otherwise surfaces as one of a dozen scipy or h5py errors that
name neither the file nor the cure.
"""

import os
from typing import Any, Dict

import h5py
import numpy as np
import scipy.io

from acnn_jax import errors


_COPY_AGAIN = "Copy or download it again."


def _with_fix(message: str, fix: str) -> str:
  return f"{message} {fix}" if fix else message


def _check_exists(path: str, what: str, fix: str) -> None:
  if not os.path.isfile(path):
    raise errors.MissingError(
        _with_fix(f"{what} file {path!r} does not exist.", fix))


def load_mat(path: str, what: str, fix: str = _COPY_AGAIN,
             **kwargs) -> Dict[str, Any]:
  """`scipy.io.loadmat` of a MATLAB v5/v7 file, with errors a user can act on.

  MATLAB v7.3 files (HDF5) are refused by name rather than read: their structs
  are HDF5 groups of object references, a second parser for one struct that
  MPII ships as v5 anyway.

  Args:
    path: the file.
    what: what the file is meant to be, for error messages.
    fix: how to get a good file, appended to every error message.
    **kwargs: for `scipy.io.loadmat`.

  Returns:
    loadmat's {name: value}.

  Raises:
    errors.MissingError: the file does not exist.
    errors.InputError: it is v7.3, or not a readable .mat file (truncated,
      empty, another kind of file).
  """
  _check_exists(path, what, fix)
  if h5py.is_hdf5(path):
    raise errors.InputError(_with_fix(
        f"{what} file {path!r} is a MATLAB v7.3 (HDF5) file, which is not "
        "read here: load it in MATLAB and save it again with "
        "save(..., '-v7'), or use the original file.", fix))
  try:
    return scipy.io.loadmat(path, **kwargs)
  except Exception as e:  # pylint: disable=broad-except
    # scipy raises OSError, ValueError, MatReadError, zlib errors... for
    # truncated or foreign input; one message serves all.
    raise errors.InputError(_with_fix(
        f"{what} file {path!r} is not a readable MATLAB .mat file: it is "
        f"truncated, empty or another kind of file ({type(e).__name__}: "
        f"{e}).", fix)) from e


def read_arrays(path: str, what: str, fix: str = _COPY_AGAIN
                ) -> Dict[str, np.ndarray]:
  """All top-level arrays of an HDF5 file or a MATLAB .mat file.

  Args:
    path: the file.
    what: what the file is meant to be, for error messages ('ground-truth').
    fix: how to get a good file, appended to every error message.

  Returns:
    {name: array}; for a MATLAB v5 file also scipy's `__header__` entries.

  Raises:
    errors.MissingError: the file does not exist.
    errors.InputError: it is neither HDF5 nor a MATLAB file, or is damaged.
  """
  _check_exists(path, what, fix)
  # MATLAB v7.3 .mat files are HDF5.
  if h5py.is_hdf5(path):
    try:
      with h5py.File(path, "r") as f:
        return {key: np.asarray(f[key]) for key in f
                if isinstance(f[key], h5py.Dataset)}
    except (OSError, KeyError, ValueError, RuntimeError) as e:
      # A truncated HDF5 file keeps its signature and fails on opening or
      # on reading a dataset, with h5py's messages.
      raise errors.InputError(_with_fix(
          f"{what} file {path!r} cannot be read: it looks truncated or "
          f"damaged ({type(e).__name__}: {' '.join(str(e).split())}).",
          fix)) from e
  try:
    return scipy.io.loadmat(path)
  except Exception as e:  # pylint: disable=broad-except
    # scipy raises several types for non-MAT input; one message serves all.
    raise errors.InputError(_with_fix(
        f"{what} file {path!r} is neither HDF5 nor a MATLAB .mat file "
        f"({type(e).__name__}: {e}).", fix)) from e
