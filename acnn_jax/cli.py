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
* So does a config flag's mistake (`_ConfigFileParser`): a config file that
  does not exist, does not compile, raises or rejects its `:ARG`, and an
  unknown `--config.field` (with the field it most resembles), which
  ml_collections reports as tracebacks or not at all.
* A user's mistake found while running (`errors.UserError`: a missing file, a
  bad config value, a malformed annotation, an output location that cannot
  be written) prints `<command>: error: <what and how to fix it>` and exits
  with status 1 (2 for a bad config field, which is a command-line
  argument), without a traceback (`--verbose` prints it too, and that of a
  config flag's mistake). Lines after the first, if any, are the help that
  goes with it (e.g. where to download MPII).
* Anything else is a bug and keeps its traceback.
* JAX's persistent compilation cache is on (`compilation_cache`), so a
  second run skips the compiles; `--compilation_cache=off` turns it off.
"""

import difflib
import functools
import importlib.machinery
import inspect
import os
import re
import sys
import traceback
import types
from typing import Any, Callable, List, NoReturn, Optional, Sequence

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


class ConfigFlagError(flags.Error):
  """A config flag's mistake, worded for the user (one line).

  A flags.Error, which absl passes on as it is (a ValueError would be
  reworded).
  """


def _config_file_mistake(path: str) -> str:
  """Why `path` (of `--config=PATH`) is no config file: where it was looked
  for, and the config files beside it."""
  if os.path.isdir(path):
    what, folder = f"{path} is a folder, not a config file", path
  else:
    where = (path if os.path.isabs(path) else
             f"{path} in {os.getcwd()} (relative to the current folder)")
    what, folder = f"no config file {where}", os.path.dirname(path) or "."
  if os.path.isdir(folder):
    files = sorted(name for name in os.listdir(folder)
                   if name.endswith(".py") and not name.startswith("_"))
    if files:
      what += f"; {os.path.join(folder, '')} has {', '.join(files[:10])}"
  return what + "."


def _raised(error: BaseException, path: str) -> str:
  """'KeyError: 'x' (configs/tpu.py line 42)': an error of a config file."""
  text = f"{type(error).__name__}: {' '.join(str(error).split())}"
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if os.path.abspath(frame.filename) == os.path.abspath(path)]
  return text + (f" ({path} line {lines[-1]})" if lines else "")


def _field_mistake(config: Any, name: str, field: str) -> Optional[str]:
  """Why `<name>.<field>` names no field of `config`; None if it does (or
  indexes a list, which ml_collections checks)."""
  holder, seen = config, name
  for part in field.split("."):
    if "[" in part:
      return None
    if not hasattr(holder, "keys"):
      return (f"{seen} is the {type(holder).__name__} {holder!r}: it has "
              f"no field {part}.")
    if part not in holder:
      close = difflib.get_close_matches(part, [str(k) for k in holder.keys()],
                                        n=1)
      return f"{seen} has no field {part}" + (
          f"; did you mean {seen}.{close[0]}?" if close else ".")
    holder, seen = holder[part], f"{seen}.{part}"
  return None


class _ConfigFileParser(flags.ArgumentParser):
  """Loads `--config=FILE[:ARG]` as ml_collections does, with its mistakes
  as one `ConfigFlagError` line each.

  ml_collections' own parser defers a missing file's error to the config's
  first use (a traceback in the command), folds a TypeError or ValueError of
  the file into a message holding its traceback, and lets anything else (a
  syntax error, a KeyError of get_config, ConfigDict's AttributeError for
  an unknown `--config.field`) out of absl's parsing as a traceback.
  """

  def __init__(self, flag: flags.Flag):
    self._original = flag.parser
    self._name = flag.name
    # The flag's settings, private to ml_collections; its defaults if gone.
    self._lock = getattr(flag.parser, "_lock_config", True)
    self._new_fields = getattr(flag, "_accept_new_attributes", False)

  def flag_type(self) -> str:
    return self._original.flag_type()

  def parse(self, argument: str) -> Any:
    config = self._load(argument)
    self._check_overrides(config)
    if self._lock and callable(getattr(config, "lock", None)):
      config.lock()
    return config

  def _load(self, argument: str) -> Any:
    given = f"--{self._name}={argument}"
    path, *args = argument.split(":", 1)
    if not os.path.isfile(path):
      raise ConfigFlagError(f"{given}: {_config_file_mistake(path)}")
    # As ml_collections loads it; in sys.modules, where dataclasses look.
    loader = importlib.machinery.SourceFileLoader(f"{self._name}_config",
                                                  path)
    module = types.ModuleType(loader.name)
    module.__file__ = path
    sys.modules[loader.name] = module
    try:
      loader.exec_module(module)
    except SyntaxError as error:
      raise ConfigFlagError(f"{given}: {path} line {error.lineno}: "
                            f"{error.msg}.") from error
    except Exception as error:  # pylint: disable=broad-except
      raise ConfigFlagError(
          f"{given}: {path} raised {_raised(error, path)}.") from error
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
      raise ConfigFlagError(
          f"{given}: {path} defines no get_config(), the function that "
          "returns a config file's ConfigDict.")
    call = f"get_config({', '.join(repr(a) for a in args)})"
    try:
      signature = inspect.signature(get_config)
    except (TypeError, ValueError):  # None to check (a builtin): call it.
      signature = None
    try:
      if signature is not None:
        signature.bind(*args)
    except TypeError as error:
      raise ConfigFlagError(
          f"{given}: {path}'s get_config{signature} cannot be called as "
          f"{call}" + (f"; drop ':{args[0]}'." if args else
                       f"; add ':VALUE' to {path}.")) from error
    try:
      config = get_config(*args)
    except errors.UserError as error:  # It rejects the argument, and says so.
      raise ConfigFlagError(f"{given}: {error}") from error
    except Exception as error:  # pylint: disable=broad-except
      raise ConfigFlagError(f"{given}: {call} of {path} raised "
                            f"{_raised(error, path)}.") from error
    if config is None:
      raise ConfigFlagError(f"{given}: {call} of {path} returned None; it "
                            "must return the ConfigDict.")
    return config

  def _check_overrides(self, config: Any) -> None:
    """Refuses a `--config.field` that names no field of `config`."""
    if self._new_fields:
      return
    # Where ml_collections finds them: sys.argv, not absl's argv.
    argv = flags.FLAGS.read_flags_from_files(sys.argv, force_gnu=False)
    override = re.compile(rf"-{{1,2}}(no)?{re.escape(self._name)}\.")
    for arg in argv:
      if override.match(arg):
        field = arg.split("=", 1)[0].split(".", 1)[1]
        mistake = _field_mistake(config, self._name, field)
        if mistake:
          raise ConfigFlagError(f"{arg}: {mistake}")


def _report_config_mistakes() -> None:
  """Gives every config file flag `_ConfigFileParser` (once)."""
  if "ml_collections" not in sys.modules:
    # No command defined a config flag; and `predict` runs exports where
    # ml_collections is not installed.
    return
  # pylint: disable-next=g-import-not-at-top
  from ml_collections.config_flags import config_flags  # The module itself.
  for name in list(flags.FLAGS):
    flag = flags.FLAGS[name]
    if (config_flags.is_config_flag(flag) and
        isinstance(flag.parser, config_flags.ConfigFileFlagParser)):
      flag.parser = _ConfigFileParser(flag)


def _asks_verbose(argv: Sequence[str]) -> bool:
  """Whether `argv` turns --verbose on; for a parse that failed before
  reaching it."""
  verbose = False
  for arg in argv[1:]:
    if arg == "--":
      break
    name, _, value = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name in ("verbose", "noverbose"):
      verbose = (name == "verbose" and
                 value.lower() not in ("false", "f", "0", "no"))
  return verbose


def _parse_flags(argv: Sequence[str]) -> List[str]:
  """absl's flag parsing with this module's error style."""
  try:
    rest = flags.FLAGS(argv)
  except ConfigFlagError as error:
    if _asks_verbose(argv):  # The config file's own traceback, for a report.
      traceback.print_exc()
    fail(str(error), USAGE_EXIT_CODE)
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
  _report_config_mistakes()
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
