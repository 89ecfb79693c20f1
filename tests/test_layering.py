"""The shape of the code: imports run one way, with no circles.

The layers (docs/design.md section 6), lowest first; a module may import
modules of its own layer or of lower ones, never of a higher one, and the
import graph has no circle:

  0  errors, cli, mpii, geometry, codec, training_batch,    (facts, helpers)
     parallel, compilation_cache, distributed, detections,
     output_paths, configs
  1  input_pipeline                                          (files -> batches)
  2  batch_norm, convolution, hourglass, models, phases,    (the network)
     optimizers, configuration
  3  checkpoints, saved_config, train_step
  4  inference
  5  pckh, mask_stats, evaluate, submission, visualize, plots
  6  train
  7  main, demo, predict, export                             (commands)

Imports inside functions are allowed for TensorFlow only, to keep it out of
light commands and of `import acnn_jax.inference` in research code, and for
`checkpoints` (Flax, orbax) in `predict` and ml_collections' config flags in
`cli`, since exported models run without them.
"""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import PROCESS_TIMEOUT

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("acnn_jax", "input_pipeline", "configs")

LAYERS = (
    ("acnn_jax.errors", "acnn_jax.cli", "acnn_jax.mpii", "acnn_jax.geometry",
     "acnn_jax.codec", "acnn_jax.training_batch", "acnn_jax.parallel",
     "acnn_jax.compilation_cache", "acnn_jax.distributed",
     "acnn_jax.detections", "acnn_jax.output_paths", "configs"),
    ("input_pipeline",),
    ("acnn_jax.batch_norm", "acnn_jax.convolution", "acnn_jax.hourglass",
     "acnn_jax.models",
     "acnn_jax.phases", "acnn_jax.optimizers", "acnn_jax.configuration"),
    ("acnn_jax.checkpoints", "acnn_jax.saved_config", "acnn_jax.train_step"),
    ("acnn_jax.inference",),
    ("acnn_jax.pckh", "acnn_jax.mask_stats", "acnn_jax.evaluate",
     "acnn_jax.submission", "acnn_jax.visualize", "acnn_jax.plots"),
    ("acnn_jax.train",),
    ("acnn_jax.main", "acnn_jax.demo", "acnn_jax.predict",
     "acnn_jax.export"),
)


def _modules():
  """{module name: path} of every Python file of the project's packages."""
  found = {}
  for package in PACKAGES:
    for path in sorted((REPO / package).rglob("*.py")):
      parts = path.relative_to(REPO).with_suffix("").parts
      if parts[-1] == "__init__":
        parts = parts[:-1]
      found[".".join(parts)] = path
  return found


def _layer(module):
  """The layer of a module: that of its longest listed prefix."""
  if module == "acnn_jax":  # The package's __init__: a docstring, a version.
    return 0
  best = None
  for index, layer in enumerate(LAYERS):
    for prefix in layer:
      if module == prefix or module.startswith(prefix + "."):
        if best is None or len(prefix) > len(best[1]):
          best = (index, prefix)
  return None if best is None else best[0]


def _imports(path, modules):
  """[(imported module, line, inside a function)] of one file."""
  tree = ast.parse(path.read_text(), str(path))
  inside = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      inside.update(id(n) for n in ast.walk(node) if n is not node)
  found = []
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from package import module` imports the module, not the package.
      names = [f"{node.module}.{a.name}" for a in node.names
               if f"{node.module}.{a.name}" in modules] or [node.module]
    for name in names:
      found.append((name, node.lineno, id(node) in inside))
  return found


def _graph():
  modules = _modules()
  graph = {}
  for module, path in modules.items():
    graph[module] = sorted({name for name, _, _ in _imports(path, modules)
                            if name in modules and name != module})
  return graph


def _cycle(graph):
  """One import circle as a list of modules, or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in graph.get(node, ()):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in graph:
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_every_module_has_a_layer():
  assert not [m for m in _modules() if _layer(m) is None]


def test_the_import_graph_has_no_circle():
  assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_no_module_imports_a_higher_layer():
  upward = [f"{module} (layer {_layer(module)}) imports {name} (layer "
            f"{_layer(name)})"
            for module, names in _graph().items() for name in names
            if _layer(name) > _layer(module)]
  assert not upward, "\n".join(upward)


# (module, what it may import inside functions) besides TensorFlow.
NESTED_ALLOWED = {("acnn_jax.predict", "acnn_jax.checkpoints"),
                  # Only where a command has config flags: `predict` runs
                  # exports without ml_collections.
                  ("acnn_jax.cli", "ml_collections.config_flags")}


def test_imports_inside_functions_are_tensorflow_only():
  modules = _modules()
  nested = [f"{path.relative_to(REPO)}:{line} imports {name}"
            for module, path in modules.items()
            for name, line, inside in _imports(path, modules)
            if inside and name.split(".")[0] != "tensorflow" and
            (module, name) not in NESTED_ALLOWED]
  assert not nested, "\n".join(nested)


LIGHT_MODULES = ("acnn_jax.pckh", "input_pipeline.synthetic", "acnn_jax.models",
                 "acnn_jax.inference", "acnn_jax.train_step",
                 "acnn_jax.predict")


@pytest.mark.slow
def test_light_modules_do_not_load_tensorflow():
  """The PCKh and synthetic-data commands, the model with its decoding for
  research code, the train step (for the benchmark, on hosts without
  TensorFlow) and the predictors start without TensorFlow's seconds of
  import. One process imports them all: if none of them loads TensorFlow,
  neither does any one alone."""
  code = (f"import sys, {', '.join(LIGHT_MODULES)}; "
          "print('tensorflow' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True,
                          timeout=PROCESS_TIMEOUT, check=True)
  assert result.stdout.strip() == "False"
