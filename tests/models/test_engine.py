"""The fast NWM engine against the specification (dynamics.nwm_rollout_plain + readouts.READOUTS), for every readout."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from twi_core.models import engine
from twi_core.models.dynamics import laplacian_kernel, nwm_rollout_plain
from twi_core.models.readouts import READOUTS, num_frequency_bins

READOUT_NAMES = [None, "last", "mean", "max", "fft", "linear"]


def _inputs(*, b=2, c=2, size=8, steps=12, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    y0 = (0.5 * torch.randn(b, c, size, size, generator=g, dtype=dtype)).requires_grad_()
    omega = torch.rand(b, c, size, size, generator=g, dtype=dtype).requires_grad_()
    alpha = (0.3 * torch.rand(b, c, size, size, generator=g, dtype=dtype)).requires_grad_()
    # a trained-looking coupling: Laplacian plus off-diagonal and asymmetric parts, so transposition errors show
    weight = (laplacian_kernel(c, dtype=dtype) + 0.3 * torch.randn(c, c, 3, 3, generator=g, dtype=dtype))
    time_weight = 0.1 * torch.randn(num_frequency_bins(steps), steps, generator=g, dtype=dtype)
    return y0, omega, alpha, weight.requires_grad_(), time_weight.requires_grad_()


def _rel(a, b):
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _compare(readout, *, segment=None, compile=False, dtype=torch.float32, steps=12, c=2, fwd=1e-5, bwd=1e-4):
    inputs = _inputs(dtype=dtype, steps=steps, c=c)
    y0, omega, alpha, weight, time_weight = inputs
    states = nwm_rollout_plain(y0, omega, alpha, weight, dt=0.1, steps=steps)
    ref = states if readout is None else READOUTS[readout](states, time_weight)
    out = engine.nwm_rollout(y0, omega, alpha, weight, dt=0.1, steps=steps, readout=readout, time_weight=time_weight,
                             segment=segment, compile=compile)
    assert out.shape == ref.shape and out.dtype == ref.dtype
    assert _rel(out, ref) <= fwd, f"forward differs by {_rel(out, ref):.2e}"
    probe = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    grads_ref = torch.autograd.grad((ref * probe).sum(), inputs, allow_unused=True)
    grads = torch.autograd.grad((out * probe).sum(), inputs, allow_unused=True)
    names = ["y0", "omega", "alpha", "coupling_weight", "time_weight"]
    for name, g, gr in zip(names, grads, grads_ref):
        if gr is None:  # time_weight outside 'linear': no gradient on either side
            assert g is None or float(g.abs().max()) == 0.0, name
            continue
        assert g is not None, name
        assert _rel(g, gr) <= bwd, f"gradient of {name} differs by {_rel(g, gr):.2e}"


@pytest.mark.parametrize("readout", READOUT_NAMES)
@pytest.mark.parametrize("segment", [None, 5, 1])
def test_equal_to_plain_fp32(readout, segment):
    """Forward to 1e-5 and gradients to 1e-4 relative, whole rollout and checkpointed segments (5 does not divide 12)."""
    _compare(readout, segment=segment)


@pytest.mark.parametrize("readout", READOUT_NAMES)
def test_equal_to_plain_fp64(readout):
    """In float64 the fast path is the same arithmetic up to rounding: 1e-12."""
    _compare(readout, segment=4, dtype=torch.float64, fwd=1e-12, bwd=1e-12)


@pytest.mark.parametrize("readout", ["linear", "max"])
def test_many_channels(readout):
    """Full channel mixing with C = 5 (the Multi-MNIST model has 16)."""
    _compare(readout, c=5, segment=3)


@pytest.mark.parametrize("readout", ["linear", "mean"])
def test_compiled_kernel_functions(readout, monkeypatch):
    """The functions handed to torch.compile (shifted-add coupling), run eagerly here: same results as the plain path.

    Compiling itself takes about a minute on a 2-core CPU, too slow for a unit test; run
    ``TWI_TEST_COMPILE=1 pytest tests/models/test_engine.py -k really_compiled`` to check the compiled kernels too.
    """
    kernels = engine._shift_kernels()
    monkeypatch.setattr(engine, "_compiled_kernels", lambda device, channels: kernels)
    _compare(readout, segment=5, compile=True)


@pytest.mark.skipif(os.environ.get("TWI_TEST_COMPILE") != "1", reason="torch.compile takes ~1 min; TWI_TEST_COMPILE=1")
def test_really_compiled_kernels():
    _compare("linear", segment=5, compile=True)


def test_shift_coupling_equals_conv():
    """The stencil form used by the compiled kernels is the circular convolution of the specification."""
    g = torch.Generator().manual_seed(3)
    y = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)
    w = torch.randn(3, 3, 3, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(engine._coupling_shift(y, w), engine._coupling_conv(y, w))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the Triton weight gradient runs on CUDA only")
@pytest.mark.parametrize("c", [1, 2, 3])
def test_triton_weight_grad_equals_gemm_form(c):
    """The CUDA path's weight gradient (one Triton reduction) is the GEMM form's, non-square images too."""
    from twi_core.models import _triton_wgrad

    g = torch.Generator().manual_seed(c)
    u = torch.randn(37, c, 6, 7, generator=g, dtype=torch.float64)
    y = torch.randn(37, c, 6, 7, generator=g, dtype=torch.float64)
    w = torch.zeros(c, c, 3, 3, dtype=torch.float64)
    expected = engine._weight_grad(u, y, w)
    got = _triton_wgrad.weight_grad(u.cuda(), y.cuda(), w.cuda()).cpu()
    torch.testing.assert_close(got, expected)
    got32 = _triton_wgrad.weight_grad(u.float().cuda(), y.float().cuda(), w.float().cuda()).cpu()
    torch.testing.assert_close(got32.double(), expected, rtol=1e-5, atol=1e-5)


def test_adjoint_kernel_is_the_transpose():
    """<conv(x), u> == <x, conv^T(u)> on the torus: the adjoint step uses the flipped, channel-transposed kernel."""
    g = torch.Generator().manual_seed(4)
    x, u = (torch.randn(1, 3, 6, 5, generator=g, dtype=torch.float64) for _ in range(2))
    w = torch.randn(3, 3, 3, 3, generator=g, dtype=torch.float64)
    lhs = (engine._coupling_conv(x, w) * u).sum()
    rhs = (x * engine._coupling_conv(u, engine._transpose_kernel(w))).sum()
    torch.testing.assert_close(lhs, rhs)


def test_dft_projection_matches_rfft():
    y = torch.randn(3, 17, dtype=torch.float64)
    p = engine.dft_projection(17, dtype=torch.float64)
    k = num_frequency_bins(17)
    torch.testing.assert_close(torch.complex(y @ p[:k].t(), y @ p[k:].t()), torch.fft.rfft(y, dim=1))


def test_test_vector_constant_field():
    """Reference notes §2.1 case 1: constant field, C = 1, ω = 1, α = 0, y0 = 1 gives y = 0.99, 0.9701, 0.940499."""
    one = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    ys = engine.nwm_rollout(one, one, 0 * one, laplacian_kernel(1, dtype=torch.float64), dt=0.1, steps=3)
    torch.testing.assert_close(ys[0, :, 0, 0, 0], torch.tensor([0.99, 0.9701, 0.940499], dtype=torch.float64))


def test_checkpointing_saves_less():
    """Segments keep boundary states only: the bytes saved for backward shrink by far more than 4x at T = 64."""
    def saved_bytes(segment):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        y0, omega, alpha, weight, tw = _inputs(steps=64, size=16)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            engine.nwm_rollout(y0, omega, alpha, weight, dt=0.1, steps=64, readout="linear", time_weight=tw,
                               segment=segment)
        return total

    assert saved_bytes(8) * 4 < saved_bytes(64)


def test_choose_segment():
    assert engine.choose_segment(100, 1000, budget=10**9) == 100
    assert engine.choose_segment(100, 10**8, budget=10**9) == 10


def _assert_fast_model_equals_plain(fast, x, target, label=""):
    """Loss and every parameter gradient of one training step, fast vs plain (same weights), and inference logits."""
    from twi_core.models.registry import build

    plain = build(**{**fast.config, "engine": "plain"})
    plain.load_state_dict(fast.state_dict())
    losses = []
    for model in (fast, plain):
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-7)
    for (name, p), q in zip(fast.named_parameters(), plain.parameters()):
        if q.grad is None:
            assert p.grad is None or float(p.grad.abs().max()) == 0.0, name
        else:
            assert _rel(p.grad, q.grad) <= 1e-4, f"{label}: {name} differs by {_rel(p.grad, q.grad):.2e}"
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-6)


def test_model_fast_equals_plain_training_step():
    """The whole NWM (encoders, engine, head): fast and plain give the same loss and parameter gradients."""
    from twi_core.models.registry import build

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(2))
    for readout in ("linear", "fft", "max"):
        torch.manual_seed(0)
        fast = build("nwm", in_channels=3, num_classes=4, image_size=8, steps=10, readout=readout)
        _assert_fast_model_equals_plain(fast, x, target, readout)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"readout": "fourier"}, ValueError, "expected None or one of"),
        ({"readout": "linear"}, ValueError, "time_weight"),
        ({"steps": 0}, ValueError, "steps"),
        ({"dt": -0.1}, ValueError, "dt"),
        ({"segment": 0}, ValueError, "segment"),
    ],
)
def test_validation(kwargs, error, match):
    y0 = torch.zeros(1, 2, 4, 4)
    args = {"dt": 0.1, "steps": 3, **kwargs}
    with pytest.raises(error, match=match):
        engine.nwm_rollout(y0, y0, y0, laplacian_kernel(2), **args)


def test_validation_shapes_and_types():
    y0 = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="omega"):
        engine.nwm_rollout(y0, torch.zeros(1, 2, 4, 5), y0, laplacian_kernel(2), dt=0.1, steps=3)
    with pytest.raises(ValueError, match="coupling_weight"):
        engine.nwm_rollout(y0, y0, y0, laplacian_kernel(3), dt=0.1, steps=3)
    with pytest.raises(TypeError, match="alpha"):
        engine.nwm_rollout(y0, y0, [0.0], laplacian_kernel(2), dt=0.1, steps=3)
    with pytest.raises(ValueError, match="readout"):
        engine.nwm_features(y0, y0, y0, laplacian_kernel(2), dt=0.1, steps=3, readout=None)


def test_flop_count_matches_reference_notes():
    """Reference notes §11.3: the Tetrominoes NWM-linear forward is 0.753 GMAC per image; training counts 3x forward."""
    from twi_core.benchmarking import training_flops_per_image
    from twi_core.models.registry import paper_config

    flops = training_flops_per_image(paper_config("tetrominoes", "nwm", "linear"))
    assert abs(flops / 6 / 1e9 - 0.753) < 0.001
    last = training_flops_per_image(paper_config("tetrominoes", "nwm", "last"))
    assert abs(last / 6 / 1e9 - 0.607) < 0.001  # §11.3: "Tetro NWM last" 0.607 GMAC


def _mixed_compare(*, c, segment, dtype, steps=12, p=3, tol=1e-5):
    y0, omega, alpha, weight, _ = _inputs(dtype=dtype, steps=steps, c=c)
    mix = (0.2 * torch.randn(p, steps, c, generator=torch.Generator().manual_seed(5), dtype=dtype)).requires_grad_()
    inputs = (y0, omega, alpha, weight, mix)
    states = nwm_rollout_plain(y0, omega, alpha, weight, dt=0.1, steps=steps)  # (B, T, C, H, W)
    ref = torch.einsum("ptc,btchw->bhwp", mix, states)
    out = engine.nwm_mixed(y0, omega, alpha, weight, mix, dt=0.1, steps=steps, segment=segment)
    assert out.shape == ref.shape
    assert _rel(out, ref) <= tol
    probe = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    for name, g, gr in zip(["y0", "omega", "alpha", "coupling_weight", "mix"],
                           torch.autograd.grad((out * probe).sum(), inputs),
                           torch.autograd.grad((ref * probe).sum(), inputs)):
        assert _rel(g, gr) <= 10 * tol, f"gradient of {name} differs by {_rel(g, gr):.2e}"


@pytest.mark.parametrize("c, segment", [(2, None), (3, 5), (5, 1)])
def test_mixed_projection_equals_plain(c, segment):
    """nwm_mixed (the linear readout folded into the head's first layer): values and all gradients, fp32 and fp64."""
    _mixed_compare(c=c, segment=segment, dtype=torch.float32)
    _mixed_compare(c=c, segment=segment, dtype=torch.float64, tol=1e-12)


def test_mixed_projection_rejects_wrong_shapes():
    y0, omega, alpha, weight, _ = _inputs(steps=12, c=2)
    with pytest.raises(ValueError, match=r"mix must have shape \(P, T=12, C=2\)"):
        engine.nwm_mixed(y0, omega, alpha, weight, torch.zeros(3, 11, 2), dt=0.1, steps=12)
    with pytest.raises(TypeError, match="mix must be a torch.Tensor"):
        engine.nwm_mixed(y0, omega, alpha, weight, [[0.0]], dt=0.1, steps=12)


def test_nwm_with_folded_linear_head_equals_plain():
    """A narrow head (the Multi-MNIST shape): the fast NWM folds readout and first layer; loss and gradients as plain."""
    from twi_core.models.nwm import fuse_linear_head
    from twi_core.models.registry import build

    torch.manual_seed(0)
    fast = build("nwm", in_channels=1, num_classes=4, image_size=8, hidden_channels=3, steps=40, head="small")
    assert fuse_linear_head(fast.settings)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.randint(0, 4, (2, 8, 8), generator=torch.Generator().manual_seed(2))
    _assert_fast_model_equals_plain(fast, x, target, "folded")


@pytest.mark.parametrize("readout", ["linear", "fft"])
def test_one_gemm_projection_form(readout, monkeypatch):
    """The GPU's form of the time projection (one GEMM and a transposed add), run here on the CPU: same results."""
    monkeypatch.setattr(engine, "_PER_IMAGE_PROJECTION", set())
    _compare(readout, segment=5)
