"""Flattening the MATLAB values that `scipy.io.loadmat` returns.

MATLAB's struct arrays come back in awkward shapes: a 1x1 struct array where
one would expect a list, a 0x0 double where a struct is missing, a number as
a 1x1 array, a char array or a 1x1 cell around it. These helpers flatten all
of that, for every way of loading (`squeeze_me`, `struct_as_record`), so the
parsers of `mpii_official` read like the MATLAB code they mirror.
"""

from typing import Any, Optional

import numpy as np
import scipy.io


def _is_struct(value: Any) -> bool:
  return ((isinstance(value, np.void) and value.dtype.names is not None) or
          isinstance(value, scipy.io.matlab.mat_struct))


def structs(value: Any) -> list[Any]:
  """Flattens a MATLAB struct array of any shape into a list of structs.

  Works for `loadmat`'s default output (structured ndarrays, possibly wrapped
  in 1x1 object arrays), for `squeeze_me=True` (a lone struct instead of an
  array) and for `struct_as_record=False` (`mat_struct` objects).

  Args:
    value: a field value: struct array, single struct, object array, empty
      array or None.

  Returns:
    The structs in MATLAB's column-major order; [] for empty or non-struct
    values (e.g. the 0x0 double MATLAB stores for a missing struct).
  """
  if value is None:
    return []
  if _is_struct(value):
    return [value]
  if isinstance(value, np.ndarray):
    if value.dtype.names is not None:
      return list(value.ravel(order="F"))
    if value.dtype == object:
      out = []
      for item in value.ravel(order="F"):
        out.extend(structs(item))
      return out
  return []


def cells(value: Any) -> Optional[list[Any]]:
  """The elements of a MATLAB cell array, in MATLAB's column-major order.

  Args:
    value: a field value (loadmat returns a cell array as an object array,
      of any shape).

  Returns:
    The elements as loadmat gives them (arrays, possibly empty, or scalars
    when loaded with `squeeze_me`); None when `value` is not a cell array.
  """
  if isinstance(value, np.ndarray) and value.dtype == object:
    return list(value.ravel(order="F"))
  return None


def field(struct: Any, name: str) -> Any:
  """A struct's field, or None when the field is absent or empty."""
  if isinstance(struct, np.void):
    value = struct[name] if name in struct.dtype.names else None
  else:
    value = getattr(struct, name, None)
  if isinstance(value, np.ndarray) and value.size == 0:
    return None
  return value


def number(value: Any) -> Optional[float]:
  """A MATLAB scalar (number, 1x1 array, numeric string) as a float.

  Args:
    value: the raw field value.

  Returns:
    The float, or None for empty values, non-numeric strings and arrays that
    hold more than one number.
  """
  if value is None:
    return None
  if isinstance(value, bytes):
    value = value.decode(errors="replace")
  if isinstance(value, str):
    try:
      return float(value.strip())
    except ValueError:
      return None
  array = np.asarray(value)
  if array.dtype.kind in "US":  # A char array such as array(['1']).
    return number("".join(
        c.decode(errors="replace") if isinstance(c, bytes) else str(c)
        for c in array.ravel()))
  if array.size != 1:
    return None
  if array.dtype == object:  # A 1x1 cell around the value.
    return number(array.ravel()[0])
  # float() first: MPII stores many coordinates as uint8/uint16, where x - 1
  # would wrap around.
  return float(array.ravel()[0])


def text(value: Any) -> str:
  """A MATLAB char array (or its numpy wrapping) as a str; '' when empty."""
  if value is None:
    return ""
  if isinstance(value, str):
    return value
  array = np.asarray(value)
  if array.dtype == object:
    return "".join(text(item) for item in array.ravel())
  return "".join(str(item) for item in array.ravel())


def describe(value: Any) -> str:
  """A MATLAB value's kind and shape, for error messages."""
  if value is None:
    return "nothing (absent or empty)"
  array = np.asarray(value)
  kind = ("struct" if array.dtype.names else "cell" if array.dtype == object
          else "char" if array.dtype.kind in "US" else str(array.dtype))
  return f"a {'x'.join(map(str, array.shape)) or 'scalar'} {kind} array"
