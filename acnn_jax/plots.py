"""Plots of the evaluation history across phases: PCKh and mask statistics.

Each plot is returned as an (H, W, 3) uint8 numpy image, so the caller can both
write it as a PNG (`visualize.save_png`) and log it to TensorBoard. Figures are
drawn with matplotlib's object-oriented API on an Agg canvas: no pyplot, no
global state and no display needed.

`history` is a list of evaluation records in training order, each a dict like
{"phase": "a", "step": 1500, "Mean": 62.9, "Mean@0.1": 31.2,
"mask/stage_1/background": 0.4, ...}. Every phase counts its steps from 0
again, so the x-axis is the cumulative step (`cumulative_steps`).
"""

import os
import re

import numpy as np
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from acnn_jax import visualize

# 6.4 x 3.6 inches at 100 dpi: 640 x 360 pixels, readable in TensorBoard.
FIGSIZE = (6.4, 3.6)
DPI = 100
PCKH_KEYS = (("Mean", "PCKh@0.5 (Mean)"), ("Mean@0.1", "PCKh@0.1 (Mean@0.1)"))
# The statistics `mask_plot` draws per stage, with their legend and style.
MASK_STATS = (
    ("target", "mean on target", dict(color="tab:green")),
    ("others", "mean on other people", dict(color="tab:orange")),
    ("background", "mean on background", dict(color="tab:gray")),
    ("kept", "share kept (>= 0.5)", dict(color="tab:blue", linestyle="--")),
    ("joints_kept", "target joints kept",
     dict(color="tab:purple", linestyle=":")),
)
_MASK_KEY = re.compile(r"^mask/stage_(\d+)/(\w+)$")


def cumulative_steps(history):
  """The x value of each record: its step plus the last steps of the phases
  before its own.

  Args:
    history: records with "step" and "phase", in training order.

  Returns:
    (len(history),) float64 array.
  """
  xs = []
  offset = 0.0
  phase, last = object(), 0.0
  for record in history:
    if record.get("phase") != phase:
      if xs:
        offset += last
      phase = record.get("phase")
    last = float(record["step"])
    xs.append(offset + last)
  return np.asarray(xs, np.float64)


def _phase_spans(history, xs):
  """[(name, start, end)] per run of equal phases; a phase starts where the
  one before it ended (its step 0)."""
  spans = []
  for record, x in zip(history, xs):
    name = str(record.get("phase", "")).upper()
    if spans and spans[-1][0] == name:
      spans[-1][2] = x
    else:
      start = spans[-1][2] if spans else 0.0
      spans.append([name, start, x])
  return spans


def _mark_phases(ax, spans):
  """Dotted lines at the phase boundaries and the phases' names on top; the
  x-axis starts at step 0, where the first phase starts."""
  transform = ax.get_xaxis_transform()  # x in data, y in axes fraction.
  for i, (name, start, end) in enumerate(spans):
    if i > 0:
      ax.axvline(start, color="black", linewidth=0.8, linestyle=":")
    # Out of the layout: the title's pad leaves room for the names.
    ax.text((start + end) / 2, 1.01, name, transform=transform, ha="center",
            va="bottom", fontsize=9, fontweight="bold", in_layout=False)
  if spans:
    ax.set_xlim(0.0, max(spans[-1][2], 1.0) * 1.03)


def _series(history, xs, key):
  """(x, y) of the records that have `key`, as float arrays."""
  pairs = [(x, float(r[key])) for r, x in zip(history, xs) if key in r]
  if not pairs:
    return None
  return tuple(np.asarray(p, np.float64) for p in zip(*pairs))


def _to_image(figure):
  """Renders a figure -> (H, W, 3) uint8 copy."""
  canvas = FigureCanvasAgg(figure)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def pckh_plot(history, title="Validation PCKh"):
  """PCKh Mean and Mean@0.1 against the cumulative step, across phases.

  Args:
    history: evaluation records (see the module docstring); records without
      "Mean" or "Mean@0.1" are skipped for that line.
    title: the figure's title.

  Returns:
    (360, 640, 3) uint8 image, or None when no record has either key.
  """
  xs = cumulative_steps(history)
  lines = [(_series(history, xs, key), name) for key, name in PCKH_KEYS]
  if all(line is None for line, _ in lines):
    return None
  figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
  ax = figure.add_subplot()
  for line, name in lines:
    if line is not None:
      ax.plot(*line, marker="o", markersize=3, label=name)
  _mark_phases(ax, _phase_spans(history, xs))
  ax.set_xlabel("training step (cumulative over phases)")
  ax.set_ylabel("PCKh (%)")
  ax.set_title(title, pad=14)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right", fontsize=8)
  return _to_image(figure)


def _mask_stats(history):
  """{stage: set of statistic names} over all records' mask keys."""
  stats = {}
  for record in history:
    for key in record:
      match = _MASK_KEY.match(key)
      if match:
        stats.setdefault(int(match.group(1)), set()).add(match.group(2))
  return stats


def mask_plot(history, title="Attention masks"):
  """Each stage's mask statistics against the cumulative step, one panel per
  stage: the mean mask on the target person, on other people and on the
  background, the share of mask pixels >= 0.5 and the share of the target's
  joints in kept regions (keys `mask/stage_{i}/{target,others,background,
  kept,joints_kept}`, i from 1).

  Any key may be missing from any record (real MPII has no person regions;
  phase A has masks of exactly 1 or none): what is there is drawn.

  Args:
    history: evaluation records (see the module docstring).
    title: the figure's title.

  Returns:
    (H, 640, 3) uint8 image (360 rows for up to 3 stages, taller for more),
    or None when no record has a mask key.
  """
  stats = _mask_stats(history)
  if not stats:
    return None
  xs = cumulative_steps(history)
  spans = _phase_spans(history, xs)
  stages = sorted(stats)
  columns = min(len(stages), 3)
  rows = -(-len(stages) // columns)
  height = max(FIGSIZE[1], 0.8 + 2.3 * rows)
  figure = Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="constrained")
  axes = figure.subplots(rows, columns, sharex=True, sharey=True,
                         squeeze=False).ravel()
  drawn = {}
  for ax, stage in zip(axes, stages):
    for name, legend, style in MASK_STATS:
      line = _series(history, xs, f"mask/stage_{stage}/{name}")
      if line is not None:
        drawn[name] = ax.plot(*line, marker="o", markersize=2.5, label=legend,
                              **style)[0]
    _mark_phases(ax, spans)
    # The title sits above the phase names (pad in points).
    ax.set_title(f"mask M{stage}", fontsize=9, pad=12)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
  for index, ax in enumerate(axes):
    if index >= len(stages):
      ax.set_visible(False)
    elif index + columns >= len(stages):  # the lowest panel of its column
      ax.tick_params(labelbottom=True)
      ax.set_xlabel("cumulative step", fontsize=8)
  figure.supylabel("mask value / share", fontsize=8)
  figure.suptitle(title, fontsize=11)
  handles = [drawn[name] for name, _, _ in MASK_STATS if name in drawn]
  figure.legend(handles=handles, loc="outside lower center",
                ncols=min(len(handles), 3), fontsize=7, frameon=False,
                columnspacing=2.0)
  return _to_image(figure)


def write_history_plots(writer, directory, step, history):
  """Draws `pckh_plot` and `mask_plot` of `history` into `directory`
  (pckh.png, masks.png, replaced at each evaluation) and TensorBoard
  (`validation/pckh_plot`, `validation/mask_plot`).

  Args:
    writer: a clu metric writer.
    directory: the phase directory.
    step: the training step of the newest record.
    history: evaluation records of this and the earlier phases, in order.
  """
  images = {}
  for name, plot in (("pckh", pckh_plot), ("masks", mask_plot)):
    image = plot(history)
    if image is not None:
      visualize.save_png(image, os.path.join(directory, f"{name}.png"))
      images[f"validation/{name}_plot"] = image[None]
  if images:
    writer.write_images(step, images)
