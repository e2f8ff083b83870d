"""Polygons: white regular polygons on black, classes = number of sides (no authors' generator exists).

The paper (§3, "Polygons") describes "synthetic grayscale images with 1 to 2 polygons, each with 3 to 6 edges roughly
circumscribed within circles with radii of 15 to 20 pixels"; the authors' generator is not public
(``reference_implementation.md`` §4.4). Our exact rules:

- Canvas 64x64, one channel, background 0, polygons 1 (white). 64 px matches Tetrominoes and keeps the NWM cheap.
- Each polygon is regular: ``sides ~ U{3..6}``, circumradius ``r ~ U[15, 20]`` px (continuous), rotation
  ``~ U[0, 2π)``, centre uniform over the positions that keep every vertex inside ``[0, 63]^2``.
- Rasterised with :func:`skimage.draw.polygon` (pixels whose centres fall inside the vertex polygon).
- ``polygons``: ``count ~ U{1, 2}``. For two polygons, sides and radii are drawn first, then up to 200 joint
  (centre, rotation) pairs; the first pair whose polygons are at least 1.5 px apart (separating-axis test, so their
  pixels neither overlap nor touch, even diagonally) is used. If none is, the image keeps only the first polygon:
  two large polygons often cannot both fit in 64 px, so about one two-polygon draw in six ends with one, and about
  42 % of the images hold two polygons (measured on 1,000 training images; the appendix page shows the counts).
- ``polygons_single``: exactly one polygon (the frequency figures).
- Labels: sides - 2, so triangle 1, quadrilateral 2, pentagon 3, hexagon 4, background 0 (5 classes).

Every split has its own stream ``numpy.random.default_rng([seed, split_index, variant])`` consumed image by image, so
the first ``n`` images do not depend on how many are generated.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import polygon as _raster_polygon

__all__ = ["IMAGE_SIZE", "CLASS_NAMES", "SPLIT_SIZES", "DEFAULT_SEED", "GENERATOR_VERSION", "RADIUS", "SIDES",
           "MAX_TRIES", "generate", "regular_polygon"]

IMAGE_SIZE = 64                  # pixels per side (our choice; see the module docstring)
RADIUS = (15.0, 20.0)            # circumradius range in pixels, from the paper
SIDES = (3, 4, 5, 6)             # number of edges; label = sides - 2
MAX_TRIES = 200                  # placement tries for the second polygon (as Multi-MNIST's generator)
DEFAULT_SEED = 0
GENERATOR_VERSION = 1
SPLIT_SIZES = {"train": 10_000, "val": 1_000, "test": 1_000}
CLASS_NAMES = ("background", "triangle", "quadrilateral", "pentagon", "hexagon")

_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
_VARIANT = {1: 1, 2: 2}          # stream id by maximum polygon count (single vs 1-2)


def regular_polygon(*, sides: int, radius: float, centre: tuple[float, float], angle: float,
                    size: int = IMAGE_SIZE) -> np.ndarray:
    """Boolean ``(size, size)`` raster of a regular polygon.

    Vertex ``j`` sits at ``centre + radius * (sin θ_j, cos θ_j)`` (row, column) with ``θ_j = angle + 2πj / sides``.

    Examples
    --------
    >>> sq = regular_polygon(sides=4, radius=10, centre=(32, 32), angle=np.pi / 4)  # side 14.14 px, rows 24.9..39.1
    >>> int(sq.sum()), int(sq[25:40, 25:40].sum())   # the 15 x 15 pixel centres inside
    (225, 225)
    """
    theta = angle + 2 * np.pi * np.arange(sides) / sides
    rows = centre[0] + radius * np.sin(theta)
    cols = centre[1] + radius * np.cos(theta)
    out = np.zeros((size, size), dtype=bool)
    rr, cc = _raster_polygon(rows, cols, shape=(size, size))
    out[rr, cc] = True
    return out


def _vertices(sides: int, radius, centre, angle) -> np.ndarray:
    """Vertices ``(..., sides, 2)`` as (row, col) for broadcastable radius, centre ``(..., 2)`` and angle."""
    theta = np.asarray(angle)[..., None] + 2 * np.pi * np.arange(sides) / sides        # (..., sides)
    unit = np.stack([np.sin(theta), np.cos(theta)], axis=-1)                         # (..., sides, 2)
    return np.asarray(centre)[..., None, :] + np.asarray(radius)[..., None, None] * unit


def _separation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest gap (px) between convex polygons ``a (T, sa, 2)`` and ``b (T, sb, 2)`` over their edge normals.

    By the separating-axis theorem two convex polygons are disjoint iff some edge normal separates them; a gap of at
    least 1.5 px also keeps their raster pixels apart (8-neighbours are at most sqrt(2) apart).
    """
    gaps = []
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=1) - poly                                         # (T, s, 2)
        normals = np.stack([-edges[..., 1], edges[..., 0]], axis=-1)
        normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
        pa = np.einsum("tvd,tad->tva", a, normals)                                        # (T, sa, axes)
        pb = np.einsum("tvd,tad->tva", b, normals)                                        # (T, sb, axes)
        gap = np.maximum(pb.min(1) - pa.max(1), pa.min(1) - pb.max(1))                   # (T, axes)
        gaps.append(gap.max(1))
    return np.maximum(*gaps)                                                              # (T,)


def _raster(verts: np.ndarray) -> np.ndarray:
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    rr, cc = _raster_polygon(verts[:, 0], verts[:, 1], shape=out.shape)
    out[rr, cc] = True
    return out


def generate(split: str, n: int, *, seed: int = DEFAULT_SEED, max_count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images of a split.

    Parameters
    ----------
    split : {"train", "val", "test"}
    n : int
        Number of images.
    seed : int
        Base seed of the dataset.
    max_count : {1, 2}
        1 for ``polygons_single``; 2 for ``polygons`` (1 or 2 polygons per image).

    Returns
    -------
    images : np.ndarray
        uint8 ``(n, 64, 64)`` in {0, 255}.
    masks : np.ndarray
        uint8 ``(n, 64, 64)``, labels 0..4.
    """
    rng = np.random.default_rng([seed, _SPLIT_INDEX[split], _VARIANT[max_count]])
    masks = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i in range(n):
        count = 1 if max_count == 1 else int(rng.integers(1, 3))
        sides = rng.choice(SIDES, size=count)
        radius = rng.uniform(*RADIUS, size=count)
        # MAX_TRIES joint placements (centre, angle) are drawn at once, so every image consumes the same amount of
        # randomness whatever happens; the first try whose polygons are >= 1.5 px apart is used.
        u = rng.uniform(size=(MAX_TRIES, count, 3))
        angle = 2 * np.pi * u[..., 2]                                                      # (tries, count)
        polys = []
        for j in range(count):
            # place so that every vertex lies inside [0, 63]: the span left by this rotation's extent
            offsets = _vertices(int(sides[j]), radius[j], np.zeros(2), angle[:, j])        # (tries, sides, 2)
            lo, hi = -offsets.min(axis=1), IMAGE_SIZE - 1 - offsets.max(axis=1)            # (tries, 2)
            polys.append(offsets + (lo + u[:, j, :2] * (hi - lo))[:, None, :])
        if count == 1:
            chosen = [polys[0][0]]
        else:
            ok = np.flatnonzero(_separation(polys[0], polys[1]) >= 1.5)
            # no separated pair in MAX_TRIES tries: keep the first polygon alone
            chosen = [polys[0][ok[0]], polys[1][ok[0]]] if ok.size else [polys[0][0]]
        for j, verts in enumerate(chosen):
            masks[i][_raster(verts)] = sides[j] - 2
    images = np.where(masks > 0, np.uint8(255), np.uint8(0))
    return images, masks
