"""A model's outputs on many images at once, in batches: logits and, for the recurrent models, the hidden states.

The one place the chapters, the analyses and the explorer run a trained model forward for display: evaluation mode,
no gradient, batches of ``batch_size`` concatenated on the CPU's memory as they come.
"""

from __future__ import annotations

import inspect

import torch

__all__ = ["is_recurrent", "logits_and_states"]


def is_recurrent(model: torch.nn.Module) -> bool:
    """Whether ``model`` has a hidden state sequence to return: its ``forward`` takes ``return_states`` (the NWM and
    the Conv-LSTM; not the CNN or the U-Net)."""
    try:
        return "return_states" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a forward without a signature (a C extension): no states
        return False


@torch.no_grad()
def logits_and_states(model: torch.nn.Module, images: torch.Tensor, *, batch_size: int = 16,
                      states: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits ``(B, n, H, W)`` of ``model`` on ``images`` ``(B, C_in, H, W)``, and its hidden states ``(B, T, C, H, W)``.

    Parameters
    ----------
    states : bool, optional
        Return the hidden states; ``None`` (default): when the model is recurrent (:func:`is_recurrent`). ``True``
        for a model without states raises ``TypeError``.

    Returns
    -------
    logits, states
        ``states`` is None when not asked for.

    Examples
    --------
    >>> from twi_core.models import build, paper_config
    >>> cfg = {**paper_config("tetrominoes", "nwm", "linear"), "steps": 4}
    >>> logits, seq = logits_and_states(build(**cfg), torch.zeros(3, 3, 64, 64), batch_size=2)
    >>> tuple(logits.shape), tuple(seq.shape)
    ((3, 6, 64, 64), (3, 4, 2, 64, 64))
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    want = is_recurrent(model) if states is None else bool(states)
    if want and not is_recurrent(model):
        raise TypeError(f"{type(model).__name__} does not return hidden states; a recurrent model (NWM or "
                        "Conv-LSTM) does")
    model.eval()
    logits, seqs = [], []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size]
        if want:
            out, seq = model(x, return_states=True)
            seqs.append(seq)
        else:
            out = model(x)
        logits.append(out)
    return torch.cat(logits), (torch.cat(seqs) if want else None)
