"""Synthetic MPII: stick people written in MPII's own file layouts.

Tests, smoke runs and CPU demos need MPII-shaped data without the 12 GB
download. `generate` draws pictures of articulated stick people
(`synthetic_scenes`: all 16 MPII joints, human proportions and joint ranges,
several people per image on cluttered backgrounds), annotates them by MPII's
conventions (here: clicked pixels, missing and unlabelled people, visibility
flags in the release's three spellings, head boxes, objpos and scale) and
writes them in MPII's formats (`synthetic_files`), so the real readers are
exercised unchanged:

  D/images/<9 digits>.jpg            always
  layout 'official': D/mpii_human_pose_v1_u12_1.mat, D/valid.h5
  layout 'json':     D/annot/train.json, valid.json, gt_valid.mat
  layout 'both':     both of the above, sharing D/images

The output is a pure function of (seed, num_images, options): same bytes for
the same arguments.

Usage:
  python -m input_pipeline.synthetic --output_dir /tmp/mpii_synth \
      --num_images 300 --seed 0 --layout both
"""

import inspect
import json
import os
import time
from typing import Any, Dict, List, Sequence, Tuple

from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from acnn_jax import cli
from acnn_jax import errors
from acnn_jax import mpii
from input_pipeline import mpii_official
from input_pipeline import synthetic_files
from input_pipeline import synthetic_marker
from input_pipeline import synthetic_scenes

LAYOUTS = ("official", "json", "both")


def _annotate(rng, person: synthetic_scenes.Person, width: int, height: int,
              label_points: bool) -> synthetic_files.Annotation:
  """Applies MPII's annotation conventions to one drawn person."""
  xy = person.joints + 1.0  # MATLAB pixels are 1-based.
  # Annotators clicked pixels (integers); the neck and head top were derived
  # from head boxes in the release and keep sub-pixel values for some people.
  joints = np.round(xy)
  if rng.random() < 0.5:
    for j in synthetic_scenes.HEAD_JOINTS:
      joints[j] = np.round(xy[j], 4)
  inside = ((joints >= 1) & (joints <= [width, height])).all(1)
  annotated = inside & (rng.random(mpii.NUM_JOINTS) > 0.015)
  has_points = label_points and bool(annotated.any())
  if not has_points:
    annotated[:] = False

  # is_visible comes as 1/0, as the string '1'/'0', or empty (which
  # pose-hg-train read as visible).
  is_visible = []
  for j in range(mpii.NUM_JOINTS):
    flag = int(person.visible[j])
    kind = rng.random()
    if kind < 0.05:
      is_visible.append(np.zeros((0, 0), np.uint8))
    elif kind < 0.15:
      is_visible.append(str(flag))
    else:
      is_visible.append(np.array([[flag]], np.uint8))

  neck, top = xy[mpii.UPPER_NECK], xy[mpii.HEAD_TOP]
  centre = (neck + top) / 2
  half = np.linalg.norm(top - neck) * rng.uniform(0.95, 1.1, 2) / 2
  head_box = tuple(int(v) for v in np.round(
      np.concatenate([centre - half, centre + half])))
  torso_mid = (xy[mpii.PELVIS] + xy[mpii.THORAX]) / 2
  objpos = tuple(int(v) for v in np.round(
      torso_mid + rng.normal(0, 0.02 * person.height, 2)))
  scale = float(person.height / mpii.PIXEL_STD * rng.uniform(0.97, 1.03))
  return synthetic_files.Annotation(objpos, scale, head_box, joints,
                                    annotated, is_visible, has_points)


def _make_image(seed: int, index: int, is_train: bool, image_size, max_people
                ) -> Tuple[Image.Image, synthetic_files.ImageRecord]:
  """Renders and annotates image `index`; independent of the other images."""
  rng = np.random.default_rng([seed, 0, index])
  name = f"{int(rng.integers(1, 10**9)):09d}.jpg"
  picture, drawn = synthetic_scenes.render(rng, image_size, max_people)
  # Shuffle so the main person is not always the last annorect.
  order = rng.permutation(len(drawn))
  drawn = [drawn[k] for k in order]
  people = []
  for person in drawn:
    # MPII left some people of training images without points.
    label_points = person.main or rng.random() < 0.75
    if rng.random() < 0.03:
      label_points = False
    people.append(_annotate(rng, person, picture.width, picture.height,
                            label_points))
  return picture, synthetic_files.ImageRecord(name, is_train, people)


def _splits(seed: int, num_images: int, test_fraction: float) -> np.ndarray:
  """img_train flags: ~test_fraction test images, at least one of each."""
  is_test = np.random.default_rng([seed, 1]).random(num_images) < test_fraction
  if num_images >= 2 and test_fraction > 0 and not is_test.any():
    is_test[-1] = True
  if num_images >= 1 and is_test.all():
    is_test[0] = False
  return ~is_test


def _make_unique(record: synthetic_files.ImageRecord, seen: set,
                 rng: np.random.Generator) -> None:
  """Renames a (rare) colliding file name, deterministically."""
  while record.name in seen:
    record.name = f"{int(rng.integers(1, 10**9)):09d}.jpg"
  seen.add(record.name)


def _choose_valid(seed: int, records: Sequence[synthetic_files.ImageRecord],
                  valid_fraction: float) -> List[Tuple[int, int]]:
  """~valid_fraction of the annotated train people, as sorted pairs.

  Returns:
    0-based (image index, person index) pairs, at least one when possible.
  """
  candidates = [(i, p) for i, r in enumerate(records) if r.is_train
                for p, a in enumerate(r.people) if a.has_points]
  if not candidates or valid_fraction <= 0:
    return []
  count = min(len(candidates), max(1, round(valid_fraction * len(candidates))))
  chosen = np.random.default_rng([seed, 2]).choice(len(candidates), count,
                                                   replace=False)
  return sorted(candidates[k] for k in chosen)


def generate(output_dir: str, num_images: int, seed: int = 0,
             layout: str = "official", valid_fraction: float = 0.2,
             image_size: Tuple[int, int] = (320, 640),
             test_fraction: float = 0.15, max_people: int = 4,
             jpeg_quality: int = 90) -> Dict[str, Any]:
  """Writes a synthetic MPII data set.

  Args:
    output_dir: directory to write into: new, empty, or written by this
      function before (it holds `synthetic_marker.MARKER`).
    num_images: number of images.
    seed: the output is a deterministic function of the arguments.
    layout: 'official' (release .mat + valid.h5), 'json' (HRNet annot/*.json +
      annot/gt_valid.mat) or 'both'; images always go to output_dir/images.
    valid_fraction: fraction of the annotated people of training images put
      in the validation split (at least one when there are any).
    image_size: (min, max) image width in pixels; heights are 0.6 to 1 x the
      width.
    test_fraction: fraction of images marked img_train = 0 (no points), at
      least one when num_images >= 2.
    max_people: people per image are 1 to this (at most 4).
    jpeg_quality: JPEG quality of the images.

  Returns:
    A summary dict: output_dir, layout, images, train_images, test_images,
    people, annotated_people, train_people, valid_people, seconds.

  Raises:
    errors.InputError: for an unknown layout or nonsensical sizes (a
      ValueError), or an `output_dir` that holds other files
      (`synthetic_marker.claim`: a user's data is never written into).
  """
  if layout not in LAYOUTS:
    raise errors.InputError(f"layout must be one of {LAYOUTS}, got "
                            f"{layout!r}.")
  if num_images < 1 or not 1 <= max_people <= 4:
    raise errors.InputError("need num_images >= 1 and 1 <= max_people <= 4, "
                            f"got {num_images} and {max_people}.")
  start = time.perf_counter()
  settings = settings_of(num_images, seed, layout=layout,
                         valid_fraction=valid_fraction, image_size=image_size,
                         test_fraction=test_fraction, max_people=max_people,
                         jpeg_quality=jpeg_quality)
  synthetic_marker.claim(output_dir, settings)
  image_dir = os.path.join(output_dir, mpii_official.IMAGES_DIR)
  os.makedirs(image_dir, exist_ok=True)
  is_train = _splits(seed, num_images, test_fraction)

  records, seen, rename_rng = [], set(), np.random.default_rng([seed, 3])
  for index in range(num_images):
    picture, record = _make_image(seed, index, bool(is_train[index]),
                                  tuple(image_size), max_people)
    _make_unique(record, seen, rename_rng)
    records.append(record)
    picture.save(os.path.join(image_dir, record.name), quality=jpeg_quality)

  valid_pairs = _choose_valid(seed, records, valid_fraction)
  if layout in ("official", "both"):
    synthetic_files.write_official(output_dir, records, valid_pairs, seed)
  if layout in ("json", "both"):
    synthetic_files.write_json(output_dir, records, valid_pairs, seed)
  synthetic_marker.write(output_dir, settings, complete=True)
  return _summary(output_dir, layout, records, valid_pairs,
                  time.perf_counter() - start)


def settings_of(num_images: int, seed: int, **options) -> Dict[str, Any]:
  """The arguments of `generate` that make a set, as its marker records
  them (JSON values; omitted options take `generate`'s defaults)."""
  defaults = {name: parameter.default for name, parameter in
              inspect.signature(generate).parameters.items()
              if parameter.default is not inspect.Parameter.empty}
  settings = {**defaults, **options, "num_images": int(num_images),
              "seed": int(seed)}
  return json.loads(json.dumps(settings))


def _summary(output_dir, layout, records, valid_pairs, seconds):
  train_people = sum(a.has_points for r in records if r.is_train
                     for a in r.people)
  return {
      "output_dir": output_dir, "layout": layout, "images": len(records),
      "train_images": sum(r.is_train for r in records),
      "test_images": sum(not r.is_train for r in records),
      "people": sum(len(r.people) for r in records),
      "annotated_people": train_people,
      "train_people": train_people - len(valid_pairs),
      "valid_people": len(valid_pairs),
      "seconds": round(seconds, 2),
  }


FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("output_dir", None, "Directory to write the data into.")
  flags.DEFINE_integer("num_images", 300, "Number of images.")
  flags.DEFINE_integer("seed", 0, "Random seed; same seed, same bytes.")
  flags.DEFINE_enum("layout", "official", LAYOUTS,
                    "official: release .mat + valid.h5; json: HRNet "
                    "annot/*.json + gt_valid.mat; both: both.")
  flags.DEFINE_float("valid_fraction", 0.2,
                     "Fraction of annotated training people for validation.")
  flags.mark_flag_as_required("output_dir")


def main(argv: Sequence[str]) -> None:
  del argv  # cli.run allows none.
  summary = generate(FLAGS.output_dir, FLAGS.num_images, seed=FLAGS.seed,
                     layout=FLAGS.layout, valid_fraction=FLAGS.valid_fraction)
  logging.info("Synthetic MPII written: %s", summary)
  print(json.dumps(summary))


if __name__ == "__main__":
  cli.run(main, define_flags)
