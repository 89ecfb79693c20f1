"""`./launch.sh demo`: a forward pass of the full ACNN on a random image.

Prints the output shapes and the parameter counts of both tasks.
"""

import time

from absl import app
import jax

from acnn_jax import models


def main(argv):
  del argv
  model = models.ACNN()
  start = time.time()
  variables = models.init_variables(model, jax.random.PRNGKey(0), 256)
  print(f"init: {time.time() - start:.1f} s")
  image = jax.random.uniform(jax.random.PRNGKey(1), (1, 256, 256, 3))
  start = time.time()
  out = jax.block_until_ready(jax.jit(model.apply)(variables, image))
  print(f"forward (with compile): {time.time() - start:.1f} s")
  for name, value in out._asdict().items():
    print(f"{name:12s} {tuple(value.shape)}")
  params = variables["params"]
  print(f"heatmap parameters:   {models.count_params(params, models.HEATMAP_TASK):,}")
  print(f"attention parameters: {models.count_params(params, models.ATTENTION_TASK):,}")


if __name__ == "__main__":
  app.run(main)
