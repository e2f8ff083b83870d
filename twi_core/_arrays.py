"""Input conversion shared by the analysis and figure modules: torch or numpy in, numpy out, shape checked."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_numpy"]


def as_numpy(x, *, name: str, ndim: int | None = None, min_ndim: int | None = None) -> np.ndarray:
    """``x`` (a ``torch.Tensor`` or ``numpy.ndarray``) as a numpy array, with its number of dimensions checked.

    Parameters
    ----------
    x : Tensor or ndarray
    name : str
        The argument's name, for error messages.
    ndim, min_ndim : int, optional
        Exactly / at least this many dimensions.

    Raises
    ------
    TypeError
        ``x`` is neither a tensor nor an array.
    ValueError
        The number of dimensions is wrong (the message gives the shape received).

    Examples
    --------
    >>> as_numpy(torch.zeros(2, 3), name="y", ndim=2).shape
    (2, 3)
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray; got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {tuple(x.shape)}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions; got shape {tuple(x.shape)}")
    return x
