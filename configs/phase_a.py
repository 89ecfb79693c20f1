"""Phase A: the heatmap network, with every attention mask frozen at one.

  python -m acnn_jax.main --config=configs/phase_a.py --workdir=runs/acnn \
      --config.manual_dir=/data/mpii
"""

from configs import default


def get_config():
  config = default.get_config()
  config.phase = "a"
  config.learning_rate = 5e-4
  config.num_epochs = 200
  config.lr_boundaries = (120, 170)
  return config
