"""Tests of the pictures: sizes, dtypes, colours, masks and PNG files."""

import numpy as np
import pytest
from PIL import Image

from acnn_jax import mpii
from acnn_jax import visualize

# A standing person on a 100 x 120 (H x W) picture, facing the viewer (their
# right side on the image's left).
POSE = np.array([
    [40, 90], [42, 72], [48, 55], [72, 55], [78, 72], [80, 90],  # legs
    [60, 55], [60, 30], [60, 24], [60, 10],  # pelvis .. head top
    [25, 50], [32, 40], [45, 30], [75, 30], [88, 40], [95, 50],  # arms
], np.float32)


def _midpoint(a, b):
  x, y = (POSE[a] + POSE[b]) / 2
  return int(round(y)), int(round(x))


def test_draw_skeleton_colours_left_and_right_limbs_differently():
  image = np.zeros((100, 120, 3), np.uint8)
  drawn = visualize.draw_skeleton(image, POSE)
  assert drawn.shape == image.shape and drawn.dtype == np.uint8
  assert drawn is not image and image.max() == 0  # input untouched
  right = drawn[_midpoint(mpii.R_KNEE, mpii.R_ANKLE)]
  left = drawn[_midpoint(mpii.L_KNEE, mpii.L_ANKLE)]
  spine = drawn[_midpoint(mpii.THORAX, mpii.PELVIS)]
  np.testing.assert_array_equal(right, visualize.SIDE_COLORS["right"])
  np.testing.assert_array_equal(left, visualize.SIDE_COLORS["left"])
  np.testing.assert_array_equal(spine, visualize.SIDE_COLORS["center"])
  assert tuple(left) != tuple(right)
  # Joints are drawn as dots in their side's colour.
  x, y = POSE[mpii.L_WRIST].astype(int)
  np.testing.assert_array_equal(drawn[y, x], visualize.SIDE_COLORS["left"])


def test_draw_skeleton_leaves_out_unconfident_joints():
  image = np.zeros((100, 120, 3), np.uint8)
  confidences = np.ones(16)
  confidences[mpii.R_ANKLE] = 0.05
  drawn = visualize.draw_skeleton(image, POSE, confidences, threshold=0.2)
  assert drawn[_midpoint(mpii.R_KNEE, mpii.R_ANKLE)].max() == 0
  x, y = POSE[mpii.R_ANKLE].astype(int)
  assert drawn[y, x].max() == 0
  assert drawn[_midpoint(mpii.L_KNEE, mpii.L_ANKLE)].max() > 0
  everything = visualize.draw_skeleton(image, POSE, confidences,
                                       threshold=None)
  assert everything[y, x].max() > 0


def test_heatmap_overlay_and_grid_sizes():
  crop = np.full((64, 64, 3), 100, np.uint8)
  heatmaps = np.zeros((16, 16, 16), np.float32)
  heatmaps[8, 4, 3] = 1.0  # joint 3 peaks at heatmap (x, y) = (4, 8)
  overlay = visualize.heatmap_overlay(crop, heatmaps[..., 3])
  assert overlay.shape == (64, 64, 3) and overlay.dtype == np.uint8
  # Heatmap pixel (4, 8) covers crop pixels 16..19 x 32..35.
  assert not np.array_equal(overlay[33, 17], crop[33, 17])
  np.testing.assert_array_equal(overlay[5, 60], crop[5, 60])
  grid = visualize.heatmap_grid(crop, heatmaps)
  assert grid.shape == (4 * 64, 4 * 64, 3) and grid.dtype == np.uint8
  with_max = visualize.heatmap_grid(crop, heatmaps, with_max=True)
  assert with_max.shape == (5 * 64, 4 * 64, 3)


def test_attention_overlay_blacks_out_discarded_regions():
  crop = np.full((64, 64, 3), 200, np.uint8)
  masks = np.ones((3, 16, 16, 1), np.float32)
  masks[1, :, :8] = 0.2  # stage 2 discards the left half
  masks[2] = 0.49  # stage 3 discards everything
  panels = visualize.attention_overlay(crop, masks)
  assert panels.shape == (64, 3 * 64, 3) and panels.dtype == np.uint8
  first, second, third = np.split(panels, 3, axis=1)
  assert first[40:, :].min() == 200  # below the label: all kept
  assert second[40:, :32].max() == 0 and second[40:, 32:].min() == 200
  assert third[40:].max() == 0
  # (S, h, w) masks without the channel axis work too.
  same = visualize.attention_overlay(crop, masks[..., 0])
  np.testing.assert_array_equal(same, panels)


def test_prediction_figure_and_png(tmp_path):
  image = np.random.RandomState(0).randint(0, 255, (90, 60, 3)).astype(
      np.uint8)
  crop = np.random.RandomState(1).randint(0, 255, (64, 64, 3)).astype(
      np.uint8)
  figure = visualize.prediction_figure(
      image, POSE * 0.5, np.ones(16), crop=crop, crop_keypoints=POSE * 0.5,
      masks=np.ones((2, 16, 16)), heatmaps=np.zeros((16, 16, 16)),
      height=128)
  # Original resized to 128 rows (60 -> 85 columns), crop, heatmaps, 2 masks.
  assert figure.shape == (128, 85 + 4 * 128, 3)
  assert figure.dtype == np.uint8
  with_grid = visualize.prediction_figure(
      image, POSE * 0.5, crop=crop, heatmaps=np.zeros((16, 16, 16)),
      height=128, show_grid=True)
  assert with_grid.shape == (128 + 4 * 128, max(85 + 2 * 128, 4 * 128), 3)
  path = tmp_path / "sub" / "figure.png"
  visualize.save_png(figure, path)
  assert path.stat().st_size > 0
  np.testing.assert_array_equal(np.asarray(Image.open(path)), figure)


@pytest.mark.parametrize("image", [
    np.zeros((10, 12), np.uint8),
    np.zeros((10, 12, 4), np.uint8),
    np.full((10, 12, 3), 0.5, np.float32),
])
def test_other_image_layouts_become_rgb_uint8(image):
  drawn = visualize.draw_skeleton(image, np.full((16, 2), np.nan))
  assert drawn.shape == (10, 12, 3) and drawn.dtype == np.uint8
  if image.dtype == np.float32:
    assert drawn.max() == 128


class _Writer:
  """Records what clu's writer would log."""

  def __init__(self):
    self.images = []

  def write_images(self, step, images):
    self.images.append((step, images))


def test_write_pictures_saves_pngs_and_logs_one_padded_stack(tmp_path):
  pictures = [np.full((10, 20, 3), 200, np.uint8),
              np.full((16, 8, 3), 50, np.uint8)]
  writer = _Writer()
  visualize.write_pictures(writer, str(tmp_path / "pictures"), 7, pictures)
  assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == [
      "step7_0.png", "step7_1.png"]
  step, images = writer.images[0]
  stack = images["validation/predictions"]
  assert step == 7 and stack.shape == (2, 16, 20, 3)
  np.testing.assert_array_equal(stack[1, :16, :8], pictures[1])
  assert (stack[1, :, 8:] == 0).all()
  visualize.write_pictures(writer, str(tmp_path / "none"), 8, [])
  assert len(writer.images) == 1 and not (tmp_path / "none").exists()


def _panels(figure, count, size):
  """Splits an `attention_figure` row into its image panels (below the
  captions) and caption strips, from the grey gap its width implies."""
  gap = (figure.shape[1] - count * size) // (count - 1)
  starts = [i * (size + gap) for i in range(count)]
  images = [figure[-size:, s:s + size] for s in starts]
  captions = [figure[:-size, s:s + size] for s in starts]
  return images, captions


def test_attention_figure_shows_the_crop_then_each_gating_mask():
  crop = np.full((64, 64, 3), 200, np.uint8)
  masks = np.ones((4, 16, 16, 1), np.float32)
  figure = visualize.attention_figure(crop, masks, panel_size=96)
  assert figure.dtype == np.uint8 and figure.ndim == 3
  # The crop and M1 .. M3: the last mask gates nothing and is left out.
  width = figure.shape[1]
  assert 0 < (width - 4 * 96) // 3 <= 8 and (width - 4 * 96) % 3 == 0
  assert 96 < figure.shape[0] < 96 + 40  # panels and a thin caption strip
  images, captions = _panels(figure, 4, 96)
  for image in images:  # masks of one keep the crop exactly
    assert (image == 200).all()
  for caption in captions:  # every panel is labelled (white text on black)
    assert caption.max() > 200 and np.median(caption) == 0
  masks[-1] = 0.0
  np.testing.assert_array_equal(
      visualize.attention_figure(crop, masks, panel_size=96), figure)
  # (S, h, w) masks work too; other ranks are refused.
  np.testing.assert_array_equal(
      visualize.attention_figure(crop, masks[..., 0], panel_size=96), figure)
  with pytest.raises(ValueError, match="masks"):
    visualize.attention_figure(crop, masks[0, ..., 0], panel_size=96)


def test_attention_figure_darkens_only_what_the_mask_discards():
  crop = np.full((64, 64, 3), 200, np.uint8)
  masks = np.ones((3, 16, 16), np.float32)
  masks[0, :, :8] = 0.0  # M1 discards the left half
  images, _ = _panels(visualize.attention_figure(crop, masks, panel_size=96),
                      3, 96)
  # Mask pixel 8 starts at crop pixel 32, panel pixel 48: left of it black,
  # then two pixels of the 0.5 contour on the kept side, then the crop.
  assert images[1][:, :48].max() == 0
  assert (images[1][:, 48:50] == visualize.CONTOUR_COLOR).all()
  assert (images[1][:, 50:] == 200).all()
  assert (images[2] == 200).all()  # M2 keeps everything


def test_attention_figure_tells_soft_masks_apart():
  crop = np.full((64, 64, 3), 200, np.uint8)
  low = visualize.attention_figure(crop, np.full((2, 16, 16), 0.3),
                                    panel_size=96)
  high = visualize.attention_figure(crop, np.full((2, 16, 16), 0.98),
                                     panel_size=96)
  (low_crop, low_mask), (low_title, low_label) = _panels(low, 2, 96)
  (high_crop, high_mask), (high_title, high_label) = _panels(high, 2, 96)
  np.testing.assert_array_equal(low_crop, high_crop)
  np.testing.assert_array_equal(low_title, high_title)
  # Brightness follows the mask (no thresholding) and the labels differ.
  assert abs(float(low_mask.mean()) - 0.3 * 200) < 2
  assert abs(float(high_mask.mean()) - 0.98 * 200) < 2
  assert not np.array_equal(low_label, high_label)
  titled = visualize.attention_figure(crop, np.full((2, 16, 16), 0.3),
                                      panel_size=96, title="person 3")
  assert not np.array_equal(_panels(titled, 2, 96)[1][0], low_title)


def test_attention_figure_draws_the_skeleton_on_every_panel():
  crop = np.full((128, 128, 3), 100, np.uint8)
  masks = np.zeros((2, 32, 32), np.float32)  # M1 discards everything
  figure = visualize.attention_figure(crop, masks, keypoints=POSE,
                                      panel_size=128)
  images, _ = _panels(figure, 2, 128)
  y, x = _midpoint(mpii.L_KNEE, mpii.L_ANKLE)
  for image in images:
    np.testing.assert_array_equal(image[y, x], visualize.SIDE_COLORS["left"])
  assert images[1][5, 5].max() == 0  # away from the skeleton: black
  # Keypoints follow the crop when panels are larger than it.
  larger = visualize.attention_figure(crop, masks, keypoints=POSE,
                                      panel_size=256)
  images, _ = _panels(larger, 2, 256)
  np.testing.assert_array_equal(images[1][2 * y, 2 * x],
                                visualize.SIDE_COLORS["left"])


def test_attention_grid_stacks_rows_of_different_widths():
  rows = [np.full((10, 30, 3), 200, np.uint8),
          np.full((12, 20, 3), 100, np.uint8)]
  grid = visualize.attention_grid(rows, gap=2)
  assert grid.shape == (10 + 2 + 12, 30, 3) and grid.dtype == np.uint8
  np.testing.assert_array_equal(grid[:10], rows[0])
  np.testing.assert_array_equal(grid[12:, :20], rows[1])
  assert (grid[12:, 20:] == 0).all()
  with pytest.raises(ValueError):
    visualize.attention_grid([])
