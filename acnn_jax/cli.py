"""What every command line shares: absl flags, one error style, quiet logs.

Every entry point (`acnn_jax.main`, `.demo`, `.evaluate`, `.predict`, `.pckh`
and `input_pipeline.synthetic`) ends with

  if __name__ == "__main__":
    cli.run(main, define_flags)

* Flags are absl flags, defined by the command's `define_flags` only when it
  runs as a program, so that importing the module for its functions defines
  no global flag that could clash with another command's.
* A command line that cannot be parsed (an unknown or malformed flag, a
  missing required one, a stray argument) prints `<command>: error: <what>`
  on one line and exits with status 2.
* A user's mistake found while running (`errors.UserError`: a missing file, a
  bad config value, a malformed annotation) prints `<command>: error: <what
  and how to fix it>` and exits with status 1 (2 for a bad config field, which
  is a command-line argument), without a traceback (`--verbose` prints it
  too). Lines after the first, if any, are the help that goes with it
  (e.g. where to download MPII).
* Anything else is a bug and keeps its traceback.
* JAX's persistent compilation cache is on (`compilation_cache`), so a
  second run skips the compiles; `--compilation_cache=off` turns it off.
"""

import functools
import os
import sys
import traceback
from typing import Callable, NoReturn, Sequence

from absl import app
from absl import flags
from absl import logging
from absl.logging import converter

from acnn_jax import compilation_cache
from acnn_jax import errors

USAGE_EXIT_CODE = 2

# Libraries that log a dozen INFO lines per checkpoint or data set read.
_CHATTY_LIBRARIES = ("orbax", "tensorflow_datasets")


def command_name() -> str:
  """The running command's short name: 'pckh' for `python -m acnn_jax.pckh`."""
  return os.path.splitext(os.path.basename(sys.argv[0] or "acnn_jax"))[0]


def fail(message: str, exit_code: int) -> NoReturn:
  """Prints `<command>: error: <message>` to stderr and exits."""
  first, *rest = str(message).strip().splitlines() or [""]
  lines = [f"{command_name()}: error: {first}"] + rest
  sys.stderr.write("\n".join(lines) + "\n")
  sys.exit(exit_code)


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing with this module's error style."""
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as error:
    fail(f"{' '.join(str(error).split())} (see --help).", USAGE_EXIT_CODE)
  if len(rest) > 1:
    fail(f"unexpected arguments {' '.join(rest[1:])}; every input is a "
         "--flag (see --help).", USAGE_EXIT_CODE)
  return rest


def _run_reporting_errors(main: Callable[[Sequence[str]], None],
                          argv: Sequence[str]) -> None:
  # Before the command compiles anything.
  compilation_cache.enable(flags.FLAGS.compilation_cache)
  try:
    main(argv)
  except app.UsageError as error:
    fail(str(error), USAGE_EXIT_CODE)
  except errors.UserError as error:
    if flags.FLAGS.verbose:  # Where in the code it was found, for a report.
      traceback.print_exc()
    fail(str(error), error.exit_code)


class _QuietLibraries:
  """A logging filter that drops INFO records of `_CHATTY_LIBRARIES`, keeping
  their warnings and errors."""

  def filter(self, record) -> bool:
    # Records carry the standard library's levels (WARNING is 30), not
    # absl's verbosities.
    return record.levelno >= converter.STANDARD_WARNING or not any(
        f"{os.sep}{name}{os.sep}" in record.pathname
        for name in _CHATTY_LIBRARIES)


def quiet_library_logs() -> None:
  """Installs `_QuietLibraries` on absl's log handler (once)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())


def _is_closed_loop_noise(unraisable) -> bool:
  return (isinstance(unraisable.exc_value, RuntimeError) and
          str(unraisable.exc_value) == "Event loop is closed")


def ignore_closed_event_loops() -> None:
  """Drops the 'Event loop is closed' tracebacks of a failed orbax restore.

  When restoring a damaged checkpoint fails, tensorstore's reads still in
  flight call back into orbax's event loop, already closed, and Python
  prints one traceback per read (hundreds), burying the one line that says
  which checkpoint was skipped. They are harmless; every other unraisable
  exception is still printed.
  """
  previous = sys.unraisablehook
  if getattr(previous, "ignores_closed_loops", False):
    return

  def hook(unraisable):
    if not _is_closed_loop_noise(unraisable):
      previous(unraisable)
  hook.ignores_closed_loops = True
  sys.unraisablehook = hook


def hide_gpus_from_tensorflow() -> None:
  """Keeps TensorFlow, which only feeds data here, off the accelerators.

  Otherwise it reserves GPU memory that JAX needs.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")


def run(main: Callable[[Sequence[str]], None],
        define_flags: Callable[[], None]) -> None:
  """Defines the command's flags, parses them and runs `main` (see above)."""
  define_flags()
  if "verbose" not in flags.FLAGS:
    flags.DEFINE_bool("verbose", False, "Print the traceback of a reported "
                      "error too (for a bug report).")
  if "compilation_cache" not in flags.FLAGS:
    flags.DEFINE_string(
        "compilation_cache", None,
        "Folder of JAX's persistent compilation cache, or 'off' (default: "
        f"${compilation_cache.ENVIRONMENT_VARIABLE}, else "
        "~/.cache/acnn_jax/xla). A second run of a command loads its "
        "compiled programs from there instead of compiling them again.")
  quiet_library_logs()
  ignore_closed_event_loops()
  app.run(functools.partial(_run_reporting_errors, main),
          flags_parser=_parse_flags)
