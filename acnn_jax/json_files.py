"""Reading the JSON files a user has (configs, histories, annotations)
with one clear error for a damaged one."""

import json
from typing import Any

from acnn_jax import errors


def read(path: str, expected: type, holds: str, fix: str) -> Any:
  """The value of the JSON file `path`, which must be of type `expected`.

  Args:
    path: the file (it must exist: say how to get it before calling).
    expected: `list` or `dict`.
    holds: what the file holds, for the message ("a list of people").
    fix: the sentence that says how to get a good file.

  Raises:
    errors.InputError: the file cannot be read, is not whole JSON, or holds
      another type; the message names it and ends with `fix`.
  """
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as error:
    raise errors.InputError(
        f"{path} is not a whole JSON file (truncated, or another kind of "
        f"file): {error}. {fix}") from error
  if not isinstance(value, expected):
    raise errors.InputError(
        f"{path} holds a JSON {type(value).__name__} where {holds} is "
        f"expected. {fix}")
  return value
