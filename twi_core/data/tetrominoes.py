"""Tetrominoes: the authors' generator (``new_tetronimoes``), rule for rule.

Each 64x64 RGB image holds 1-5 Tetris pieces of five types on a black background; the mask holds the piece type
(1 = I, 2 = O, 3 = T, 4 = S/Z, 5 = J/L) and 0 for background, so there are 6 classes.

The generator follows the authors' ``data_scripts/create_tetronimoes.py`` (specification:
``reference_implementation.md`` §4.1) with NumPy's legacy ``RandomState`` seeded 42, and its output is **byte-identical
to the authors' arrays**: train, val and test images (uint8) and masks (as int64, the authors' dtype) have the md5
fingerprints of :data:`AUTHORS_MD5` (``tests/data/test_data.py`` checks all six). Two details decide the stream: the mirror
flip is taken when ``rand() < 0.5``, and the colour is drawn with ``randint(0, 256, size=3, dtype=np.uint8)``, whose
8-bit draws consume the generator differently from the default int64 draw. Generator version 1 (before December 2026)
missed both and produced different data; every run trained on it is stale. Where the authors' unbounded placement loop
would never end (no room left for a piece), ours leaves the piece out after 10,000 tries; at seed 42 this never happens
in the three splits (the fingerprints would differ). Per image:

1. ``k ~ U{1..5}`` pieces; a pool of the five types repeated ``k // 5 + 1`` times is shuffled and the first ``k`` taken
   (distinct types for ``k <= 4``, duplicates possible for ``k = 5``).
2. Per piece: rotate by ``90° * U{0..3}``; S/Z and J/L are mirrored left-right when ``rand() < 0.5``; every cell is
   scaled to 7x7 px; an RGB colour is drawn uniformly from ``{0..255}^3`` as three uint8 draws.
3. Placement by rejection sampling (no attempt limit): top-left ``row ~ U[0, 64 - h)``, ``col ~ U[0, 64 - w)``
   (exclusive bounds, so row 63 and column 63 are never foreground), accepted when the piece's bounding box holds no
   earlier piece pixel (pieces may touch).
4. The cell "texture": the 1-px border ring of every 7x7 cell gets ``colour + colour // 2`` **in uint8 arithmetic**, so
   it wraps modulo 256 (borders are brighter for ``c <= 170`` and dark for ``c >= 171``). This is the authors' behaviour
   (their comment says "slightly darker"); ``wrap_texture=False`` saturates at 255 instead.

Splits are drawn in order train -> val -> test from one stream seeded 42, with sizes 10,000 / 1,000 / 1,000.
Layouts (which pieces go where) are drawn first; painting is vectorised afterwards, so a val/test prefix only needs the
cheap layout pass over the preceding splits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _cache

__all__ = ["IMAGE_SIZE", "CELL", "CLASS_NAMES", "SPLIT_SIZES", "DEFAULT_SEED", "GENERATOR_VERSION", "AUTHORS_MD5",
           "SHAPES", "generate", "generate_layouts", "paint"]

IMAGE_SIZE = 64          # pixels per side (the authors' fixed canvas)
CELL = 7                 # pixels per tetromino cell
DEFAULT_SEED = 42        # the authors' effective seed
GENERATOR_VERSION = 2    # bump when the output for a given seed changes
SPLIT_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}
CLASS_NAMES = ("background", "I", "O", "T", "S/Z", "J/L")

#: Unit-cell templates by label, and whether the type may be mirrored (authors' table, §4.1).
SHAPES: dict[int, tuple[np.ndarray, bool]] = {
    1: (np.array([[1, 1, 1, 1]], dtype=np.uint8), False),           # I
    2: (np.array([[1, 1], [1, 1]], dtype=np.uint8), False),         # O
    3: (np.array([[0, 1, 0], [1, 1, 1]], dtype=np.uint8), False),   # T
    4: (np.array([[0, 1, 1], [1, 1, 0]], dtype=np.uint8), True),    # S/Z
    5: (np.array([[1, 0, 0], [1, 1, 1]], dtype=np.uint8), True),    # J/L
}

#: md5 of ``array.tobytes()`` for the authors' arrays at seed 42 (images uint8 (n, 64, 64, 3), masks int64 (n, 64, 64)),
#: from ``reference_implementation.md`` §4.1.
AUTHORS_MD5 = {
    "train": ("3596348ffabb5ae9d223df6f66b0d09f", "7d10a18f90e8ddb0129374f44510f208"),
    "val": ("51ee9cf9fae1efdfa086fcd32f1dd8db", "f6b9ada5d8814d1b4c4ba501ff9dd5b3"),
    "test": ("343a4477475a4c928afc93131a02e3f9", "a69b4548b9ea378812e3b08fc446984d"),
}

_ORDER = ("train", "val", "test")
_SHIPPED_STATES = Path(__file__).resolve().parents[1] / "resources"   # RNG states at the val/test starts, seed 42


class Piece(NamedTuple):
    """One placed piece: its label, unit-cell pattern after rotation/mirroring, top-left cell position in pixels, colour."""

    label: int
    cells: np.ndarray   # (rows, cols) uint8 unit-cell pattern
    top: int
    left: int
    colour: np.ndarray  # (3,) uint8


def _variants() -> dict[tuple[int, int, bool], tuple[np.ndarray, np.ndarray]]:
    """Unit-cell pattern and 7x-scaled boolean footprint for every (label, quarter turns, mirrored)."""
    out = {}
    block = np.ones((CELL, CELL), dtype=np.uint8)
    for label, (template, _) in SHAPES.items():
        for turns in range(4):
            for flip in (False, True):
                cells = np.rot90(template, turns)
                cells = np.ascontiguousarray(np.fliplr(cells) if flip else cells)
                out[label, turns, flip] = cells, np.kron(cells, block).astype(bool)
    return out


_VARIANTS = _variants()
_MAX_ATTEMPTS = 10_000  # the authors have no limit; a piece that finds no room in this many tries is left out


def _draw_image(rng: np.random.RandomState, occupied: np.ndarray) -> list[Piece]:
    """Draw one image's pieces, consuming ``rng`` exactly as the authors' script does."""
    occupied[:] = False
    k = rng.randint(1, 6)
    pool = list(SHAPES) * (k // 5 + 1)
    rng.shuffle(pool)
    pieces = []
    for label in pool[:k]:
        mirror = SHAPES[label][1]
        turns = rng.randint(0, 4)
        # The authors flip on ``rand() < 0.5``; the comparison decides which half of the draws mirror.
        flip = bool(mirror and rng.rand() < 0.5)
        cells, footprint = _VARIANTS[label, turns, flip]
        h, w = footprint.shape
        # ``dtype=np.uint8`` matters: the legacy generator then serves 8-bit draws from a buffered 32-bit word, so the
        # stream is consumed differently from the default int64 draw (and every later image would differ).
        colour = rng.randint(0, 256, size=3, dtype=np.uint8)
        for _ in range(_MAX_ATTEMPTS):  # rejection sampling, as the authors'
            top = rng.randint(0, IMAGE_SIZE - h)
            left = rng.randint(0, IMAGE_SIZE - w)
            if not occupied[top:top + h, left:left + w].any():
                break
        else:
            continue  # no room left for this piece (the authors' loop would never end here)
        # Occupancy is tracked per pixel of the piece (not its box): later boxes may cover empty corners of this one.
        occupied[top:top + h, left:left + w] |= footprint
        pieces.append(Piece(label, cells, top, left, colour))
    return pieces


def generate_layouts(n: int, *, rng: np.random.RandomState) -> list[list[Piece]]:
    """Draw the piece layouts of ``n`` consecutive images from ``rng`` (advancing it)."""
    occupied = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    return [_draw_image(rng, occupied) for _ in range(n)]


def _cell_texture(colour: np.ndarray, *, wrap_texture: bool) -> np.ndarray:
    """The 7x7x3 uint8 look of one cell: interior ``c``, 1-px border ``c + c // 2`` (wrapping or saturating)."""
    c = colour.astype(np.int64)
    border = c + c // 2
    border = border % 256 if wrap_texture else np.minimum(border, 255)
    tile = np.empty((CELL, CELL, 3), dtype=np.uint8)
    tile[:] = border.astype(np.uint8)
    tile[1:-1, 1:-1] = colour
    return tile


def paint(layouts: list[list[Piece]], *, wrap_texture: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Render layouts into images and masks.

    Returns
    -------
    images : np.ndarray
        uint8 ``(n, 64, 64, 3)``.
    masks : np.ndarray
        uint8 ``(n, 64, 64)`` with labels 0..5.
    """
    n = len(layouts)
    images = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    masks = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i, pieces in enumerate(layouts):
        for p in pieces:
            tile = _cell_texture(p.colour, wrap_texture=wrap_texture)
            rows, cols = np.nonzero(p.cells)
            for r, c in zip(rows, cols):
                y, x = p.top + CELL * r, p.left + CELL * c
                images[i, y:y + CELL, x:x + CELL] = tile
                masks[i, y:y + CELL, x:x + CELL] = p.label
    return images, masks


def _start_state(split: str, seed: int, state_dir) -> np.random.RandomState:
    """The generator positioned at the first image of ``split`` (replaying earlier splits' layouts if needed).

    With ``state_dir``, the ``RandomState`` at the start of val and test is cached there (a few KiB, hash-checked), so
    later val/test loads skip the replay.
    """
    rng = np.random.RandomState(seed)
    if split == _ORDER[0]:
        return rng
    def state_file(name: str) -> Path | None:
        if state_dir is None:
            return None
        return Path(state_dir) / f"tetrominoes-rngstate_seed-{seed}_v-{GENERATOR_VERSION}_split-{name}.npz"

    saved = _cache.read_arrays(state_file(split)) if state_dir is not None else None
    if saved is None:
        # states shipped with the package (default seed), so that a fresh cache need not replay 10,000 layouts
        shipped = _SHIPPED_STATES / f"tetrominoes-rngstate_seed-{seed}_v-{GENERATOR_VERSION}_split-{split}.npz"
        saved = _cache.read_arrays(shipped, delete_corrupt=False) if shipped.exists() else None
    if saved is not None:
        rng.set_state(("MT19937", saved["keys"], int(saved["pos"]), int(saved["has_gauss"]), float(saved["gauss"])))
        return rng
    for position, earlier in enumerate(_ORDER[:_ORDER.index(split)]):
        generate_layouts(SPLIT_SIZES[earlier], rng=rng)
        path = state_file(_ORDER[position + 1])
        if path is not None:
            _, keys, pos, has_gauss, gauss = rng.get_state()
            _cache.write_arrays(path, {"keys": keys, "pos": np.array(pos), "has_gauss": np.array(has_gauss),
                                       "gauss": np.array(gauss)})
    return rng


def generate(split: str, n: int, *, seed: int = DEFAULT_SEED, wrap_texture: bool = True,
             state_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a split, following the authors' generator for ``seed``.

    The stream is seeded once and runs train -> val -> test, so a val or test prefix first replays the layouts (not the
    painting) of the preceding full splits, or restores the stream's state cached in ``state_dir``.

    Returns
    -------
    images : np.ndarray
        uint8 ``(n, 64, 64, 3)``.
    masks : np.ndarray
        uint8 ``(n, 64, 64)``, labels 0..5 (background, I, O, T, S/Z, J/L).
    """
    rng = _start_state(split, seed, state_dir)
    return paint(generate_layouts(n, rng=rng), wrap_texture=wrap_texture)
