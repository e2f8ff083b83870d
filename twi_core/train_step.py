r"""One training step (forward, pixel cross-entropy, backward, optimizer update), eager or replayed as a CUDA graph.

The authors' step (``trainer.py`` of their repository, KempnerInstitute/traveling-waves-integrate) is
``logits = model(x); loss = CE(logits, y); zero_grad; backward; step``.
:func:`make_train_step` returns a callable doing exactly that, in one of two ways:

* :class:`EagerStep`: the step as written, on any device.
* :class:`GraphedStep` (CUDA only): the whole step, optimizer update included, captured once into a CUDA graph and
  replayed for every batch of the same shape. The NWM's rollout launches a dozen small kernels per time step (about
  1,700 per training step at T = 100); on a GPU each costs a few microseconds of launch overhead, more than its
  arithmetic at these sizes. A replay launches them all at once.

Capture needs a few real steps first (to allocate the optimizer's state and compile kernels); :class:`GraphedStep`
runs them on a snapshot and restores the parameters, buffers and optimizer state afterwards, so training starts from
exactly where it was: the graphed run takes the same updates as the eager one (equal to float rounding, tested on a GPU by
``benchmarks/bench_gpu.py``).
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["EagerStep", "GraphedStep", "make_train_step"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _default_loss() -> LossFn:
    from twi_core.metrics import pixel_loss

    return pixel_loss


class EagerStep:
    """The authors' training step: ``(x, y) -> (loss, logits)``, both detached.

    Examples
    --------
    >>> model = torch.nn.Conv2d(1, 3, 1)
    >>> step = EagerStep(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    >>> loss, logits = step(torch.rand(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
    >>> tuple(logits.shape), loss.dim()
    ((2, 3, 4, 4), 0)
    """

    graphed = False

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn | None = None, *,
                 clip_norm: float | None = None) -> None:
        self.model, self.optimizer = model, optimizer
        self.loss_fn = loss_fn or _default_loss()
        self.clip_norm = clip_norm  # global gradient-norm clip before the update (a recipe's; None: none)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _clip(self.optimizer, self.clip_norm)
        self.optimizer.step()
        return loss.detach(), logits.detach()


def _clip(optimizer: torch.optim.Optimizer, clip_norm: float | None) -> None:
    """Clip the gradients of every parameter ``optimizer`` updates to a global norm of ``clip_norm``."""
    if clip_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, clip_norm, foreach=True)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [t for state in optimizer.state.values() for t in state.values() if isinstance(t, torch.Tensor)]


class GraphedStep:
    """The training step captured as one CUDA graph for inputs of a fixed shape (CUDA, Adam/AdamW with ``capturable``).

    Calling it copies ``(x, y)`` into the graph's static inputs and replays; the returned ``(loss, logits)`` are the
    graph's static outputs, overwritten by the next call (clone them to keep them). A batch of another shape raises
    (the caller should use an :class:`EagerStep` for it).

    Parameters
    ----------
    model, optimizer, loss_fn
        As :class:`EagerStep`. The optimizer must be ``torch.optim.Adam`` or ``AdamW`` built with ``capturable=True``
        (its step counter then lives on the GPU, which capture requires).
    x, y : Tensor
        An example batch: fixes the shapes and dtypes; used for the warm-up steps (their updates are undone).
    warmup : int
        Eager steps before capture, on a side stream (allocates the optimizer state, compiles kernels).

    Raises
    ------
    ValueError
        Not on CUDA, an optimizer other than Adam/AdamW or without ``capturable=True``, or ``warmup < 1``.
    """

    graphed = True

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 loss_fn: LossFn | None = None, *, warmup: int = 3, clip_norm: float | None = None) -> None:
        if x.device.type != "cuda" or y.device.type != "cuda":
            raise ValueError(f"GraphedStep needs CUDA tensors; got x on {x.device}, y on {y.device}")
        if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            raise ValueError(f"GraphedStep supports torch.optim.Adam and AdamW; got {type(optimizer).__name__}")
        if not all(group.get("capturable", False) for group in optimizer.param_groups):
            raise ValueError("GraphedStep needs the optimizer built with capturable=True (its step count on the GPU)")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ValueError(f"warmup must be an int >= 1; got {warmup!r}")
        self.model, self.optimizer = model, optimizer
        self.loss_fn = loss_fn or _default_loss()
        self.clip_norm = clip_norm
        self.static_x, self.static_y = x.detach().clone(), y.detach().clone()

        # Snapshot what the warm-up steps change: parameters, buffers (BatchNorm statistics), optimizer state.
        tracked = [t for t in model.state_dict(keep_vars=True).values() if isinstance(t, torch.Tensor)]
        saved_model = [t.detach().clone() for t in tracked]
        had_state = {id(p) for p in optimizer.state}
        saved_opt = [t.clone() for t in _optimizer_tensors(optimizer)]

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self._step()
        torch.cuda.current_stream().wait_stream(side)

        self.optimizer.zero_grad(set_to_none=True)  # gradients are then allocated inside the graph's pool
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_loss, self.static_logits = self._step(zero_grad=False)

        # Undo the warm-up: restore in place (the graph holds these very tensors).
        with torch.no_grad():
            for t, s in zip(tracked, saved_model):
                t.copy_(s)
            if saved_opt:  # resumed: the state existed before the warm-up, at the same addresses
                for t, s in zip(_optimizer_tensors(optimizer), saved_opt):
                    t.copy_(s)
            for p, state in optimizer.state.items():
                if id(p) not in had_state:  # fresh Adam state: step 0, zero moments
                    for value in state.values():
                        if isinstance(value, torch.Tensor):
                            value.zero_()
        torch.cuda.synchronize()

    def _step(self, *, zero_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(self.static_x)
        loss = self.loss_fn(logits, self.static_y)
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _clip(self.optimizer, self.clip_norm)  # clip_grad_norm_ stays on the device: capturable
        self.optimizer.step()
        return loss.detach(), logits.detach()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape != self.static_x.shape or y.shape != self.static_y.shape:
            raise ValueError(f"GraphedStep was captured for x {tuple(self.static_x.shape)}, y "
                             f"{tuple(self.static_y.shape)}; got x {tuple(x.shape)}, y {tuple(y.shape)}")
        self.static_x.copy_(x, non_blocking=True)
        self.static_y.copy_(y, non_blocking=True)
        self.graph.replay()
        return self.static_loss, self.static_logits


def make_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    *, graph: bool | None = None, loss_fn: LossFn | None = None, clip_norm: float | None = None):
    """The training step for batches shaped like ``(x, y)``: graphed on CUDA (``graph=None``), else eager.

    ``graph=True`` on a CPU raises; a graph needs ``capturable=True`` Adam (see :class:`GraphedStep`). ``clip_norm``
    clips the gradients' global norm before each update.
    """
    if graph is None:
        graph = x.device.type == "cuda"
    if graph:
        return GraphedStep(model, optimizer, x, y, loss_fn, clip_norm=clip_norm)
    return EagerStep(model, optimizer, loss_fn, clip_norm=clip_norm)
