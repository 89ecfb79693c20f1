"""Phase B: the attention heads, with the heatmap network frozen.

Starts from WORKDIR/phase_a/'s last checkpoint (or --config.init_from=PATH).

  python -m acnn_jax.main --config=configs/phase_b.py --workdir=runs/acnn \
      --config.manual_dir=/data/mpii
"""

from configs import default


def get_config():
  config = default.get_config()
  config.phase = "b"
  config.learning_rate = 2.5e-4
  config.num_epochs = 200
  config.lr_boundaries = (120, 170)
  return config
