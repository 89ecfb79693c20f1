"""README's research-code example runs as written, and its commands exist."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
  return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_model_example_runs_as_written(capsys):
  block = next(b for b in _python_blocks() if "models.ACNN()" in b)
  namespace = {}
  exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  printed = capsys.readouterr().out.splitlines()
  assert printed == ["(4, 2, 64, 64, 16)", "(4, 2, 64, 64, 1)",
                     "(4, 2, 64, 64, 16)"]
  assert set(namespace["labels"]) == set(namespace["variables"]["params"])


def test_readme_gives_the_two_commands():
  text = README.read_text()
  assert "./launch.sh demo" in text and "./launch.sh test" in text
  ci = (README.parent / ".ci" / "run").read_text()
  assert "./launch.sh test" in ci
