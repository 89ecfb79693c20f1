"""acnn-jax: ACNN (attention stacked hourglass) for human pose estimation, in JAX.

Research code needs only `acnn_jax.models` (the Flax modules) to call `apply`;
training, evaluation and inference live in their own modules.
"""

__version__ = "0.1.0"
