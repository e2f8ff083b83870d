r"""Hearing the shape of a drum: a wave-equation RNN on a grid, and the theory it is tested against.

The paper's first experiment (Jacobs et al. 2025, section "Hearing the Shape of a Drum", Figure 2) builds a recurrent
network whose hidden state ``u`` and velocity ``v`` live on a 2-D grid and integrate the wave equation

.. math:: \partial_t^2 u = c^2 \nabla^2 u \quad\text{in } \Omega, \qquad u = 0 \text{ on } \partial\Omega,

with the 5-point Laplacian as a 3x3 convolution and a second-order (Verlet / leapfrog) time step. The drum enters as input
by clamping every neuron on or outside its boundary to zero. The lowest peak of the Fourier transform of the centre
neuron's trace is the drum's fundamental frequency.

Grid conventions (used everywhere in this module)
-------------------------------------------------
* A *mask* is a boolean array, ``True`` for a **free** neuron (inside the drum) and ``False`` for a clamped one (on the
  boundary or outside). Grid spacing is 1 unless stated.
* **Side length** ``s`` of a square drum is the distance, in grid spacings, between two opposite clamped boundary lines.
  The square therefore has ``(s - 1) x (s - 1)`` free neurons and ``square_mask(s)`` has shape ``(s + 1, s + 1)`` (plus
  ``2 * pad``). This is the definition under which the continuum side and the grid side agree: the discrete Dirichlet
  eigenfunctions ``sin(m pi i / s) sin(n pi j / s)`` vanish exactly on the clamped lines ``i, j = 0, s``.

Theory
------
* Continuum square: :math:`\lambda_{mn} = \pi^2 (m^2 + n^2)/s^2`, fundamental :math:`f_1 = c/(\sqrt 2 s)` (cycles per unit
  time), so :math:`A = s^2 = c^2/(2 f_1^2)` (the "square area theory").
* Discrete 5-point Dirichlet Laplacian on the same square: :math:`\mu_{mn} = 4\sin^2\frac{m\pi}{2s} + 4\sin^2\frac{n\pi}{2s}`,
  ``m, n = 1..s-1``.
* Leapfrog in time turns an eigenvalue :math:`\mu` into the per-step rotation :math:`\theta = 2\arcsin(c\,\Delta t
  \sqrt\mu/2)`, i.e. :math:`f = \theta / (2\pi\Delta t)`; it is stable iff :math:`c^2\Delta t^2 \mu_{\max} \le 4`, and
  since :math:`\mu_{\max} < 8` on any grid, :math:`c\,\Delta t \le 1/\sqrt 2` is the bound enforced here.

References
----------
- M. Jacobs, R. C. Budzinski, L. Muller, D. Ba, T. A. Keller, "Traveling Waves Integrate Spatial Information Through
  Time", 2025, eqs. (1)-(8) and Figure 2.
- M. Kac, "Can one hear the shape of a drum?", Amer. Math. Monthly 73 (1966).
- C. Gordon, D. Webb, S. Wolpert, "One cannot hear the shape of a drum", Bull. AMS 27 (1992).
- T. A. Driscoll, "Eigenmodes of isospectral drums", SIAM Review 39 (1997).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
import scipy.special
import torch

__all__ = [
    "STABILITY_BOUND",
    "GWW_DRUMS",
    "DRISCOLL_EIGENVALUES",
    "WaveState",
    "DrumRun",
    "HeatTraceFit",
    "laplacian_kernel",
    "wave_step",
    "square_mask",
    "disk_mask",
    "polygon_mask",
    "stack_masks",
    "drum_centre",
    "simulate",
    "spectrum",
    "spectral_peaks",
    "fundamental_frequency",
    "leapfrog_frequency",
    "eigenvalue_from_frequency",
    "continuum_square_eigenvalues",
    "continuum_square_fundamental",
    "discrete_square_eigenvalues",
    "discrete_square_fundamental",
    "discrete_dirichlet_eigenvalues",
    "disk_eigenvalues",
    "driscoll_eigenvalues",
    "area_from_fundamental",
    "side_from_fundamental",
    "heat_trace",
    "fit_heat_trace",
    "polygon_area",
    "polygon_perimeter",
]

#: The largest stable ``c * dt`` of leapfrog with the 5-point Laplacian in 2-D: ``1/sqrt(2)`` (``c^2 dt^2 * 8 <= 4``).
STABILITY_BOUND: float = 1.0 / math.sqrt(2.0)

#: The Gordon-Webb-Wolpert isospectral pair in unit-leg coordinates (Moler's version); area 3.5, perimeter 6 + 3 sqrt 2.
GWW_DRUMS: dict[str, tuple[tuple[int, int], ...]] = {
    "gww1": ((0, 0), (0, 1), (2, 3), (2, 2), (3, 2), (2, 1), (1, 1), (1, 0)),
    "gww2": ((1, 0), (0, 1), (0, 2), (2, 2), (2, 3), (3, 2), (2, 1), (1, 1)),
}

#: Driscoll (1997), Table 1: the first 25 Dirichlet eigenvalues of the GWW drums with legs of length 2 ("all digits
#: believed correct"). Multiply by 4 for the unit-leg drums of :data:`GWW_DRUMS`.
DRISCOLL_EIGENVALUES: tuple[float, ...] = (
    2.53794399980, 3.65550971352, 5.17555935622, 6.53755744376, 7.24807786256, 9.20929499840, 10.5969856913,
    11.5413953956, 12.3370055014, 13.0536540557, 14.3138624643, 15.8713026200, 16.9417516880, 17.6651184368,
    18.9810673877, 20.8823950433, 21.2480051774, 22.2328517930, 23.7112974848, 24.4792340693, 24.6740110027,
    26.0802400997, 27.3040189211, 28.1751285815, 29.5697729132,
)


# ----------------------------------------------------------------------------------------------------------------------
# The model: one step, in one place
# ----------------------------------------------------------------------------------------------------------------------

class WaveState(NamedTuple):
    """State of the wave RNN: displacement and velocity, each ``(S, H, W)`` (S drums)."""

    u: torch.Tensor  # hidden state (membrane displacement), (S, H, W)
    v: torch.Tensor  # velocity, (S, H, W)


def laplacian_kernel(*, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The 5-point Laplacian stencil as a ``(1, 1, 3, 3)`` convolution kernel (paper eq. 8).

    .. math:: K = \begin{pmatrix} 0 & 1 & 0 \\ 1 & -4 & 1 \\ 0 & 1 & 0 \end{pmatrix}

    Examples
    --------
    >>> laplacian_kernel()[0, 0]
    tensor([[ 0.,  1.,  0.],
            [ 1., -4.,  1.],
            [ 0.,  1.,  0.]], dtype=torch.float64)
    """
    k = torch.zeros(1, 1, 3, 3, dtype=dtype)
    k[0, 0, 1, :] = 1.0
    k[0, 0, :, 1] = 1.0
    k[0, 0, 1, 1] = -4.0
    return k


def _check_stable(dt: float, c: float) -> None:
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise ValueError(f"dt must be a positive number; got {dt!r}")
    if not (isinstance(c, (int, float)) and c > 0):
        raise ValueError(f"c must be a positive number; got {c!r}")
    if c * dt > STABILITY_BOUND * (1 + 1e-12):
        raise ValueError(
            f"unstable: c*dt = {c * dt:.6g} exceeds the stability bound 1/sqrt(2) = {STABILITY_BOUND:.6f} of leapfrog "
            f"with the 5-point Laplacian (c^2 dt^2 * 8 <= 4); lower dt or c")


def wave_step(state: WaveState, mask: torch.Tensor, *, dt: float, c: float = 1.0) -> WaveState:
    r"""One Verlet (leapfrog, "kick-drift") step of the wave RNN with Dirichlet clamping (paper eqs. 6-7).

    .. math::
        v_{t+1} &= m \odot \big(v_t + \Delta t\, c^2\, (K * u_t)\big) \\
        u_{t+1} &= m \odot \big(u_t + \Delta t\, v_{t+1}\big)

    with :math:`K` the 5-point Laplacian (:func:`laplacian_kernel`, zero padding) and :math:`m` the mask of free
    neurons. Eliminating :math:`v` gives the position form used by the fast path of :func:`simulate`,
    :math:`u_{t+1} = m \odot (2u_t - u_{t-1} + c^2\Delta t^2 K * u_t)`, the central second difference of eq. (1).

    Parameters
    ----------
    state
        ``WaveState(u, v)``, each ``(S, H, W)`` float.
    mask
        ``(S, H, W)`` or ``(H, W)``: 1 for free neurons, 0 for clamped ones (same dtype as ``u`` or bool).
    dt, c
        Time step and wave speed (keyword-only); stability is the caller's business (see :func:`simulate`).

    Returns
    -------
    WaveState
        The state one step later.
    """
    u, v = state
    m = mask.to(u.dtype)
    lap = torch.nn.functional.conv2d(u.unsqueeze(1), laplacian_kernel(dtype=u.dtype), padding=1).squeeze(1)  # (S,H,W)
    v_next = m * (v + dt * c * c * lap)
    u_next = m * (u + dt * v_next)
    return WaveState(u_next, v_next)


# ----------------------------------------------------------------------------------------------------------------------
# Drums as masks
# ----------------------------------------------------------------------------------------------------------------------

def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def square_mask(side: int, *, pad: int = 0) -> np.ndarray:
    """A square drum of side ``side`` (grid spacings between opposite clamped boundary lines).

    Parameters
    ----------
    side
        Integer >= 2. The drum has ``(side - 1)**2`` free neurons.
    pad
        Extra clamped rows/columns outside the boundary on every side.

    Returns
    -------
    numpy.ndarray
        bool ``(side + 1 + 2 pad, side + 1 + 2 pad)``, ``True`` inside.

    Examples
    --------
    >>> square_mask(3).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    side = _check_int("side", side, 2)
    pad = _check_int("pad", pad, 0)
    n = side + 1 + 2 * pad
    mask = np.zeros((n, n), dtype=bool)
    mask[pad + 1:pad + side, pad + 1:pad + side] = True
    return mask


def disk_mask(radius: float, *, pad: int = 1) -> np.ndarray:
    """A circular drum: the grid points strictly closer than ``radius`` to the centre node.

    Returns a bool ``(2 ceil(radius) + 1 + 2 pad,)*2`` array. The staircase boundary makes the eigenvalues converge to
    the disk's only at first order in the grid spacing.
    """
    if not (isinstance(radius, (int, float)) and radius >= 1):
        raise ValueError(f"radius must be a number >= 1 (grid spacings); got {radius!r}")
    r = int(math.ceil(radius))
    idx = np.arange(-r - pad, r + pad + 1)
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    return (yy * yy + xx * xx) < radius * radius


def _on_segment(px, py, ax, ay, bx, by) -> np.ndarray:
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    dot = (px - ax) * (bx - ax) + (py - ay) * (by - ay)
    return (cross == 0) & (dot >= 0) & (dot <= (bx - ax) ** 2 + (by - ay) ** 2)


def polygon_mask(vertices: Sequence[tuple[int, int]], *, resolution: int, pad: int = 1) -> np.ndarray:
    """Rasterise a polygon with integer vertices: the grid points strictly inside it, at ``resolution`` points per unit.

    Grid node ``(i, j)`` (row, column) sits at ``x = j / resolution``, ``y = i / resolution`` (shifted so the polygon's
    bounding box starts at ``pad``). Nodes on an edge, diagonal edges included, are clamped; the test is exact
    (integer arithmetic), so the two Gordon-Webb-Wolpert drums give finite-difference operators that are themselves
    isospectral.

    Parameters
    ----------
    vertices
        ``[(x, y), ...]`` integer coordinates of a simple polygon, in order.
    resolution
        Grid points per unit length (``h = 1 / resolution``).
    pad
        Clamped margin (grid points) around the bounding box.
    """
    resolution = _check_int("resolution", resolution, 1)
    pad = _check_int("pad", pad, 0)
    v = np.asarray(vertices, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
        raise ValueError(f"vertices must be a sequence of at least 3 (x, y) pairs; got shape {v.shape}")
    v = (v - v.min(axis=0)) * resolution + pad  # integer grid coordinates
    width, height = v.max(axis=0) + 1 + pad
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    inside = np.zeros((height, width), dtype=bool)
    boundary = np.zeros_like(inside)
    for (ax, ay), (bx, by) in zip(v, np.roll(v, -1, axis=0)):
        boundary |= _on_segment(xx, yy, ax, ay, bx, by)
        # even-odd ray casting towards +x; half-open in y so vertices are counted once
        crosses = (ay > yy) != (by > yy)
        # x of the edge at height yy, compared without division: xx < ax + (yy - ay)(bx - ax)/(by - ay)
        lhs = (xx - ax) * (by - ay)
        rhs = (yy - ay) * (bx - ax)
        left = np.where(by > ay, lhs < rhs, lhs > rhs)
        inside ^= crosses & left
    return inside & ~boundary


def stack_masks(masks) -> np.ndarray:
    """Pad 2-D masks of any sizes into one ``(S, H, W)`` canvas (each at the top-left corner)."""
    if isinstance(masks, np.ndarray) and masks.ndim in (2, 3):
        arr = masks[None] if masks.ndim == 2 else masks
        return _check_mask_array(arr.astype(bool, copy=False))
    if isinstance(masks, torch.Tensor):
        return stack_masks(masks.detach().cpu().numpy())
    items = [np.asarray(m) for m in masks]
    if not items or any(m.ndim != 2 for m in items):
        raise ValueError("mask must be a 2-D array, a 3-D (S, H, W) array, or a non-empty sequence of 2-D arrays")
    h = max(m.shape[0] for m in items)
    w = max(m.shape[1] for m in items)
    out = np.zeros((len(items), h, w), dtype=bool)
    for k, m in enumerate(items):
        out[k, :m.shape[0], :m.shape[1]] = m.astype(bool)
    return _check_mask_array(out)


def _check_mask_array(mask: np.ndarray) -> np.ndarray:
    empty = [k for k in range(mask.shape[0]) if not mask[k].any()]
    if empty:
        raise ValueError(f"mask {empty} has no interior (no True/free neuron); a drum needs at least one free neuron")
    return mask


def drum_centre(mask: np.ndarray) -> tuple[int, int]:
    """The free node nearest to the centroid of a 2-D mask's free nodes (ties: the first in row-major order).

    For ``square_mask(s)`` with even ``s`` this is the exact centre ``(s/2 + pad, s/2 + pad)``; with odd ``s`` there is
    no central node and this is the node just above and left of the centre.
    """
    mask = stack_masks(mask)[0]
    ii, jj = np.nonzero(mask)
    ci, cj = ii.mean(), jj.mean()
    d2 = (ii - ci) ** 2 + (jj - cj) ** 2
    k = int(np.argmin(np.round(d2, 9)))
    return int(ii[k]), int(jj[k])


# ----------------------------------------------------------------------------------------------------------------------
# Simulation
# ----------------------------------------------------------------------------------------------------------------------

class DrumRun(NamedTuple):
    """The result of :func:`simulate`."""

    traces: np.ndarray  # (S, P, T) displacement at the P probe points of each drum, samples t = 0, dt, ..., (T-1) dt
    frames: np.ndarray | None  # (S, F, H, W) float32 every frame_every-th state, or None
    masks: np.ndarray  # (S, H, W) bool, the drums as simulated
    probes: np.ndarray  # (S, P, 2) int, (row, col) of each probe point
    dt: float  # time step
    c: float  # wave speed

    @property
    def trace(self) -> np.ndarray:
        """``(S, T)``: the trace of the first probe (the drum's centre by default)."""
        return self.traces[:, 0]


def _init_state(masks: np.ndarray, init) -> np.ndarray:
    S, H, W = masks.shape
    if init is None:
        u0 = np.zeros((S, H, W))
        for k in range(S):
            u0[(k, *drum_centre(masks[k]))] = 1.0
        return u0
    u0 = np.asarray(init, dtype=np.float64)
    if u0.shape == (H, W):
        u0 = np.broadcast_to(u0, (S, H, W))
    if u0.shape != (S, H, W):
        raise ValueError(f"init must have shape {(S, H, W)} or {(H, W)} (the mask canvas); got {u0.shape}")
    return u0 * masks


def _run_stencil(u0: np.ndarray, masks: np.ndarray, probes: np.ndarray, steps: int, k: float, frame_every: int | None,
                 dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """Fast path: the position form of :func:`wave_step` on one flat array with in-place numpy slices.

    All drums are padded by one clamped ring and laid end to end in a flat buffer, so the four neighbours of a node are
    the buffer shifted by +-1 and +-W. Nodes whose neighbours wrap around a row or into the next drum are clamped,
    so the wrap never matters. Eight in-place ufunc calls per step, no allocation.
    """
    S, H, W = masks.shape
    H2, W2 = H + 2, W + 2
    m = np.zeros((S, H2, W2), dtype=dtype)
    m[:, 1:-1, 1:-1] = masks
    u = np.zeros((S, H2, W2), dtype=dtype)
    u[:, 1:-1, 1:-1] = u0
    N = S * H2 * W2
    lo, hi = W2, N - W2  # the middle segment; the first and last rows are padding and stay zero
    a = (m.ravel() * (2.0 - 4.0 * k))[lo:hi]  # (M,) coefficient of u_t
    b = (m.ravel() * k)[lo:hi]  # (M,) coefficient of the neighbour sum
    cur = u.ravel().copy()
    prev = u.ravel().copy()  # v_0 = 0 means u_{-1} = u_0 in the position form
    tmp = np.empty(hi - lo, dtype=dtype)
    flat_probes = (np.arange(S)[:, None] * H2 * W2 + (probes[..., 0] + 1) * W2 + probes[..., 1] + 1).ravel()  # (S*P,)
    out = np.empty((steps, flat_probes.size), dtype=dtype)
    n_frames = 0 if frame_every is None else (steps + frame_every - 1) // frame_every
    frames = None if frame_every is None else np.empty((n_frames, S, H, W), dtype=np.float32)
    for n in range(steps):
        np.take(cur, flat_probes, out=out[n])
        if frames is not None and n % frame_every == 0:
            frames[n // frame_every] = cur.reshape(S, H2, W2)[:, 1:-1, 1:-1]
        # tmp = sum of the four neighbours of every middle node
        np.add(cur[lo - 1:hi - 1], cur[lo + 1:hi + 1], out=tmp)
        np.add(tmp, cur[lo - W2:hi - W2], out=tmp)
        np.add(tmp, cur[lo + W2:hi + W2], out=tmp)
        np.multiply(tmp, b, out=tmp)
        # prev <- a*u_t - u_{t-1} + b*neighbours  (= u_{t+1}; clamped nodes have a = b = 0 and u_{t-1} = 0)
        mid = prev[lo:hi]
        np.subtract(tmp, mid, out=mid)
        np.multiply(cur[lo:hi], a, out=tmp)
        np.add(mid, tmp, out=mid)
        prev, cur = cur, prev
    traces = out.T.reshape(S, -1, steps).astype(np.float64)  # (S, P, T)
    if frames is not None:
        frames = frames.transpose(1, 0, 2, 3)  # (S, F, H, W)
    return traces, frames


def _run_conv(u0: np.ndarray, masks: np.ndarray, probes: np.ndarray, steps: int, dt: float, c: float,
              frame_every: int | None, dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """Reference path: :func:`wave_step` (torch ``conv2d``) in a loop. Slow; the specification the fast path is tested
    against."""
    tdtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    m = torch.as_tensor(masks, dtype=tdtype)
    state = WaveState(torch.as_tensor(u0, dtype=tdtype), torch.zeros(masks.shape, dtype=tdtype))
    S = masks.shape[0]
    rows = torch.as_tensor(probes[..., 0])
    cols = torch.as_tensor(probes[..., 1])
    batch = torch.arange(S)[:, None].expand_as(rows)
    out = np.empty((S, probes.shape[1], steps))
    frames = []
    with torch.no_grad():
        for n in range(steps):
            out[:, :, n] = state.u[batch, rows, cols].numpy()
            if frame_every is not None and n % frame_every == 0:
                frames.append(state.u.numpy().astype(np.float32))
            state = wave_step(state, m, dt=dt, c=c)
    return out, (np.stack(frames, axis=1) if frame_every is not None else None)


_METHODS: dict[str, Callable] = {"stencil": _run_stencil, "conv": _run_conv}


def simulate(mask, steps: int, dt: float, c: float = 1.0, *, init=None, probes=None, frame_every: int | None = None,
             method: str = "stencil", dtype=np.float64) -> DrumRun:
    r"""Run the wave RNN on one or many drums at once and record probe traces (and optionally frames).

    All drums run as one batched array ``(S, H, W)``: masks of different sizes are padded into one canvas. The initial
    condition (paper): a unit displacement at each drum's centre (:func:`drum_centre`), zero elsewhere, zero velocity.
    The dynamics are :func:`wave_step`; ``method="stencil"`` (default) runs its position form with in-place numpy
    slices (fast), ``method="conv"`` runs :func:`wave_step` itself with ``torch.conv2d`` (slow reference).

    Parameters
    ----------
    mask
        ``(H, W)`` or ``(S, H, W)`` bool array, or a sequence of 2-D masks of any sizes (``True`` = free neuron).
    steps
        Number of samples recorded, at times ``0, dt, ..., (steps - 1) dt``.
    dt, c
        Time step and wave speed; ``c * dt`` must not exceed :data:`STABILITY_BOUND` = 1/sqrt(2).
    init
        ``None`` (centre impulse) or an initial displacement ``(S, H, W)`` / ``(H, W)`` on the canvas.
    probes
        ``None`` (the centre) or integer ``(P, 2)`` / ``(S, P, 2)`` (row, col) points to record.
    frame_every
        Record every ``frame_every``-th state as a float32 frame (``None``: no frames).
    method
        ``"stencil"`` or ``"conv"``.
    dtype
        ``numpy.float64`` (default) or ``numpy.float32`` for the state.

    Returns
    -------
    DrumRun
        ``traces (S, P, T)``, ``.trace (S, T)`` (the first probe), ``frames (S, F, H, W)`` or None, and the inputs.

    Raises
    ------
    ValueError
        ``c * dt`` above the stability bound (the message names it), a mask without interior, bad shapes or names.

    Examples
    --------
    >>> run = simulate([square_mask(13), square_mask(14)], 2000, 0.5)
    >>> run.trace.shape
    (2, 2000)
    """
    _check_stable(dt, c)
    steps = _check_int("steps", steps, 1)
    if frame_every is not None:
        frame_every = _check_int("frame_every", frame_every, 1)
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(_METHODS)}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64; got {dtype!r}")
    masks = stack_masks(mask)
    S, H, W = masks.shape
    if probes is None:
        pts = np.array([[drum_centre(masks[k])] for k in range(S)], dtype=np.int64)  # (S, 1, 2)
    else:
        pts = np.asarray(probes, dtype=np.int64)
        if pts.ndim == 2:
            pts = np.broadcast_to(pts, (S, *pts.shape))
        if pts.ndim != 3 or pts.shape[0] != S or pts.shape[2] != 2:
            raise ValueError(f"probes must have shape (P, 2) or ({S}, P, 2); got {np.shape(probes)}")
        if (pts < 0).any() or (pts[..., 0] >= H).any() or (pts[..., 1] >= W).any():
            raise ValueError(f"probes must lie on the {H}x{W} canvas; got {pts.tolist()}")
    u0 = _init_state(masks, init)
    if method == "stencil":
        traces, frames = _run_stencil(u0, masks, pts, steps, (c * dt) ** 2, frame_every, dtype)
    else:
        traces, frames = _run_conv(u0, masks, pts, steps, dt, c, frame_every, dtype)
    return DrumRun(traces, frames, masks, pts, float(dt), float(c))


# ----------------------------------------------------------------------------------------------------------------------
# Spectra and peaks
# ----------------------------------------------------------------------------------------------------------------------

def spectrum(trace, dt: float, *, pad_factor: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrum of a mean-removed, Hann-windowed trace, zero-padded ``pad_factor`` times.

    Parameters
    ----------
    trace
        ``(..., T)`` real samples spaced ``dt``.

    Returns
    -------
    freqs, magnitude
        ``(K,)`` in cycles per unit time and ``(..., K)``, ``K = pad_factor * T // 2 + 1``.
    """
    x = np.asarray(trace, dtype=np.float64)
    T = x.shape[-1]
    if T < 8:
        raise ValueError(f"trace needs at least 8 samples; got {T}")
    pad_factor = _check_int("pad_factor", pad_factor, 1)
    x = (x - x.mean(axis=-1, keepdims=True)) * np.hanning(T)
    n = pad_factor * T
    return np.fft.rfftfreq(n, d=dt), np.abs(np.fft.rfft(x, n=n, axis=-1))


def spectral_peaks(trace, dt: float, *, rel_height: float = 1e-3, count: int | None = None,
                   pad_factor: int = 4) -> np.ndarray:
    r"""Frequencies of the spectral peaks of a trace, lowest first, with sub-bin accuracy.

    Method: :func:`spectrum` (mean removed, Hann window, zero-padded ``pad_factor`` x); a 2-D ``(P, T)`` input (several
    probes) is combined as the root of the summed power spectra. A peak is a bin that is the largest within +-1.5
    unpadded bins (this rejects the Hann window's side lobes, each of which lies one bin from a higher lobe) and at least
    ``rel_height`` times the spectrum's maximum. Each peak is refined by a parabola through the log-magnitude at the peak
    bin and its two neighbours:

    .. math:: \delta = \tfrac12 \frac{\ell_{-1} - \ell_{+1}}{\ell_{-1} - 2\ell_0 + \ell_{+1}}, \qquad
              f = (k + \delta)\,\Delta f .

    A Hann main lobe is close to a Gaussian, whose log is exactly a parabola, so for an isolated sinusoid the error is
    below 1e-3 of an *unpadded* bin ``1/(T dt)`` (tested); for 40,000 steps at ``dt = 0.1`` that is 2.5e-7 cycles per
    unit time. Peaks closer than about two bins are not resolved, and near neighbours bias each other slightly.
    """
    x = np.asarray(trace, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"trace must be (T,) or (P, T); got shape {x.shape}")
    _check_finite_trace(x)
    moving = ~_is_flat(x)
    if not moving.any():
        # A constant trace (an all-zero one: a probe outside the drum, a drum that was never struck) has no peak. Its
        # spectrum is rounding noise (or exactly zero, where every bin passes the peak test), whose "peaks" would be
        # made-up frequencies.
        return np.empty(0)
    if x.ndim == 2:
        x = x[moving]  # a flat probe adds only rounding noise to the summed power
    freqs, mag = spectrum(x, dt, pad_factor=pad_factor)
    if mag.ndim == 2:
        mag = np.sqrt((mag ** 2).sum(axis=0))
    ell = np.log(mag + 1e-300)
    half = max(1, int(round(1.5 * pad_factor)))
    padded = np.pad(mag, half, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)  # (K, 2 half + 1)
    is_peak = (mag >= windows.max(axis=1)) & (mag >= rel_height * mag[pad_factor:].max())
    ks = np.nonzero(is_peak)[0]
    ks = ks[(ks >= pad_factor) & (ks < mag.size - 1)]  # skip the DC neighbourhood and the last bin
    a, b, cc = ell[ks - 1], ell[ks], ell[ks + 1]
    denom = a - 2 * b + cc
    delta = np.where(denom < 0, 0.5 * (a - cc) / np.where(denom < 0, denom, -1.0), 0.0)
    out = (ks + delta) * (freqs[1] - freqs[0])
    return out if count is None else out[:count]


def _check_finite_trace(x: np.ndarray) -> None:
    """A ValueError for NaN or infinite samples (a diverged simulation), which have no spectrum."""
    if not np.isfinite(x).all():
        raise ValueError("trace contains NaN or infinite samples (a diverged simulation?); expected finite values")


def _is_flat(x: np.ndarray) -> np.ndarray:
    """Per trace (last axis): True when it does not move beyond the rounding of its own values.

    Relative to the trace's magnitude, so a tiny but real oscillation (a far probe of a quiet drum) still counts; the
    factor 8 covers the rounding of a constant that was computed rather than typed.
    """
    scale = np.abs(x).max(axis=-1)
    return np.ptp(x, axis=-1) <= 8 * np.finfo(np.float64).eps * scale


def fundamental_frequency(trace, dt: float, *, rel_height: float = 0.01, pad_factor: int = 4) -> np.ndarray | float:
    """The lowest spectral peak (cycles per unit time) of a trace ``(T,)`` or of each row of ``(..., T)``.

    A peak counts when its magnitude is at least ``rel_height`` times the spectrum's largest (so leakage ripples are
    ignored); the frequency is refined to sub-bin accuracy as described in :func:`spectral_peaks`.

    A trace that does not oscillate (all zero, or constant: a probe outside the drum, a drum never struck) has no
    fundamental, and no number is made up for it: a single trace ``(T,)`` raises ``ValueError``; in a batch
    ``(..., T)`` its entry is NaN (so that one silent probe does not discard the others' frequencies) and a
    ``RuntimeWarning`` says how many entries are NaN.

    Raises
    ------
    ValueError
        A single trace without a spectral peak (constant, all zero, or shorter than 8 samples), or any trace with NaN
        or infinite samples.

    Examples
    --------
    >>> t = np.arange(40000) * 0.1
    >>> round(float(fundamental_frequency(np.cos(2 * np.pi * 0.05123 * t), 0.1)), 6)
    0.05123
    >>> fundamental_frequency(np.zeros((2, 100)) + [[0.0], [1.0]], 0.1)  # doctest: +SKIP
    array([nan, nan])
    """
    x = np.asarray(trace, dtype=np.float64)
    _check_finite_trace(x)
    if x.ndim == 1:
        peaks = spectral_peaks(x, dt, rel_height=rel_height, count=1, pad_factor=pad_factor)
        if peaks.size == 0:
            raise ValueError("no spectral peak found: the trace is constant (all zero?) or has no oscillation; "
                             "there is no fundamental frequency to report")
        return float(peaks[0])
    flat = x.reshape(-1, x.shape[-1])
    out = np.full(len(flat), np.nan)
    for i, row in enumerate(flat):
        peaks = spectral_peaks(row, dt, rel_height=rel_height, count=1, pad_factor=pad_factor)
        if peaks.size:
            out[i] = peaks[0]
    missing = int(np.isnan(out).sum())
    if missing:
        import warnings

        warnings.warn(f"{missing} of {len(out)} traces have no spectral peak (constant or all zero); their "
                      "fundamental frequency is NaN", RuntimeWarning, stacklevel=2)
    return out.reshape(x.shape[:-1])


# ----------------------------------------------------------------------------------------------------------------------
# Theory
# ----------------------------------------------------------------------------------------------------------------------

def leapfrog_frequency(mu, dt: float | None = None, c: float = 1.0):
    r"""Frequency (cycles per unit time) of a Laplacian eigenmode ``mu`` (of ``-Delta``, grid units).

    ``dt=None``: continuous time, :math:`f = c\sqrt\mu/(2\pi)`. Otherwise the exact leapfrog dispersion relation
    :math:`f = \arcsin(c\,\Delta t\sqrt\mu/2)/(\pi\,\Delta t)`.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if dt is None:
        return c * np.sqrt(mu) / (2 * np.pi)
    _check_stable(dt, c)
    return np.arcsin(c * dt * np.sqrt(mu) / 2) / (np.pi * dt)


def eigenvalue_from_frequency(f, dt: float | None = None, c: float = 1.0):
    r"""Inverse of :func:`leapfrog_frequency`: :math:`\mu = (2\sin(\pi f\Delta t)/(c\Delta t))^2` (or
    :math:`(2\pi f/c)^2` for ``dt=None``)."""
    f = np.asarray(f, dtype=np.float64)
    if dt is None:
        return (2 * np.pi * f / c) ** 2
    return (2 * np.sin(np.pi * f * dt) / (c * dt)) ** 2


def continuum_square_eigenvalues(side: float, k: int = 10) -> np.ndarray:
    r"""The ``k`` smallest Dirichlet eigenvalues :math:`\pi^2(m^2+n^2)/s^2` of a square of side ``side``, with
    multiplicity."""
    k = _check_int("k", k, 1)
    m = np.arange(1, k + 2)
    vals = np.pi ** 2 * (m[:, None] ** 2 + m[None, :] ** 2) / float(side) ** 2
    return np.sort(vals.ravel())[:k]


def continuum_square_fundamental(side, c: float = 1.0):
    r"""The continuum fundamental :math:`f_1 = c/(\sqrt2\, s)` (cycles per unit time; the paper's Figure 2 theory)."""
    return c / (math.sqrt(2.0) * np.asarray(side, dtype=np.float64))


def discrete_square_eigenvalues(side: int, k: int | None = None) -> np.ndarray:
    r"""Closed form of the 5-point Dirichlet Laplacian on ``square_mask(side)``, ascending, with multiplicity.

    .. math:: \mu_{mn} = 4\sin^2\frac{m\pi}{2s} + 4\sin^2\frac{n\pi}{2s}, \quad m, n = 1, \dots, s-1

    (eigenvectors :math:`\sin(m\pi i/s)\sin(n\pi j/s)`, which vanish on the clamped lines ``i, j = 0, s``).
    """
    side = _check_int("side", side, 2)
    m = np.arange(1, side)
    one = 4 * np.sin(m * np.pi / (2 * side)) ** 2
    vals = np.sort((one[:, None] + one[None, :]).ravel())
    return vals if k is None else vals[:k]


def discrete_square_fundamental(side, dt: float | None = None, c: float = 1.0):
    """The exact fundamental of the simulated square: :math:`\\mu_{11} = 8\\sin^2(\\pi/2s)` through
    :func:`leapfrog_frequency` (``dt=None``: semi-discrete, continuous time)."""
    s = np.asarray(side, dtype=np.float64)
    return leapfrog_frequency(8 * np.sin(np.pi / (2 * s)) ** 2, dt, c)


def _laplacian_matrix(mask: np.ndarray) -> scipy.sparse.csr_matrix:
    """Sparse ``-Delta`` (5-point, Dirichlet) on the free nodes of a 2-D mask, in row-major node order."""
    idx = -np.ones(mask.shape, dtype=np.int64)
    ii, jj = np.nonzero(mask)
    idx[ii, jj] = np.arange(ii.size)
    padded = np.pad(idx, 1, constant_values=-1)
    rows, cols = [np.arange(ii.size)], [np.arange(ii.size)]
    vals = [np.full(ii.size, 4.0)]
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb = padded[ii + 1 + di, jj + 1 + dj]
        ok = nb >= 0
        rows.append(np.arange(ii.size)[ok])
        cols.append(nb[ok])
        vals.append(np.full(ok.sum(), -1.0))
    return scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                                   shape=(ii.size, ii.size))


def discrete_dirichlet_eigenvalues(mask, k: int | None = 10, *, h: float = 1.0) -> np.ndarray:
    """The ``k`` smallest eigenvalues of the 5-point Dirichlet Laplacian ``-Delta_h`` on the free nodes of a mask.

    Uses a dense ``scipy.linalg.eigvalsh`` for small problems or ``k=None`` (all eigenvalues), and sparse
    shift-invert ``scipy.sparse.linalg.eigsh`` otherwise. Divided by ``h**2`` (``h`` = grid spacing in physical units).

    Raises
    ------
    ValueError
        If the mask has no free node.
    """
    mask2 = stack_masks(mask)
    if mask2.shape[0] != 1:
        raise ValueError(f"mask must be a single 2-D drum; got {mask2.shape[0]} drums")
    A = _laplacian_matrix(mask2[0])
    n = A.shape[0]
    if k is not None:
        k = _check_int("k", k, 1)
    if k is None or n <= 600 or k >= n - 1:
        vals = scipy.linalg.eigvalsh(A.toarray())
        vals = vals if k is None else vals[:k]
    else:
        vals = np.sort(scipy.sparse.linalg.eigsh(A.tocsc(), k=k, sigma=0.0, which="LM", return_eigenvectors=False))
    return vals / (h * h)


def disk_eigenvalues(radius: float, k: int = 10) -> np.ndarray:
    r"""The ``k`` smallest Dirichlet eigenvalues :math:`j_{m,n}^2/R^2` of a disk, with multiplicity (2 for ``m >= 1``)."""
    k = _check_int("k", k, 1)
    vals = []
    for m in range(k + 1):
        zeros = scipy.special.jn_zeros(m, k)
        vals += [z * z for z in zeros] * (1 if m == 0 else 2)
    return np.sort(np.array(vals))[:k] / float(radius) ** 2


def driscoll_eigenvalues(k: int = 10, *, leg: float = 1.0) -> np.ndarray:
    """Driscoll's eigenvalues of the GWW drums, rescaled to legs of length ``leg`` (the table is for ``leg = 2``)."""
    k = _check_int("k", k, 1)
    if k > len(DRISCOLL_EIGENVALUES):
        raise ValueError(f"k must be <= {len(DRISCOLL_EIGENVALUES)} (Driscoll's table); got {k}")
    return np.array(DRISCOLL_EIGENVALUES[:k]) * (2.0 / leg) ** 2


def area_from_fundamental(f, c: float = 1.0):
    r"""The "square area theory": a square drum's area from its fundamental, :math:`A = c^2/(2 f_1^2)` (continuum)."""
    return c * c / (2.0 * np.asarray(f, dtype=np.float64) ** 2)


def side_from_fundamental(f, dt: float | None = None, c: float = 1.0):
    r"""Invert the *discrete* square fundamental: :math:`\mu_{11}` from :func:`eigenvalue_from_frequency`, then
    :math:`s = \pi / (2\arcsin\sqrt{\mu_{11}/8})`. Exact for the simulated grid (area = ``s**2``)."""
    mu = eigenvalue_from_frequency(f, dt, c)
    return np.pi / (2 * np.arcsin(np.sqrt(mu / 8.0)))


class HeatTraceFit(NamedTuple):
    """Geometry read off a spectrum by fitting the heat trace (grid units)."""

    area: float  # |Omega|
    perimeter: float  # |dOmega|
    constant: float  # corner (and topology) term


def heat_trace(eigenvalues, t) -> np.ndarray:
    r""":math:`Z(t) = \sum_n e^{-\lambda_n t}` for each ``t``."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return np.exp(-np.outer(np.asarray(t, dtype=np.float64), lam)).sum(axis=1)


def fit_heat_trace(eigenvalues, *, t=None, lattice: bool = True) -> HeatTraceFit:
    r"""Recover area, perimeter and the corner constant from a spectrum through the heat-trace (Weyl) expansion.

    Continuum (Kac 1966; Weyl's law is its Tauberian twin):
    :math:`Z(t) \approx \frac{|\Omega|}{4\pi t} - \frac{|\partial\Omega|}{8\sqrt{\pi t}} + C`.
    On the grid (``lattice=True``) the free-space heat kernel :math:`1/\sqrt{4\pi t}` of one dimension is replaced by its
    lattice version :math:`g(t) = e^{-2t} I_0(2t)`, giving :math:`Z(t) \approx |\Omega|\, g^2 - \frac{|\partial\Omega|}{4}
    g + C`, which is exact for rectangles up to terms :math:`\sim e^{-s^2/t}` (the square's 1-D trace is
    :math:`s\,g(t) - \tfrac12` plus those terms). Fitted by linear least squares over ``t``.

    Parameters
    ----------
    eigenvalues
        All (or enough of the lowest) eigenvalues of ``-Delta`` in grid units.
    t
        Times to fit over; default ``geomspace(2, N/40, 40)`` (``N`` eigenvalues), short against the drum's size.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    if t is None:
        t = np.geomspace(2.0, max(lam.size / 40.0, 4.0), 40)
    t = np.asarray(t, dtype=np.float64)
    z = heat_trace(lam, t)
    g = scipy.special.ive(0, 2 * t) if lattice else 1.0 / np.sqrt(4 * np.pi * t)
    design = np.stack([g * g, -g / 4.0, np.ones_like(t)], axis=1)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    return HeatTraceFit(float(coef[0]), float(coef[1]), float(coef[2]))


def polygon_area(vertices) -> float:
    """Shoelace area of a polygon ``[(x, y), ...]``."""
    v = np.asarray(vertices, dtype=np.float64)
    x, y = v[:, 0], v[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def polygon_perimeter(vertices) -> float:
    """Perimeter of a polygon ``[(x, y), ...]``."""
    v = np.asarray(vertices, dtype=np.float64)
    return float(np.linalg.norm(np.roll(v, -1, axis=0) - v, axis=1).sum())
