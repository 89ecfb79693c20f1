"""Errors a user can fix: a bad config value, a missing or malformed input.

Library code raises these for what the user gave it (they subclass the
built-in types callers already expect, ValueError and FileNotFoundError), and
every message says what to change. The command lines (`cli.run`) print them as
one `error:` line without a traceback, because they are the user's to fix,
not bugs; anything else keeps its traceback. `read_json` reads the JSON files
a user has (configs, histories, annotations, export descriptions) with one
such error for a damaged one.
"""

import json
from typing import Any


class UserError(Exception):
  """Base of the errors caused by what the user gave.

  Attributes:
    exit_code: the command line's exit status for this error (1: the command
      failed; 2: it was called wrongly).
  """
  exit_code = 1


class ConfigError(UserError, ValueError):
  """A config field has a bad value; the message names `config.<field>`.

  Config fields are command-line arguments (`--config.field=value`), so a bad
  one is a usage error.
  """
  exit_code = 2


class InputError(UserError, ValueError):
  """A malformed input: a file, an annotation, an image, a box or an array."""


class MissingError(UserError, FileNotFoundError):
  """A file or folder that must exist does not (a data set, a checkpoint)."""


def read_json(path: str, expected: type, holds: str, fix: str) -> Any:
  """The value of the JSON file `path`, which must be of type `expected`.

  Args:
    path: the file (it must exist: say how to get it before calling).
    expected: `list` or `dict`.
    holds: what the file holds, for the message ("a list of people").
    fix: the sentence that says how to get a good file.

  Raises:
    InputError: the file cannot be read, is not whole JSON, or holds another
      type; the message names it and ends with `fix`.
  """
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (OSError, UnicodeDecodeError, ValueError) as error:
    raise InputError(
        f"{path} is not a whole JSON file (truncated, or another kind of "
        f"file): {error}. {fix}") from error
  if not isinstance(value, expected):
    raise InputError(
        f"{path} holds a JSON {type(value).__name__} where {holds} is "
        f"expected. {fix}")
  return value
