"""The paper's three phases on a TPU with 8 cores (Colab's TPU runtime).

Phase p takes the paper's recipe of configs/phase_<p>.py (network, RMSProp,
learning rates, epochs and their decay) and changes two fields:

* dtype bfloat16: the TPU's matrix units compute in bfloat16 (parameters and
  the optimizer stay float32; `models.ACNN.dtype`), which also halves the
  activations that the backward pass keeps.
* batch_size 64, a global batch of 8 per core on 8 cores. The paper's 12
  does not split over 8 cores (`configuration.validate` needs a multiple of
  the device count), and 16 (2 per core) would leave the cores mostly idle
  on 64x64 feature maps. 8 per core is sized for the smallest TPU core
  (v2: 8 GiB): 4 stacks x 8 images is fewer stage-images per step than
  Newell's 8 stacks x 6 on a 12 GB GPU in float32, at half the bytes each
  (an estimate: not yet measured on a TPU). 64 also splits over 1, 2 and 4
  devices (a single-chip v5e, GPUs); lower it with --config.batch_size if
  a core runs out of memory.

The epochs and learning rates stay the paper's, so an epoch takes 5.3x fewer
steps. If the PCKh lags the paper's, try a larger rate (e.g. x2.3, the
square root of 64/12) with --config.learning_rate.

  python -m acnn_jax.main --config=configs/tpu.py:a --workdir=runs/tpu \
      --config.manual_dir=/data/mpii
  python -m acnn_jax.main --config=configs/tpu.py:b --workdir=runs/tpu ...
  python -m acnn_jax.main --config=configs/tpu.py:c --workdir=runs/tpu ...

notebooks/acnn_jax_colab.ipynb uses it on a TPU runtime.
"""

from configs import phase_a
from configs import phase_b
from configs import phase_c

# The paper's recipe of each phase.
PHASES = {"a": phase_a, "b": phase_b, "c": phase_c}
CORES = 8
PER_CORE_BATCH = 8


def get_config(phase="a"):
  config = PHASES[phase].get_config()
  config.dtype = "bfloat16"
  config.batch_size = PER_CORE_BATCH * CORES
  return config
