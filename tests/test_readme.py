"""README's research-code example runs as written, and its commands exist.

The commands are checked without running them: every `./launch.sh` command
names a command launch.sh has, every `python -m` module exists and defines
each flag the README passes it, every `--config.<field>` is a field of
configs/default.py and every config file exists. CI runs the README's test
command (`.ci/run`).
"""

import ast
import functools
import importlib
import importlib.util
import pathlib
import re
import shlex

import jax
import jax.numpy as jnp
import pytest

from acnn_jax import models
from configs import default

REPO = pathlib.Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# Every command line defines these (acnn_jax/cli.py).
COMMON_FLAGS = {"verbose", "compilation_cache", "help", "helpfull"}
# The module each launch.sh command runs, for its flags.
LAUNCH_MODULES = {"demo": "acnn_jax.demo", "train": "acnn_jax.main",
                  "all": "acnn_jax.main"}


def _blocks(language):
  return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


def _python_blocks():
  return _blocks("python")


def _shell_commands():
  """The README's shell commands, continuation lines joined, comments cut."""
  commands = []
  for block in _blocks("sh"):
    for line in block.replace("\\\n", " ").splitlines():
      line = line.split(" #", 1)[0].strip()
      if line and not line.startswith("#"):
        commands.append(line)
  return commands


def _words(command):
  # [--flag=value] marks an optional flag: it must exist all the same.
  return shlex.split(command.replace("[", " ").replace("]", " "))


def _defined_flags(module):
  """The flags a command's module defines (read from its source)."""
  spec = importlib.util.find_spec(module)
  assert spec is not None and spec.origin, (
      f"README runs {module}: no such module")
  source = pathlib.Path(spec.origin).read_text()
  return set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)) | COMMON_FLAGS


def _check_flags(module, words, where):
  defined = _defined_flags(module)
  fields = set(default.get_config().keys())
  for word in words:
    if not word.startswith("--"):
      continue
    name, _, value = word[2:].partition("=")
    if name.startswith("config."):
      assert name[len("config."):] in fields, f"{where}: no config field {name}"
      continue
    assert name in defined, f"{where}: {module} has no flag --{name}"
    if name == "config":
      path = value.split(":", 1)[0]
      assert (REPO / path).is_file(), f"{where}: no config file {path}"


def _launch_commands():
  """The commands launch.sh's `case` accepts."""
  text = (REPO / "launch.sh").read_text()
  return {word for group in re.findall(r"^\s*([\w|-]+)\)", text, re.M)
          for word in group.split("|")}


@pytest.mark.slow
def test_model_example_runs_as_written(capsys, monkeypatch):
  """The example builds the paper's full network; the test traces it with
  abstract shapes (`jax.eval_shape`), so it checks every call and printed
  shape without computing (or compiling) the 13M-parameter network on CPU."""
  apply = models.ACNN.apply

  def abstract_init(model, rng, image_size, batch_size=1):
    size = (image_size, image_size) if isinstance(image_size, int) else (
        image_size)
    dummy = jnp.zeros((batch_size, *size, 3), jnp.float32)
    return jax.eval_shape(lambda r: model.init(r, dummy, train=False), rng)

  def abstract_apply(self, variables, *args, **kwargs):
    return jax.eval_shape(functools.partial(apply, self, **kwargs), variables,
                          *args)

  monkeypatch.setattr(models, "init_variables", abstract_init)
  monkeypatch.setattr(models.ACNN, "apply", abstract_apply)
  block = next(b for b in _python_blocks() if "models.ACNN()" in b)
  namespace = {}
  exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out.splitlines()
  assert printed == ["(4, 2, 64, 64, 16)", "(4, 2, 64, 64, 1)",
                     "(4, 2, 64, 64, 16)"]
  assert set(namespace["labels"]) == set(namespace["variables"]["params"])
  assert models.count_params(namespace["variables"]["params"]) == (
      12_858_304 + 739_076)


def test_readme_gives_the_two_commands():
  """The first commands are the demo and the full test run, which CI runs."""
  first = _shell_commands()[:2]
  assert first == ["./launch.sh demo", "./launch.sh test --all"], first
  assert "`./launch.sh test`" in README.read_text()  # The quick tier.
  ci = [line.strip() for line in (REPO / ".ci" / "run").read_text()
        .splitlines() if line.strip() and not line.lstrip().startswith("#")]
  assert "./launch.sh test --all" in ci, ".ci/run must run README's command"
  assert "--all" in (REPO / "launch.sh").read_text()


def test_readme_commands_exist():
  commands = _shell_commands()
  assert commands
  launch = _launch_commands()
  for command in commands:
    words = _words(command)
    if words[0] == "./launch.sh":
      assert words[1] in launch, f"{command}: launch.sh has no '{words[1]}'"
      if words[1] in LAUNCH_MODULES:
        _check_flags(LAUNCH_MODULES[words[1]], words[2:], command)
      if words[1] == "train":
        assert (REPO / words[2].split(":", 1)[0]).is_file(), command
      if words[1] == "test":
        for word in words[2:]:
          assert word.startswith("-") or (REPO / word).is_file(), command
    elif words[:2] == ["PYTHONPATH=.", "python"]:  # A benchmark script.
      script = REPO / words[2]
      assert script.is_file(), f"{command}: no script {words[2]}"
      source = script.read_text()
      defined = (set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)) |
                 set(re.findall(r"add_argument\(\s*\"--(\w+)\"", source)))
      for word in words[3:]:
        name = word[2:].partition("=")[0]
        assert name in defined, f"{command}: {words[2]} has no flag --{name}"
    else:
      assert words[:2] == ["python", "-m"], f"unchecked command: {command}"
      _check_flags(words[2], words[3:], command)


def test_readme_config_fields_exist():
  """Every `--config.<field>` the text mentions is a config field."""
  fields = set(default.get_config().keys())
  named = set(re.findall(r"--config\.(\w+)", README.read_text()))
  assert named and named <= fields, named - fields


def test_python_examples_name_real_functions():
  """The examples that need a trained workdir are not run; what they call
  exists (modules, classes, functions)."""
  for block in _python_blocks():
    tree = ast.parse(block)
    modules = {}
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module == "acnn_jax":
        for alias in node.names:
          modules[alias.asname or alias.name] = importlib.import_module(
              f"acnn_jax.{alias.name}")
    for node in ast.walk(tree):
      chain = []
      while isinstance(node, ast.Attribute):
        chain.insert(0, node.attr)
        node = node.value
      if not (isinstance(node, ast.Name) and node.id in modules and chain):
        continue
      target = modules[node.id]
      for attr in chain:
        if isinstance(target, (type(models), type)):
          assert hasattr(target, attr), f"{node.id}.{'.'.join(chain)}"
          target = getattr(target, attr)
        else:
          break
