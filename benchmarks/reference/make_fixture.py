"""Runs the PyTorch reference on acnn-jax's initial weights; writes what it got.

  python benchmarks/reference/make_fixture.py                  # the tiny net
  python benchmarks/reference/make_fixture.py --network=paper \\
      --output=/tmp/parity_paper.npz
  ACNN_PARITY_FIXTURE=/tmp/parity_paper.npz python -m pytest \\
      tests/test_parity.py -s                        # ours against it

Needs JAX (acnn-jax's initialisation) and PyTorch; the README beside this
file says how to install PyTorch's CPU build. The tiny network's file,
`tests/fixtures/parity_tiny.npz`, is what `tests/test_parity.py` checks in
CI, without PyTorch.

What it does, on the CPU:
1. acnn-jax initialises the network (`models.init_variables`); every
   parameter its initialisers set to a constant (BatchNorm's scale and bias,
   the biases, the heads' zero logits kernel, the heatmap layers' near-zero
   kernels) is then drawn at random, so that each of them changes what the
   comparison sees, and BatchNorm's running statistics are set near those
   of the activations (`calibrate_statistics`).
2. `convert.to_torch` loads them into `torch_acnn.ACNN`.
3. The reference computes in float64, on fixed random batches: every
   stage's heatmaps, masks and predictions in training mode (with the
   running statistics it updates) and in inference mode, also with the
   literal Eq. 4 ('additive') and binary masks; per phase, the loss and the
   gradients of the trained task (and the statistics one step updates); per
   phase, `--steps` steps of RMSProp at the paper's rate from the same start,
   with the loss at each step and the final running statistics. It checks
   that the frozen task's parameters and statistics did not move. It also
   measures how far its own float32 results are from these (the forward
   outputs, the step losses), for reading a float32 comparison against.
4. Everything goes into one .npz in acnn-jax's layout (NHWC, Flax names;
   arrays stored as float32, losses as float64), with a `meta` JSON entry
   (network, rates, tolerances, float32 figures, versions).
"""

import argparse
import json
import os
import sys

from flax import traverse_util
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
from acnn_jax import models
import convert
import torch_acnn
# pylint: enable=g-import-not-at-top,wrong-import-position

NETWORKS = {
    # tests/conftest.py's TINY network, at its 64 x 64 input.
    "tiny": dict(fields=dict(num_stacks=3, features=16, num_joints=16,
                             hourglass_depth=2, attention_features=8),
                 input_size=64, batch_size=4, num_batches=5, steps=20,
                 tolerances=dict(forward=1e-4, gradient=1e-4, loss=1e-3)),
    # The paper's: 4 stacks of depth 4, F = 256, heads of 64 features.
    # Two steps: from the third on, both sides part even in float64
    # (README.md beside this file, "Steps on the paper's network").
    "paper": dict(fields=dict(num_stacks=4, features=256, num_joints=16,
                              hourglass_depth=4, attention_features=64),
                  input_size=256, batch_size=2, num_batches=2, steps=2,
                  tolerances=dict(forward=1e-4, gradient=1e-3, loss=1e-3)),
}
# The paper's rates (docs/design.md section 2): A 5e-4, B and C 2.5e-4.
LEARNING_RATES = {"a": 5e-4, "b": 2.5e-4, "c": 2.5e-4}
# The forward checks run on this many images of the first batch.
FORWARD_IMAGES = 2


def randomised_variables(fields, input_size, seed):
  """acnn-jax's initial variables, with the constant-initialised
  parameters drawn at random (see the module docstring), as numpy."""
  model = models.ACNN(**fields)
  variables = jax.tree_util.tree_map(
      np.asarray, models.init_variables(model, jax.random.PRNGKey(seed),
                                        input_size))
  rng = np.random.default_rng(seed)
  # Paths start with the collection ('params' or 'batch_stats').
  flat = traverse_util.flatten_dict(variables)
  for path, value in flat.items():
    name, layer, shape = path[-1], path[-2], value.shape
    if name == "scale":
      value = rng.uniform(0.8, 1.2, shape)
    elif name == "bias" and layer == "logits":
      value = rng.normal(0.0, 0.5, shape)  # Masks across (0, 1).
    elif name == "bias":
      value = rng.normal(0.0, 0.01, shape)
    elif name == "kernel" and layer == "logits":
      value = rng.normal(0.0, 1.0 / np.sqrt(shape[0]), shape)
    elif name == "kernel" and layer == "heatmaps":
      # Heatmaps of the targets' size (about 0.3 for these inputs).
      value = rng.normal(0.0, 0.3 / np.sqrt(shape[0]), shape)
    flat[path] = np.asarray(value, np.float32)
  return traverse_util.unflatten_dict(flat)


def calibrate_statistics(fields, variables, batches, seed):
  """Running statistics as training would leave them: each BatchNorm's
  mean and variance over all `batches` (the reference in float64, masks
  learned), then moved a little (mean by N(0, 0.1) standard deviations,
  variance by a factor in [0.8, 1.25]) so that they differ from any batch's.

  With the initial statistics (0 and 1), far from the activations, the
  paper's network in inference mode grows its outputs a hundredfold over
  four stacks, and phase B, which runs the heatmap network on its running
  statistics, starts from a loss of 1800 instead of 0.3: nothing like the
  networks these checks are for."""
  model, entries = torch_model(fields, variables, torch.float64)
  for module in model.modules():
    if isinstance(module, torch.nn.BatchNorm2d):
      module.reset_running_stats()
      module.momentum = None  # A cumulative average over the batches.
  model.train()
  with torch.no_grad():
    for index in range(len(batches["image"])):
      model(_inputs(batches, index, torch.float64)[0])
  rng = np.random.default_rng(seed + 2)
  flat = traverse_util.flatten_dict(_statistics(model, entries))
  for path in list(flat):
    if path[-1] == "mean":
      std = np.sqrt(flat[path[:-1] + ("var",)])
      flat[path] = flat[path] + rng.normal(0.0, 0.1, std.shape) * std
  for path in list(flat):
    if path[-1] == "var":
      flat[path] = flat[path] * rng.uniform(0.8, 1.25, flat[path].shape)
  return {"params": variables["params"],
          "batch_stats": traverse_util.unflatten_dict(
              {p: np.asarray(v, np.float32) for p, v in flat.items()})}


def make_batches(num_batches, batch_size, input_size, num_joints, seed):
  """Random images (uint8, used as x / 255), Gaussian targets (sigma 1,
  peak 1) at random joints (float16, used as float32: the fixture stays
  small and both sides see the same values), and weights with about 20% of
  joints at 0."""
  rng = np.random.default_rng(seed + 1)
  size = input_size // 4
  images = rng.integers(0, 256, (num_batches, batch_size, input_size,
                                 input_size, 3), dtype=np.uint8)
  centres = rng.uniform(0, size - 1, (num_batches, batch_size, num_joints, 2))
  grid = np.arange(size, dtype=np.float64)
  dx = grid[None, None, None, None, :] - centres[..., 0, None, None]
  dy = grid[None, None, None, :, None] - centres[..., 1, None, None]
  heatmaps = np.exp(-(dx ** 2 + dy ** 2) / 2.0)  # (N, B, K, h, w)
  weights = (rng.uniform(size=(num_batches, batch_size, num_joints)) > 0.2)
  return {"image": images,
          "heatmaps": np.moveaxis(heatmaps, 2, -1).astype(np.float16),
          "target_weight": weights.astype(np.float32)}


def torch_model(fields, variables, dtype=torch.float32, **modes):
  """The reference network with acnn-jax's `variables` loaded."""
  model = torch_acnn.ACNN(**fields, **modes)
  entries = convert.name_map(fields["num_stacks"], fields["hourglass_depth"])
  shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}
  state = convert.to_torch(variables, entries, shapes)
  missing, unexpected = model.load_state_dict(
      {k: torch.from_numpy(np.array(v)) for k, v in state.items()},
      strict=False)
  assert not unexpected and all(k.endswith("num_batches_tracked")
                                for k in missing), (missing, unexpected)
  return model.to(dtype), entries


def _inputs(batches, index, dtype=torch.float32):
  index %= len(batches["image"])
  images = torch.from_numpy(batches["image"][index] / 255).to(dtype)
  targets = torch.from_numpy(batches["heatmaps"][index]).to(dtype)
  return (images.permute(0, 3, 1, 2), targets.permute(0, 3, 1, 2),
          torch.from_numpy(batches["target_weight"][index]).to(dtype))


def _nhwc(outputs):
  """Outputs (S, B, C, h, w) as numpy (S, B, h, w, C)."""
  return {name: value.detach().permute(0, 1, 3, 4, 2).numpy()
          for name, value in outputs._asdict().items()}


def _statistics(model, entries):
  """The running statistics in Flax layout, stored as float32."""
  return convert.to_flax({k: v.float().numpy()
                          for k, v in model.state_dict().items()},
                         entries, "batch_stats")


def _put(fixture, prefix, tree):
  for path, value in traverse_util.flatten_dict(tree, sep="/").items():
    fixture[f"{prefix}/{path}"] = np.asarray(value)


def forward(fields, variables, batches, fixture):
  """In float64, on the first FORWARD_IMAGES images of the first batch:
  training and inference mode, gated and additive, soft and binary (stored
  as float32). Returns how far the reference's own float32 outputs are
  from these (max abs), per mode and output."""
  images = _inputs(batches, 0, torch.float64)[0][:FORWARD_IMAGES]
  model, entries = torch_model(fields, variables, torch.float64)
  model.train()
  exact = {"train": _nhwc(model(images))}
  _put(fixture, "forward/train/batch_stats", _statistics(model, entries))
  # Inference; the other modes keep what differs (the heatmaps do not).
  modes = {"eval": {}, "additive": dict(combine="additive"),
           "binary": dict(mask_mode="binary")}
  for mode, fields_of_mode in modes.items():
    model, _ = torch_model(fields, variables, torch.float64,
                           **fields_of_mode)
    model.eval()
    logits = []
    if mode == "binary":
      for head in model.attention:
        head.score.register_forward_hook(
            lambda module, args, out: logits.append(out.detach()))
    with torch.no_grad():
      exact[mode] = _nhwc(model(images))
  kept = {"train": ("heatmaps", "masks", "predictions"),
          "eval": ("heatmaps", "masks", "predictions"),
          "additive": ("predictions",), "binary": ("masks", "predictions")}
  for mode, names in kept.items():
    for name in names:
      fixture[f"forward/{mode}/{name}"] = exact[mode][name].astype(np.float32)
  # How far each image's binarised masks are from the threshold: where a
  # mask is within rounding of 0.5 the two sides may round it apart, so
  # the test compares only images with a safe margin.
  fixture["forward/binary/margin"] = np.min(
      [(torch.sigmoid(t) - 0.5).abs().amin(dim=(1, 2, 3)).numpy()
       for t in logits], axis=0)

  float32_error = {}
  for mode, train in (("train", True), ("eval", False)):
    model, _ = torch_model(fields, variables, torch.float32)
    model.train(train)
    with torch.no_grad():
      outputs = _nhwc(model(images.float()))
    float32_error[mode] = {
        name: float(np.max(np.abs(outputs[name] - exact[mode][name])))
        for name in kept[mode]}
  return float32_error


def gradients(fields, variables, batches, phase, fixture):
  """In float64: the loss, per-stage losses and trained task's gradients at
  the start, and the statistics after that one forward pass (the
  gradients and statistics stored as float32)."""
  model, entries = torch_model(fields, variables, torch.float64)
  trained = torch_acnn.set_phase(model, phase)
  images, targets, weights = _inputs(batches, 0, torch.float64)
  out = model(images, masks_to_one=torch_acnn.PHASES[phase][1])
  per_stage = torch_acnn.stage_losses(out.predictions, targets, weights)
  per_stage.sum().backward()
  fixture[f"phase_{phase}/loss"] = np.float64(per_stage.sum().item())
  fixture[f"phase_{phase}/stage_losses"] = per_stage.detach().numpy()
  # The last stage's mask gates nothing: its head gets no gradient (None).
  _put(fixture, f"phase_{phase}/grads", convert.to_flax(
      {k: np.zeros(tuple(p.shape), np.float32) if p.grad is None else
       p.grad.float().numpy() for k, p in trained.items()}, entries,
      "params"))
  _put(fixture, f"phase_{phase}/batch_stats", _statistics(model, entries))


def training(fields, variables, batches, phase, steps, dtype=torch.float64):
  """`steps` RMSProp steps of `phase` in `dtype`: the loss at each step and
  the final model. The frozen task must not move."""
  model, entries = torch_model(fields, variables, dtype)
  trained = torch_acnn.set_phase(model, phase)
  optimizer = torch_acnn.rmsprop(trained.values(), LEARNING_RATES[phase])
  before = {k: v.clone() for k, v in model.state_dict().items()}
  losses = []
  for step in range(steps):
    images, targets, weights = _inputs(batches, step, dtype)
    optimizer.zero_grad()
    out = model(images, masks_to_one=torch_acnn.PHASES[phase][1])
    loss = torch_acnn.stage_losses(out.predictions, targets, weights).sum()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
  trained_tasks = torch_acnn.PHASES[phase][0]
  for name, value in model.state_dict().items():
    if (model.task_of(name) not in trained_tasks and
        not name.endswith("num_batches_tracked")):
      assert torch.equal(value, before[name]), f"frozen {name} moved"
  return np.asarray(losses), model, entries


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--network", choices=sorted(NETWORKS), default="tiny")
  parser.add_argument("--output", default=os.path.join(
      REPO, "tests", "fixtures", "parity_tiny.npz"))
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps per phase (default: the "
                      "network's: tiny 20, paper 2)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  torch.manual_seed(args.seed)
  torch.use_deterministic_algorithms(True)
  spec = NETWORKS[args.network]
  fields = spec["fields"]
  steps = args.steps or spec["steps"]
  variables = randomised_variables(fields, spec["input_size"], args.seed)
  batches = make_batches(spec["num_batches"], spec["batch_size"],
                         spec["input_size"], fields["num_joints"], args.seed)
  variables = calibrate_statistics(fields, variables, batches, args.seed)
  fixture = {}
  _put(fixture, "variables", variables)
  for name, value in batches.items():
    fixture[f"batch/{name}"] = value
  float32_error = forward(fields, variables, batches, fixture)
  print(f"the reference's own float32 forward, max abs from float64: "
        f"{float32_error}")
  float32_drift = {}
  for phase in torch_acnn.PHASES:
    gradients(fields, variables, batches, phase, fixture)
    losses, model, entries = training(fields, variables, batches, phase,
                                      steps)
    fixture[f"phase_{phase}/losses"] = losses
    _put(fixture, f"phase_{phase}/final/batch_stats",
         _statistics(model, entries))
    # The same steps in float32 drift from float64 by themselves: RMSProp
    # turns rounding-sized gradients into full-sized steps. Recorded, so
    # that a float32 comparison is read against it.
    losses32, _, _ = training(fields, variables, batches, phase, steps,
                              torch.float32)
    float32_drift[phase] = float(np.max(np.abs(losses32 / losses - 1)))
    print(f"phase {phase}: losses {losses[0]:.6g} -> {losses[-1]:.6g}; "
          f"float32 drifts from float64 by up to {float32_drift[phase]:.3g}"
          " relative", flush=True)
  fixture["meta"] = np.asarray(json.dumps(dict(
      network=args.network, fields=fields, input_size=spec["input_size"],
      learning_rates=LEARNING_RATES, steps=steps, seed=args.seed,
      tolerances=spec["tolerances"], float32_drift=float32_drift,
      reference_float32_error=float32_error,
      torch=torch.__version__, jax=jax.__version__)))
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  np.savez_compressed(args.output, **fixture)
  print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes, "
        f"{len(fixture)} arrays); binary masks' margin per image: "
        f"{fixture['forward/binary/margin']}")


if __name__ == "__main__":
  main()
