"""Checkpoints that rebuild their own model: the ``build`` arguments saved beside the weights.

A ``checkpoint.pt`` written by :func:`twi_core.train.fit` (since the December 2026 release) is a dict

``{"format": "twi-checkpoint-1", "model": {build kwargs, "name" included}, "state_dict": {...}}``

holding only plain data and tensors, so it loads with ``torch.load(..., weights_only=True)`` and nothing in it can run.
:func:`load_checkpoint` rebuilds the model from the file alone. Older checkpoints are bare ``state_dict`` s; they still
load through :func:`read_checkpoint` (and :meth:`twi_core.runs.Run.model`, which knows the run's configuration).

Examples
--------
>>> import tempfile, torch
>>> from twi_core.models import build
>>> kwargs = dict(name="cnn", in_channels=3, num_classes=6, image_size=16, depth=2)
>>> path = tempfile.mkdtemp() + "/checkpoint.pt"
>>> torch.save(checkpoint_dict(kwargs, build(**kwargs).state_dict()), path)
>>> type(load_checkpoint(path)).__name__
'CNN'
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_dict", "read_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "twi-checkpoint-1"


def checkpoint_dict(model_kwargs: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What a checkpoint file holds: the format tag, the ``build`` kwargs and the weights."""
    if not isinstance(model_kwargs.get("name"), str):
        raise ValueError(f"model_kwargs must hold the model's 'name'; got {dict(model_kwargs)!r}")
    return {"format": CHECKPOINT_FORMAT, "model": dict(model_kwargs), "state_dict": dict(state_dict)}


def read_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, Any] | None, dict[str, torch.Tensor]]:
    """``(build kwargs or None, state_dict)`` of a checkpoint file: the self-describing form or a bare ``state_dict``.

    Raises
    ------
    ValueError
        The file holds neither form (the message names the file).
    """
    obj = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return dict(obj["model"]), dict(obj["state_dict"])
    if isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return None, dict(obj)
    raise ValueError(f"{path} is not a twi_core checkpoint (expected {{'format': {CHECKPOINT_FORMAT!r}, 'model', "
                     "'state_dict'}} or a bare state_dict)")


def load_checkpoint(path: str | os.PathLike) -> nn.Module:
    """The model of a self-describing checkpoint, built and loaded strictly, in eval mode on the CPU (in fp32, also
    when the file holds half-precision weights, as the shipped run store does).

    Raises
    ------
    ValueError
        A bare ``state_dict`` (an older checkpoint: load it with its run, ``twi_core.runs.load(folder).model()``), or
        a file that is no checkpoint.
    """
    from twi_core.models.registry import build

    kwargs, state = read_checkpoint(path)
    if kwargs is None:
        raise ValueError(f"{path} is a bare state_dict without its model's configuration (an older checkpoint); "
                         "load it through its run folder: twi_core.runs.load(folder).model()")
    model = build(**kwargs)
    model.load_state_dict(state, strict=True)  # copies into the fp32 parameters, converting half-precision weights
    return model.eval()
