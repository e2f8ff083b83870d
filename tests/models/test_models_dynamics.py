"""The NWM and Conv-LSTM steps against the reference test vectors (reference notes §2.1) and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from twi_core.models.dynamics import (
    LSTMState,
    NWMState,
    circular_conv2d,
    conv_lstm_step,
    laplacian_kernel,
    nwm_rollout_plain,
    nwm_step,
)
from twi_core.models.nwm import max_stable_dt

F64 = torch.float64


def _field(value, size=4, channels=1):
    return torch.full((1, channels, size, size), float(value), dtype=F64)


def test_laplacian_init_is_diagonal_five_point_stencil():
    w = laplacian_kernel(3, dtype=F64)
    stencil = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=F64)
    for i in range(3):
        for j in range(3):
            assert torch.equal(w[i, j], stencil if i == j else torch.zeros(3, 3, dtype=F64))


def test_case1_constant_field():
    """Reference notes §2.1 case 1: C = 1, ω = 1, α = 0, y₀ = 1, z₀ = 0, Δt = 0.1 (the Laplacian of a constant is 0)."""
    expected = [(0.99, -0.1), (0.9701, -0.199), (0.940499, -0.29601)]
    state = NWMState(_field(1), _field(0))
    for y_ref, z_ref in expected:
        state = nwm_step(state, omega=_field(1), alpha=_field(0), coupling_weight=laplacian_kernel(1, dtype=F64), dt=0.1)
        assert torch.allclose(state.y, _field(y_ref), atol=1e-6, rtol=0)
        assert torch.allclose(state.z, _field(z_ref), atol=1e-6, rtol=0)


def test_case2_impulse_on_torus_wraps():
    """Reference notes §2.1 case 2: impulse at (0, 0) of a 4×4 torus, ω = α = 0."""
    y0 = _field(0)
    y0[0, 0, 0, 0] = 1.0
    s = nwm_step(NWMState(y0, _field(0)), omega=_field(0), alpha=_field(0),
                 coupling_weight=laplacian_kernel(1, dtype=F64), dt=0.1)
    assert abs(float(s.z[0, 0, 0, 0]) - 0.1 * math.tanh(-4)) < 1e-12
    # the notes print y₁ = 0.99001 (five decimals); exactly it is 1 + Δt² tanh(-4) = 0.9900067
    assert abs(float(s.y[0, 0, 0, 0]) - (1 + 0.01 * math.tanh(-4))) < 1e-12
    assert abs(float(s.y[0, 0, 0, 0]) - 0.99001) < 5e-6
    for r, c in [(0, 1), (1, 0), (0, 3), (3, 0)]:  # (0, 3) and (3, 0) are the wrapped neighbours
        assert abs(float(s.y[0, 0, r, c]) - 0.007616) < 1e-6
        assert abs(float(s.z[0, 0, r, c]) - 0.07616) < 1e-5
    for r, c in [(1, 1), (2, 2), (0, 2), (2, 0)]:  # not adjacent: untouched after one step
        assert float(s.y[0, 0, r, c]) == 0.0


def test_circular_conv_matches_conv2d_circular_padding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 5, generator=g, dtype=F64)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular").double()
    assert torch.allclose(circular_conv2d(x, conv.weight, conv.bias), conv(x), atol=1e-12)


def test_undamped_linear_mode_obeys_discrete_oscillator_recurrence():
    """Symplectic Euler on y'' = -ω y is y_{t+1} - (2 - Δt² ω) y_t + y_{t-1} = 0 exactly (constant field: no coupling)."""
    omega, dt = 1.7, 0.1
    ys = nwm_rollout_plain(_field(0.3), _field(omega), _field(0), laplacian_kernel(1, dtype=F64), dt=dt, steps=50)
    y = ys[0, :, 0, 0, 0]
    residual = y[2:] - (2 - dt**2 * omega) * y[1:-1] + y[:-2]
    assert float(residual.abs().max()) < 1e-12
    # and its period matches the per-step rotation θ = 2 arcsin(Δt √ω / 2)
    theta = 2 * math.asin(dt * math.sqrt(omega) / 2)
    t = torch.arange(1, 51, dtype=F64)
    # y_t = A cos(θ t) + B sin(θ t) with y_0 = 0.3 and y_1 = y_0 (1 - Δt² ω)
    a = 0.3
    b = (0.3 * (1 - dt**2 * omega) - a * math.cos(theta)) / math.sin(theta)
    assert torch.allclose(y, a * torch.cos(theta * t) + b * torch.sin(theta * t), atol=1e-10)


def test_damping_shrinks_amplitude_by_sqrt_det_per_step():
    """With damping α the linear step has det = 1 - Δt α: the energy-like quadratic form shrinks accordingly."""
    omega, alpha, dt, steps = 1.0, 0.5, 0.1, 200
    ys = nwm_rollout_plain(_field(1.0), _field(omega), _field(alpha), laplacian_kernel(1, dtype=F64), dt=dt, steps=steps)
    y = ys[0, :, 0, 0, 0]
    ratio = float(y[100:].abs().max() / y[:100].abs().max())
    assert ratio == pytest.approx((1 - dt * alpha) ** 50, rel=0.05)


@pytest.mark.parametrize("dt, grows", [(0.75, True), (0.70, False)])
def test_stability_bound_on_checkerboard_mode(dt, grows):
    """The stability bound of max_stable_dt: the checkerboard mode (Laplacian eigenvalue 8) blows up above it."""
    assert (dt > max_stable_dt()) == grows
    idx = torch.arange(8, dtype=F64)
    checker = ((-1.0) ** (idx[:, None] + idx[None, :]))[None, None] * 1e-8
    ys = nwm_rollout_plain(checker, 0 * checker, 0 * checker, laplacian_kernel(1, dtype=F64), dt=dt, steps=200)
    growth = float(ys[:, -20:].abs().max() / 1e-8)
    assert (growth > 100) == grows


def test_conv_lstm_gate_order_and_update():
    """Gates are consecutive C-channel blocks in the order i, f, g, o; checked with bias-only gates."""
    c = 2
    bias = torch.cat([torch.full((c,), v, dtype=F64) for v in (0.3, -0.7, 1.1, 2.0)])  # i, f, g, o
    weight = torch.zeros(4 * c, 2 * c, 3, 3, dtype=F64)
    state = LSTMState(_field(0.5, channels=c), _field(0.2, channels=c), _field(-0.4, channels=c))
    out = conv_lstm_step(state, conv_weight=weight, conv_bias=bias, transform=lambda h: 3 * h)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    c1 = sig(-0.7) * -0.4 + sig(0.3) * math.tanh(1.1)
    h1 = sig(2.0) * math.tanh(c1)
    assert torch.allclose(out.c, _field(c1, channels=c), atol=1e-12)
    assert torch.allclose(out.h, _field(h1, channels=c), atol=1e-12)
    assert torch.allclose(out.y, _field(3 * h1, channels=c), atol=1e-12)
