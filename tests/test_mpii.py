"""Tests of the MPII facts: flip pairs and PCKh's head size."""

import numpy as np
import tensorflow as tf

from acnn_jax import mpii


def test_flip_permutation_swaps_each_pair_and_undoes_itself():
  perm = mpii.FLIP_PERMUTATION
  for right, left in mpii.FLIP_PAIRS:
    assert perm[right] == left and perm[left] == right
  np.testing.assert_array_equal(perm[perm], np.arange(mpii.NUM_JOINTS))
  assert set(mpii.LEFT_JOINTS).isdisjoint(mpii.RIGHT_JOINTS)


def test_head_size_is_0_6_of_the_box_diagonal_in_numpy_and_tensorflow():
  rows = np.array([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 6.0, 8.0]])
  expected = 0.6 * np.array([50.0, 10.0])
  np.testing.assert_allclose(mpii.head_size(rows), expected)
  np.testing.assert_allclose(mpii.head_size(rows[0]), expected[0])
  in_tf = mpii.head_size(tf.constant(rows, tf.float32),
                         xp=tf.experimental.numpy)
  np.testing.assert_allclose(np.asarray(in_tf), expected, rtol=1e-6)
