"""Phase C: heatmaps and attention trained jointly.

Starts from WORKDIR/phase_b/'s last checkpoint (or --config.init_from=PATH).

  python -m acnn_jax.main --config=configs/phase_c.py --workdir=runs/acnn \
      --config.manual_dir=/data/mpii
"""

from configs import default


def get_config():
  config = default.get_config()
  config.phase = "c"
  config.learning_rate = 2.5e-4
  config.num_epochs = 100
  config.lr_boundaries = (50, 70)
  return config
