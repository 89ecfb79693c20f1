"""Defaults for ACNN on MPII: the paper's network and phase A's recipe.

The variants (phase_a.py, phase_b.py, phase_c.py, demo.py, tiny.py) import this
file and override a few fields. Run one phase with

  python -m acnn_jax.main --config=configs/phase_a.py --workdir=runs/acnn \
      --config.manual_dir=/data/mpii

and override any field on the command line, e.g. `--config.batch_size=24`.
"""

import ml_collections


def get_config():
  """The default configuration (phase A of the paper's recipe)."""
  config = ml_collections.ConfigDict()

  # Phase: 'a' heatmaps (masks frozen at one), 'b' attention heads (heatmap
  # network frozen), 'c' both. Phase p writes to WORKDIR/phase_<p>/.
  config.phase = "a"
  # Checkpoint to start from: '' takes the previous phase's last checkpoint
  # in the same workdir (B from phase_a/, C from phase_b/); phase A starts from
  # scratch. A path may name a phase directory or a checkpoints directory.
  config.init_from = ""

  # Model (docs/design.md section 1).
  config.num_stacks = 4
  config.features = 256
  config.num_joints = 16
  config.hourglass_depth = 4
  # False: no attention heads, the plain stacked hourglass (masks are one).
  config.attention = True
  config.attention_features = 64  # Width of the heads' 3x3 convolutions.
  config.attention_bias_init = 4.0  # Masks start at sigmoid(4) = 0.98.
  config.mask_mode = "soft"  # 'soft' or 'binary' (straight-through).
  config.combine = "gated"  # 'gated' or 'additive' (the paper's literal Eq. 4).
  # Beyond the paper: a prior that rewards discarding, weight * the mean of
  # the masks that gate a later stage, added to the loss in phases B and C.
  # The heatmap loss alone hardly asks to discard background (there both the
  # prediction and the target are zero); 0 is the paper's loss.
  config.attention_sparsity = 0.0
  config.dtype = "float32"  # Compute dtype: 'float32' or 'bfloat16'.

  # Data (docs/design.md section 3).
  # TFDS data directory ('' = TFDS's default, ~/tensorflow_datasets; with
  # synthetic_images, WORKDIR/tfds).
  config.data_dir = ""
  # The raw MPII files (see input_pipeline/mpii_layouts.py for the layouts).
  config.manual_dir = ""
  # > 0: write that many synthetic MPII-format images first (once), so
  # everything runs without the real data set: into WORKDIR/synthetic_mpii,
  # or into manual_dir if that is a new folder or one written so before. A
  # real data folder is never written into (an error says so).
  config.synthetic_images = 0
  config.synthetic_seed = 0  # The synthetic set is a function of this seed.
  # People whose image is missing or unreadable are skipped; when more than
  # 5% of the train or validation people are, preparing the data set stops
  # (a PCKh over part of the validation set is not MPII's). True prepares
  # and uses the people left, with a warning at every run.
  config.allow_missing_images = False
  config.input_size = 256  # Crop side; heatmaps are input_size / 4.
  config.sigma = 1.0  # Gaussian target's sigma in heatmap pixels.
  # The augmentation of training crops (docs/design.md section 3).
  config.augment = True
  config.scale_sigma = 0.25  # scale *= 2 ** clip(N(0, 1) * s, -2s, 2s).
  config.rotation_sigma = 30.0  # Degrees: clip(N(0, 1) * r, -2r, 2r) ...
  config.rotation_prob = 0.4  # ... applied with this probability.
  config.flip_prob = 0.5  # Horizontal flip, left/right joints swapped.
  config.color_low = 0.6  # Each colour channel *= U(color_low, color_high).
  config.color_high = 1.4
  config.shuffle_buffer = 1024  # Training examples (still JPEG bytes).
  # Keep the examples (JPEG bytes as stored, not decoded images) in memory
  # after the first epoch: no file reads, the same decoding (small sets).
  config.cache = False

  # Optimisation (docs/design.md section 2; pose-hg-train's RMSProp).
  config.batch_size = 12  # Global, over all devices and hosts.
  config.optimizer = "rmsprop"  # 'rmsprop' (the paper's) or 'adam'.
  config.learning_rate = 5e-4
  config.rmsprop_decay = 0.99  # RMSProp's alpha.
  config.rmsprop_eps = 1e-8  # Added outside the root, as Torch7 and PyTorch do.
  config.num_epochs = 200  # May be fractional.
  config.lr_boundaries = (120, 170)  # Epochs at which lr *= lr_decay.
  config.lr_decay = 0.1
  config.steps_per_epoch = -1  # -1: train examples // batch_size.
  # BatchNorm's batch statistics in training: True over the global batch
  # (all devices, one all-reduce per layer); False over each device's share.
  # Newell trained on one GPU, so per-device statistics match his when each
  # device holds a batch of his size. Per device, the running statistics
  # are averaged over the devices after each step.
  config.cross_device_batch_norm = True

  # Evaluation (docs/design.md section 4).
  config.eval_every_epochs = 10  # Also saves the best-by-Mean checkpoint.
  config.eval_batch_size = -1  # -1: batch_size.
  config.flip_test = True  # Average with the mirrored crop's heatmaps.
  config.flip_shift = False  # HRNet/mmpose's one-pixel shift of the flip.
  config.num_pictures = 4  # Validation people drawn at each evaluation.

  # Logging and checkpoints.
  config.log_every_steps = 100  # Training scalars to TensorBoard.
  config.checkpoint_every_steps = 1000
  config.keep_checkpoints = 3  # The last few kept in phase_<p>/checkpoints/.
  config.seed = 0  # Initialisation, data order and augmentation.
  return config
