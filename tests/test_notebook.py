"""notebooks/acnn_jax_colab.ipynb and configs/tpu.py.

The notebook runs headlessly in smoke mode (ACNN_NOTEBOOK_SMOKE=1: the tiny
network for 2 steps a phase, on CPU, nothing installed or downloaded), in a
kernel of this interpreter, so it cannot rot.
"""

import contextlib
import glob
import importlib.util
import io
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import nbformat
from nbformat import v4
import numpy as np
import pytest

from acnn_jax import configuration
from configs import default
from configs import phase_a
from configs import phase_b
from configs import phase_c
from configs import tpu
from conftest import TRAINED

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "acnn_jax_colab.ipynb"
# Seconds a cell may take: the training cell compiles three phases, which on
# a busy 2-core CPU took up to 150 s.
CELL_TIMEOUT = 900
REPORT = "ACNN_NOTEBOOK_REPORT "

# Run in the kernel before anything else: any connection that leaves the
# machine fails, and is recorded even if the caller swallows the error.
NO_NETWORK = '''
import socket as _socket
BLOCKED = []
_connect, _connect_ex = _socket.socket.connect, _socket.socket.connect_ex


def _local(sock, address):
  return sock.family not in (_socket.AF_INET, _socket.AF_INET6) or (
      address[0] in ("127.0.0.1", "::1", "localhost"))


def _no_network(sock, address):
  if not _local(sock, address):
    BLOCKED.append(repr(address))
    raise ConnectionRefusedError(f"no network in the smoke run: {address}")
  return _connect(sock, address)


def _no_network_ex(sock, address):
  if not _local(sock, address):
    BLOCKED.append(repr(address))
    return 111  # ECONNREFUSED
  return _connect_ex(sock, address)


_socket.socket.connect, _socket.socket.connect_ex = _no_network, _no_network_ex
'''

# Run in the kernel after the notebook: what the test checks, as one line.
REPORT_CELL = f'''
import json as _json
print({REPORT!r} + _json.dumps(dict(
    prefix=sys.prefix, workdir=WORKDIR, smoke=SMOKE, blocked=BLOCKED,
    keypoints=np.asarray(prediction.keypoints).tolist(),
    tables=sorted(TABLES))))
'''


def _notebook():
  return nbformat.read(str(NOTEBOOK), as_version=4)


def _cell(notebook, tag):
  [cell] = [c for c in notebook.cells if tag in c.metadata.get("tags", ())]
  return cell


def _code_before(notebook, cell):
  """The sources of the code cells up to and including `cell`."""
  index = notebook.cells.index(cell)
  return [c.source for c in notebook.cells[:index + 1]
          if c.cell_type == "code"]


# ------------------------------------------------------------ configs/tpu.py


@pytest.mark.parametrize("phase,paper", [("a", phase_a), ("b", phase_b),
                                         ("c", phase_c)])
def test_tpu_config_is_the_papers_recipe_in_bfloat16_on_8_cores(
    phase, paper, monkeypatch):
  config = tpu.get_config(phase)
  assert set(config) == set(default.get_config())  # Adds no field.
  assert config.dtype == "bfloat16" and config.batch_size == 64
  recipe = paper.get_config()
  for name in ("phase", "learning_rate", "num_epochs", "lr_boundaries",
               "optimizer", "num_stacks", "features", "input_size"):
    assert config[name] == recipe[name], name
  configuration.validate(config)  # On this run's 2 CPU devices.
  for devices in (1, 4, 8):  # A v5e chip, GPUs, a v2-8 / v3-8 TPU.
    monkeypatch.setattr(configuration.jax, "device_count", lambda d=devices: d)
    configuration.validate(config)
    assert configuration.eval_batch_size(config) == 64


# ----------------------------------------------------------- the notebook


def test_notebook_is_valid_and_starts_with_its_switches():
  notebook = _notebook()
  nbformat.validate(notebook)
  assert notebook.metadata.kernelspec.name == "python3"
  assert notebook.metadata.accelerator == "TPU"  # Colab's runtime type.
  parameters = _cell(notebook, "parameters")
  assert notebook.cells.index(parameters) == next(
      i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
  for name in ("SMOKE", "REPO_URL", "DATA", "MPII_DIR", "WORKDIR"):
    assert f"\n{name} = " in "\n" + parameters.source, name
  assert 'os.environ.get("ACNN_NOTEBOOK_SMOKE") == "1"' in parameters.source
  # No cell was saved with outputs (they would be stale).
  assert not [c for c in notebook.cells
              if c.cell_type == "code" and (c.outputs or c.execution_count)]


TPU_FILES = ("/dev/accel0", "/dev/vfio/0")
ACCELERATOR_VARIABLES = ("COLAB_GPU", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE")


def _simulate_runtime(monkeypatch, accelerator):
  """Makes the notebook's host checks see a "gpu", a "tpu" or (None) no
  accelerator, whatever this machine has."""
  exists, real_glob = os.path.exists, glob.glob
  monkeypatch.setattr(os.path, "exists", lambda path: (
      accelerator == "tpu" if path in TPU_FILES else exists(path)))
  monkeypatch.setattr(glob, "glob", lambda pattern, **kwargs: (
      (["/dev/nvidia0"] if accelerator == "gpu" else [])
      if pattern.startswith("/dev/nvidia") else real_glob(pattern, **kwargs)))
  for name in ACCELERATOR_VARIABLES:
    monkeypatch.delenv(name, raising=False)


def _run_install_cell(monkeypatch, tmp_path, smoke, repo_url=None,
                      accelerator=None, variables=None, then=()):
  """Runs the cells up to the install cell here, with pip and the import
  check replaced, on a simulated runtime (`_simulate_runtime`, plus the
  environment `variables`), then the cells tagged `then`; returns (what
  they printed, the commands run)."""
  _simulate_runtime(monkeypatch, accelerator)
  for name, value in (variables or {}).items():
    monkeypatch.setenv(name, value)
  monkeypatch.setenv("ACNN_NOTEBOOK_WORKDIR", str(tmp_path))
  if smoke:
    monkeypatch.setenv("ACNN_NOTEBOOK_SMOKE", "1")
  else:
    monkeypatch.delenv("ACNN_NOTEBOOK_SMOKE", raising=False)
  commands = []
  monkeypatch.setattr(subprocess, "run",
                      lambda command, **kwargs: commands.append(command))
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  notebook = _notebook()
  sources = _code_before(notebook, _cell(notebook, "install"))
  sources += [_cell(notebook, tag).source for tag in then]
  namespace, printed = {}, io.StringIO()
  with contextlib.redirect_stdout(printed):
    for number, source in enumerate(sources):
      if number == 1 and repo_url:  # After the parameters cell.
        namespace["REPO_URL"] = repo_url
      exec(compile(source, f"notebook cell {number}", "exec"), namespace)  # pylint: disable=exec-used
  return printed.getvalue(), commands


def test_install_cell_installs_nothing_in_smoke_mode(monkeypatch, tmp_path):
  printed, commands = _run_install_cell(monkeypatch, tmp_path, smoke=True)
  assert commands == [] and "Smoke mode: nothing to install" in printed


def test_install_cell_asks_for_the_repository_url(monkeypatch, tmp_path):
  with pytest.raises(ValueError, match="Set REPO_URL"):
    _run_install_cell(monkeypatch, tmp_path, smoke=False)
  _, commands = _run_install_cell(monkeypatch, tmp_path, smoke=False,
                                  repo_url="https://example.org/acnn-jax")
  [command] = commands
  assert command == [sys.executable, "-m", "pip", "install", "-q",
                     "acnn-jax @ git+https://example.org/acnn-jax"]


def _pinned_jax():
  """setup.py's lowest jax version (the notebook cannot read setup.py
  before the project is installed, so it carries a copy)."""
  text = (REPO / "setup.py").read_text()
  [version] = re.findall(r'"jax>=([0-9.]+),<[0-9.]+"', text)
  return version


@pytest.mark.parametrize("accelerator,variables,extra", [
    ("gpu", None, f"jax[cuda12]=={_pinned_jax()}"),
    (None, {"COLAB_GPU": "1"}, f"jax[cuda12]=={_pinned_jax()}"),
    ("tpu", None, "jax[tpu]")])
def test_install_cell_adds_the_accelerators_jax_build(
    monkeypatch, tmp_path, accelerator, variables, extra):
  """On a GPU runtime, the CUDA build of the pinned jax: without it pip
  replaces Colab's CUDA jax with the CPU build the pin resolves to."""
  _, commands = _run_install_cell(monkeypatch, tmp_path, smoke=False,
                                  repo_url="https://example.org/acnn-jax",
                                  accelerator=accelerator,
                                  variables=variables)
  [command] = commands
  assert command[5:] == ["acnn-jax @ git+https://example.org/acnn-jax",
                         extra]


@pytest.mark.parametrize("accelerator,backend,warns", [
    ("gpu", "cpu", True), ("tpu", "cpu", True), ("gpu", "gpu", False),
    ("tpu", "tpu", False), (None, "cpu", False)])
def test_backend_check_warns_when_an_accelerator_runtime_runs_jax_on_cpu(
    monkeypatch, tmp_path, accelerator, backend, warns):
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  printed, _ = _run_install_cell(monkeypatch, tmp_path, smoke=False,
                                 repo_url="https://example.org/acnn-jax",
                                 accelerator=accelerator,
                                 then=("backend-check",))
  if not warns:
    assert "WARNING" not in printed
    return
  name = accelerator.upper()
  extra = "cuda12" if accelerator == "gpu" else "tpu"
  assert (f"WARNING: this is a {name} runtime, but JAX {jax.__version__} "
          "runs on the CPU") in printed
  assert f'!pip install "jax[{extra}]=={_pinned_jax()}"' in printed
  assert "Restart session" in printed


@pytest.mark.parametrize("variable", ["COLAB_TPU_ADDR",
                                      "TPU_ACCELERATOR_TYPE"])
def test_backend_check_knows_a_tpu_runtime_by_its_variables(
    monkeypatch, tmp_path, variable):
  """Colab's TPU runtimes, old (a TPU node at COLAB_TPU_ADDR) and new."""
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  printed, _ = _run_install_cell(monkeypatch, tmp_path, smoke=False,
                                 repo_url="https://example.org/acnn-jax",
                                 variables={variable: "v2-8"},
                                 then=("backend-check",))
  assert "WARNING: this is a TPU runtime" in printed


def test_backend_check_is_silent_in_smoke_mode(monkeypatch, tmp_path):
  """Smoke mode sets JAX_PLATFORMS=cpu on purpose."""
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  printed, commands = _run_install_cell(monkeypatch, tmp_path, smoke=True,
                                        accelerator="gpu",
                                        then=("backend-check",))
  assert commands == [] and "WARNING" not in printed


def _kernel_manager(tmp_path):
  """A kernel of this very interpreter (the venv's), whatever kernel specs
  the user has registered."""
  # pylint: disable=g-import-not-at-top
  from jupyter_client.kernelspec import KernelSpecManager
  from jupyter_client.manager import KernelManager
  # pylint: enable=g-import-not-at-top
  spec_dir = tmp_path / "kernels" / "acnn-test"
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps(dict(
      argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
            "{connection_file}"],
      display_name="acnn-jax test", language="python")))
  specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
  return KernelManager(kernel_name="acnn-test", kernel_spec_manager=specs)


def _texts(cell):
  """A cell's printed text, and its displayed markdown, in order."""
  parts = []
  for output in cell.get("outputs", ()):
    if output.output_type == "stream":
      parts.append(output.text)
    elif "text/markdown" in output.get("data", {}):
      parts.append(output.data["text/markdown"])
  return "".join(parts)


def _pngs(cell):
  return [o for o in cell.get("outputs", ())
          if "image/png" in o.get("data", {})]


@pytest.mark.slow
@TRAINED
def test_notebook_runs_headlessly_in_smoke_mode(tmp_path, trained_workdir):
  """`trained_workdir` is not read: it trains the notebook's tiny config once
  per run, so the run's compilation cache, which the kernel shares, already
  holds the programs the notebook compiles (cold, they take most of its
  time)."""
  del trained_workdir
  # pylint: disable=g-import-not-at-top
  from nbclient import NotebookClient
  # pylint: enable=g-import-not-at-top
  workdir = tmp_path / "workdir"
  notebook = _notebook()
  parameters = notebook.cells.index(_cell(notebook, "parameters"))
  notebook.cells.insert(parameters, v4.new_code_cell(NO_NETWORK))
  notebook.cells.append(v4.new_code_cell(REPORT_CELL))
  dead = "http://127.0.0.1:9"  # Downloads outside Python fail too.
  env = dict(os.environ, ACNN_NOTEBOOK_SMOKE="1",
             ACNN_NOTEBOOK_WORKDIR=str(workdir), JAX_PLATFORMS="cpu",
             http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead,
             HTTPS_PROXY=dead, no_proxy="", NO_PROXY="")
  client = NotebookClient(
      notebook, km=_kernel_manager(tmp_path), timeout=CELL_TIMEOUT,
      iopub_timeout=60, startup_timeout=120,
      resources={"metadata": {"path": str(tmp_path)}})
  client.execute(env=env)  # Raises CellExecutionError if a cell fails.

  cells = [c for c in notebook.cells if c.cell_type == "code"]
  errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
  assert not errors, errors
  [report] = [line[len(REPORT):] for line in _texts(cells[-1]).splitlines()
              if line.startswith(REPORT)]
  report = json.loads(report)
  # The kernel ran this interpreter (the venv), in smoke mode, offline.
  assert report["prefix"] == sys.prefix
  assert report["smoke"] and report["workdir"] == str(workdir)
  assert report["blocked"] == []
  assert report["tables"] == ["a", "b", "c"]

  train_cell = next(c for c in cells if "train.train_and_evaluate" in c.source)
  printed = _texts(train_cell)
  assert "Phase C (" in printed
  assert "PCKh@0.5" in printed.split("Phase C (")[1]
  table_cell = next(c for c in cells if "COLUMNS = (" in c.source)
  assert "| C (step 2) |" in _texts(table_cell)

  picture_cell = next(c for c in cells if "pictures" in c.source and
                      "Image(filename" in c.source)
  shown = _texts(picture_cell)
  assert f"{workdir}/phase_c/pictures/step2_0.png" in shown
  assert "pckh.png" in shown and len(_pngs(picture_cell)) >= 2

  predict_cell = next(c for c in cells if "Predictor.from_checkpoint" in
                      c.source)
  assert "Predicted 16 keypoints." in _texts(predict_cell)
  assert len(_pngs(predict_cell)) == 1
  keypoints = np.asarray(report["keypoints"])
  assert keypoints.shape == (16, 2) and np.isfinite(keypoints).all()
  assert (workdir / "phase_c" / "eval_results.json").is_file()
