"""Where a command writes, checked before it works.

Every output flag (`predict --output`, `--output_json`, `--output_dir`,
`evaluate --pred_mat`, `--submission`, `export --output`, the training
`--workdir`, ...) goes through `file`, `folder` or `parent` before the
command loads a model or reads data, so that a location it cannot write
fails in one line at once, not in a traceback after minutes of work:

* a file must not be an existing folder, a folder not an existing file;
* missing parent folders are created (as `predict` always did), or the one
  line names what stops it (a file in the way, no permission);
* the folder must take a new file: a temporary file is created and removed
  there, the one test that asks the file system itself (`os.access` reads
  permission bits, which root passes, and knows nothing of /proc or of an
  immutable folder);
* an existing file is only replaced where the flag says so (this module
  checks that it can be; it never writes the file itself).
"""

import os
import tempfile

from acnn_jax import errors


def _label(name: str, path: str) -> str:
  """How messages name an output: '--pred_mat=out/p.mat', or `name` itself
  when it is no flag ("the keypoints file out/p.json")."""
  return f"{name}={path}" if name.startswith("--") else name


def _make_folder(folder: str, label: str) -> None:
  """Creates `folder` and its parents, or says in one line why it cannot."""
  if os.path.isdir(folder):
    return
  existing = folder
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise errors.InputError(
        f"{label}: cannot create the folder {folder}: {existing} is a file, "
        "not a folder. Name a location under a folder.")
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as error:
    raise errors.InputError(
        f"{label}: cannot create the folder {folder} "
        f"({error.strerror or error}). Name a folder you can write "
        "to.") from error


def _check_writable(folder: str, label: str) -> None:
  """Creates and removes a temporary file in `folder`."""
  try:
    handle, probe = tempfile.mkstemp(prefix=".acnn_jax_write_test.",
                                     dir=folder)
    os.close(handle)
    os.remove(probe)
  except OSError as error:
    raise errors.InputError(
        f"{label}: cannot write in {folder} ({error.strerror or error}). "
        "Name a folder you can write to.") from error


def parent(path: str, name: str) -> str:
  """Checks the folder in which `path` will be created; creates it.

  For an output that the command creates whole beside its final place and
  renames (`export --output`); `file` and `folder` call it too.

  Args:
    path: the file or folder to be created, as the user gave it.
    name: the flag that names it ("--output"), or a description of an
      output no flag names; messages start with it.

  Returns:
    The absolute `path`.

  Raises:
    errors.InputError: its folder cannot be created or written in.
  """
  label = _label(name, path)
  path = os.path.abspath(os.path.expanduser(path))
  _make_folder(os.path.dirname(path), label)
  _check_writable(os.path.dirname(path), label)
  return path


def file(path: str, name: str) -> str:
  """Checks a file that a command will write; creates its folder.

  Args:
    path: the file, as the user gave it.
    name: the flag that names it ("--pred_mat"), or a description of a file
      no flag names ("the keypoints file out/pose.json"); messages start
      with it.

  Returns:
    The absolute path.

  Raises:
    errors.InputError: `path` is a folder or a read-only file, or its folder
      cannot be created or written in.
  """
  label = _label(name, path)
  absolute = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(absolute):
    raise errors.InputError(
        f"{label}: {absolute} is a folder; name a file to write (in it, or "
        "beside it).")
  parent(path, name)
  if os.path.lexists(absolute) and not os.access(absolute, os.W_OK):
    raise errors.InputError(
        f"{label}: {absolute} exists and is read-only; name another file, "
        "or make it writable to replace it.")
  return absolute


def folder(path: str, name: str) -> str:
  """Checks a folder that a command will write in; creates it.

  Args:
    path: the folder, as the user gave it.
    name: the flag that names it ("--workdir"); messages start with it.

  Returns:
    The absolute path.

  Raises:
    errors.InputError: `path` is a file, or cannot be created or written in.
  """
  label = _label(name, path)
  absolute = os.path.abspath(os.path.expanduser(path))
  if os.path.lexists(absolute) and not os.path.isdir(absolute):
    raise errors.InputError(
        f"{label}: {absolute} is a file, not a folder; name a folder (new or "
        "existing).")
  _make_folder(absolute, label)
  _check_writable(absolute, label)
  return absolute
