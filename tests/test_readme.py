"""README's research-code example runs as written, and its commands exist."""

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import pytest

from acnn_jax import models

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
  return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


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
  text = README.read_text()
  assert "./launch.sh demo" in text and "./launch.sh test" in text
  ci = (README.parent / ".ci" / "run").read_text()
  assert "./launch.sh test" in ci
