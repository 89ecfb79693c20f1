"""JAX's persistent compilation cache: a second run loads its executables.

Compiling the paper's train step takes tens of seconds on any platform;
with the cache on, a second run of the same command (same network, batch,
phase, JAX version and machine) reads the compiled program from disk
instead. Every command turns it on (`cli.run`) in the user's cache folder:

  $ACNN_COMPILATION_CACHE        if set: a folder, or 'off' to disable it
  $XDG_CACHE_HOME/acnn_jax/xla   else (~/.cache/acnn_jax/xla)

and every command takes `--compilation_cache=DIR` (or `=off`). Entries are
keyed by the program, its shapes, the compiler options and the JAX
version, so a stale entry is never used; deleting the folder is always safe.
"""

import os
from typing import Optional

from absl import logging
import jax

ENVIRONMENT_VARIABLE = "ACNN_COMPILATION_CACHE"
OFF = ("", "off", "0", "none", "false")
# Programs that compile faster than this are not worth a file (JAX's
# default is 1 s; the tiny networks of tests compile in about that).
MIN_COMPILE_SECONDS = 0.5


def default_directory() -> str:
  """$ACNN_COMPILATION_CACHE, else the user's cache folder (see above)."""
  if ENVIRONMENT_VARIABLE in os.environ:
    return os.environ[ENVIRONMENT_VARIABLE]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache")
  return os.path.join(base, "acnn_jax", "xla")


def enable(directory: Optional[str] = None) -> Optional[str]:
  """Turns the cache on in `directory` (default: `default_directory()`).

  Call it before the first compilation of the process.

  Args:
    directory: a folder (made if missing), or one of OFF to leave the cache
      off.

  Returns:
    The absolute folder in use, or None when off.
  """
  directory = default_directory() if directory is None else directory
  if directory.strip().lower() in OFF:
    return None
  directory = os.path.abspath(os.path.expanduser(directory))
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as error:  # A cache is an optimisation, never a failure.
    logging.warning("The compilation cache is off: cannot make %s (%s). Set "
                    "--compilation_cache=DIR or %s=off.", directory, error,
                    ENVIRONMENT_VARIABLE)
    return None
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    MIN_COMPILE_SECONDS)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return directory
