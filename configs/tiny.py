"""A tiny network on a tiny synthetic set, for tests (seconds per phase).

  python -m acnn_jax.main --config=configs/tiny.py --workdir=/tmp/acnn_tiny
  python -m acnn_jax.main --config=configs/tiny.py:b --workdir=/tmp/acnn_tiny
"""

from configs import default


def get_config(phase="a"):
  config = default.get_config()
  config.phase = phase
  config.num_stacks = 2
  config.features = 16
  config.hourglass_depth = 2
  config.attention_features = 8
  config.synthetic_images = 12
  config.input_size = 64
  config.batch_size = 4
  config.num_epochs = 1
  config.steps_per_epoch = 2
  config.lr_boundaries = ()
  config.learning_rate = 1e-3
  config.eval_every_epochs = 1
  config.eval_batch_size = 8
  config.num_pictures = 1
  config.log_every_steps = 1
  config.checkpoint_every_steps = 1
  config.keep_checkpoints = 2
  config.shuffle_buffer = 16
  config.cache = True
  return config
