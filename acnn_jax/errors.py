"""Errors a user can fix: a bad config value, a missing or malformed input.

Library code raises these for what the user gave it (they subclass the
built-in types callers already expect, ValueError and FileNotFoundError), and
every message says what to change. The command lines (`cli.run`) print them as
one `error:` line without a traceback, because they are the user's to fix,
not bugs; anything else keeps its traceback.
"""


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
