"""The C kernels of the CPU engine (twi_core.models._native): the same rollout and gradients as the torch kernels."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from twi_core.models import _native, engine
from twi_core.models.dynamics import laplacian_kernel, nwm_rollout_plain
from twi_core.models.readouts import READOUTS, num_frequency_bins

@pytest.fixture(autouse=True)
def _two_threads():
    """conftest.py runs tests with one thread; the kernels split the batch over torch.get_num_threads() threads, and
    these tests must exercise that split (uneven ranges, the thread pool)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


needs_native = pytest.mark.skipif(not _native.available(), reason=f"C kernels unavailable: "
                                                                  f"{_native.unavailable_reason()}")


def test_available_where_ci_requires_it():
    """CI sets TWI_REQUIRE_NATIVE=1 (it installs a C compiler), so the fast CPU path can never be off unnoticed."""
    if os.environ.get("TWI_REQUIRE_NATIVE") == "1":
        assert _native.available(), _native.unavailable_reason()
    else:
        assert _native.available() or _native.unavailable_reason()


def _inputs(b, c, h, w, *, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    y0 = (0.5 * torch.randn(b, c, h, w, generator=g, dtype=dtype)).requires_grad_()
    omega = torch.rand(b, c, h, w, generator=g, dtype=dtype).requires_grad_()
    alpha = (0.3 * torch.rand(b, c, h, w, generator=g, dtype=dtype)).requires_grad_()
    weight = (laplacian_kernel(c, dtype=dtype) + 0.3 * torch.randn(c, c, 3, 3, generator=g, dtype=dtype))
    return y0, omega, alpha, weight.requires_grad_()


def _rel(a, b):
    return float((a.detach() - b.detach()).norm() / b.detach().norm().clamp_min(1e-30))


@needs_native
def test_kernel_choice():
    y = torch.zeros(2, 2, 8, 8)
    assert engine._kernels(False, y).name == "native"
    assert engine._kernels(False, y.double()).name == "eager"  # float64: torch kernels
    assert engine._kernels(False, torch.zeros(2, 5, 8, 8)).name == "eager"  # 4 < C, not the wide path: mkldnn
    assert engine._kernels(False, torch.zeros(2, 16, 8, 32)).name == "native"  # C = 16, W = 32: the wide path
    assert engine._kernels(False, torch.zeros(2, 16, 8, 24)).name == "eager"  # W not a multiple of 16


@needs_native
@pytest.mark.parametrize("shape", [(3, 1, 5, 7), (2, 3, 6, 4), (5, 4, 3, 9), (1, 2, 64, 64)])
@pytest.mark.parametrize("readout", [None, "linear", "fft", "max", "last", "mean"])
def test_native_equals_plain(shape, readout):
    """Non-square, odd batch (uneven split over threads), 1-4 channels, every readout, against the specification."""
    _assert_equals_plain(_inputs(*shape), readout, steps=9, segment=4)


def _assert_equals_plain(inputs, readout, *, steps: int, segment: int) -> None:
    """The engine's rollout (through whatever kernels it picks) against the specification, value and every gradient."""
    time_weight = (0.1 * torch.randn(num_frequency_bins(steps), steps)).requires_grad_()
    states = nwm_rollout_plain(*inputs, dt=0.1, steps=steps)
    ref = states if readout is None else READOUTS[readout](states, time_weight)
    out = engine.nwm_rollout(*inputs, dt=0.1, steps=steps, readout=readout, time_weight=time_weight, segment=segment)
    assert _rel(out, ref) <= 1e-5
    probe = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    wrt = (*inputs, time_weight) if readout == "linear" else inputs
    for g, gr in zip(torch.autograd.grad((out * probe).sum(), wrt), torch.autograd.grad((ref * probe).sum(), wrt)):
        assert _rel(g, gr) <= 1e-4


@needs_native
@pytest.mark.parametrize("shape", [(3, 8, 5, 16), (2, 16, 4, 32), (1, 24, 3, 48)])
@pytest.mark.parametrize("readout", [None, "linear", "last"])
def test_wide_path_equals_plain(shape, readout):
    """The register-blocked kernels (C a multiple of 8, W of 16): rollout and every gradient against the
    specification, with an odd batch split over threads, a checkpointed segment and rows of one to three blocks."""
    y0, omega, alpha, weight = _inputs(*shape)
    weight = (0.3 * weight / shape[1]).detach().requires_grad_()  # keep 24 channels' coupling in tanh's soft range
    assert engine._kernels(False, y0).name == "native"
    _assert_equals_plain((y0, omega, alpha, weight), readout, steps=7, segment=3)


@needs_native
@pytest.mark.parametrize("outputs", [5, 16])
def test_wide_path_equals_the_mixed_projection(outputs, build):
    """nwm_mixed (the Multi-MNIST NWM's online head layer) on the wide path, against the einsum of the states: with
    P = 16 mixed channels through the C library's mixing kernels (mix_absorb / mix_adjoint), with P = 5 through
    torch's GEMMs; in the native and the AVX2 build."""
    from twi_core.models.engine import nwm_mixed

    y0, omega, alpha, weight = _inputs(3, 16, 4, 16, seed=2)
    weight = (0.02 * weight).detach().requires_grad_()
    mix = (0.1 * torch.randn(outputs, 6, 16)).requires_grad_()
    assert _native.mix_supported(torch.zeros(1, 3, 16, 4, 16), outputs) == (outputs == 16)
    out = nwm_mixed(y0, omega, alpha, weight, mix, dt=0.1, steps=6, segment=4)
    ref = torch.einsum("ptc,btchw->bhwp", mix, nwm_rollout_plain(y0, omega, alpha, weight, dt=0.1, steps=6))
    assert _rel(out, ref) <= 1e-5
    wrt = (y0, omega, alpha, weight, mix)
    for g, gr in zip(torch.autograd.grad(out.square().sum(), wrt), torch.autograd.grad(ref.square().sum(), wrt)):
        assert _rel(g, gr) <= 1e-4


@pytest.fixture(params=["native", "avx2"])
def build(request, monkeypatch, tmp_path):
    """The C library as this machine builds it (``-march=native``), and, where the CPU has AVX2 and is not limited to
    it, a ``-march=haswell`` build in a scratch cache: its vectors are half as wide and its register blocks smaller,
    a variant the AVX-512 machines would otherwise never run."""
    if request.param == "avx2":
        from twi_core import _cpu

        if "avx2" not in _cpu.flags() or "avx512f" not in _cpu.flags():
            pytest.skip("the AVX2 variant is checked on AVX-512 machines (elsewhere it is the native build)")
        monkeypatch.setattr(_native, "_FLAGS", tuple("-march=haswell" if f == "-march=native" else f
                                                     for f in _native._FLAGS))
        monkeypatch.setattr(_native, "cache_root", lambda: tmp_path)
        _native._library.cache_clear()
        assert _native.available(), _native.unavailable_reason()
    yield request.param
    _native._library.cache_clear()


@needs_native
def test_mixing_kernels_equal_their_einsums_in_float64(build):
    """mix_absorb adds sum_{t,c} M[p,t,c] y_t[c] into its output; mix_adjoint returns sum_p M[p,t,c] g[p] and the
    gradient of M, sum_{b,x} g[p,b,x] y_t[b,c,x]; each against its einsum in float64, at a batch the two threads
    split unevenly (3) and a plane of several pixel tiles (64 x 96); in the native and the AVX2 build."""
    g0 = torch.Generator().manual_seed(11)
    n, b, c, h, w, p = 5, 3, 16, 64, 96, 32
    ys = torch.randn(n, b, c, h, w, generator=g0)
    mix, out0, grad = (torch.randn(*shape, generator=g0) for shape in ((p, n, c), (p, b, h * w), (p, b, h * w)))
    out = out0.clone()
    _native.mix_absorb(out, ys, mix)
    y64, m64 = ys.double().flatten(3), mix.double()
    assert _rel(out.double(), out0.double() + torch.einsum("ptc,tbcx->pbx", m64, y64)) <= 1e-6
    inj, g_mix = _native.mix_adjoint(grad, ys, mix)
    assert _rel(inj.double().flatten(3), torch.einsum("ptc,pbx->tbcx", m64, grad.double())) <= 1e-6
    assert _rel(g_mix.double(), torch.einsum("pbx,tbcx->ptc", grad.double(), y64)) <= 1e-6
    assert _native.mix_adjoint(grad, ys, mix, weight_grad=False)[1] is None


@needs_native
def test_kernels_flush_denormals_and_restore_the_callers_mode():
    """A state in the denormal range is flushed inside the kernels (the decaying waves would otherwise run on
    microcode assists), while the caller's floating-point mode is left as it was."""
    tiny = torch.full((1, 1, 4, 4), 1e-39)  # a float32 denormal
    ybuf, zbuf, sbuf = torch.zeros(2, 1, 1, 4, 4), torch.zeros(2, 1, 1, 4, 4), torch.empty(1, 1, 1, 4, 4)
    ybuf[0] = tiny
    center = torch.zeros(1, 1, 3, 3)
    center[0, 0, 1, 1] = 1.0  # s = tanh(y)
    zero = torch.zeros_like(tiny)
    _native.forward_segment(ybuf, zbuf, sbuf, zero, zero, center, 0.1, 1)
    assert float(sbuf.abs().max()) == 0.0 and float(ybuf[1].abs().max()) == 0.0  # read as zero
    assert float(torch.tensor([1e-30]) * 1e-9) > 0.0  # torch, after the call: denormals as before


@needs_native
def test_native_equals_torch_kernels(monkeypatch):
    """Step for step the same numbers as the eager torch kernels (the fast path before the C library)."""
    inputs = _inputs(4, 2, 16, 16, seed=3)

    def run():
        out = engine.nwm_rollout(*inputs, dt=0.1, steps=30, readout="mean")
        return out, torch.autograd.grad(out.square().sum(), inputs)

    native = run()
    monkeypatch.setattr(engine._native, "supports", lambda y0: False)
    torch_kernels = run()
    assert _rel(native[0], torch_kernels[0]) <= 1e-6
    for a, b in zip(native[1], torch_kernels[1]):
        assert _rel(a, b) <= 1e-5


@needs_native
def test_expanded_output_gradient():
    """``states.sum().backward()`` sends a stride-0 gradient; the kernel reads unit-stride rows, so it is copied."""
    y0, omega, alpha, weight = inputs = _inputs(2, 2, 6, 6)
    out = engine.nwm_rollout(y0, omega, alpha, weight, dt=0.1, steps=5)
    ref = nwm_rollout_plain(y0, omega, alpha, weight, dt=0.1, steps=5)
    for g, gr in zip(torch.autograd.grad(out.sum(), inputs), torch.autograd.grad(ref.sum(), inputs)):
        assert _rel(g, gr) <= 1e-5


@needs_native
def test_tanh_accuracy():
    """The kernel's own vectorisable tanh: within 3e-7 relative of float64 tanh from 1e-30 to 60, and exact at 0."""
    x = torch.cat([torch.linspace(-60, 60, 20001), torch.logspace(-30, 1.5, 4000), -torch.logspace(-30, 1.5, 4000),
                   torch.tensor([0.0, 0.3, -0.3, 0.29999998, 10.0, -10.0])])
    x = x[: x.numel() // 4 * 4].reshape(1, 1, -1, 4)
    ybuf, zbuf = torch.zeros(2, *x.shape), torch.zeros(2, *x.shape)
    ybuf[0] = x
    sbuf = torch.empty(1, *x.shape)
    center = torch.zeros(1, 1, 3, 3)
    center[0, 0, 1, 1] = 1.0  # s = tanh(y)
    zero = torch.zeros_like(x)
    _native.forward_segment(ybuf, zbuf, sbuf, zero, zero, center, 0.1, 1)
    exact = torch.tanh(x.double())
    rel = (sbuf[0].double() - exact).abs() / exact.abs().clamp_min(1e-300)
    assert float(rel[exact != 0].max()) <= 3e-7
    assert float(sbuf[0][x == 0].abs().max()) == 0.0


@needs_native
def test_non_finite_values_propagate_as_in_torch():
    """Infinities and NaNs give what the torch kernels give (tanh(+-inf) = +-1, NaN stays NaN, 0 * inf = NaN in the
    coupling): a NaN must not be hidden as a saturated +-1."""
    g = torch.Generator().manual_seed(5)
    y = torch.randn(2, 2, 6, 7, generator=g)
    y[0, 0, 1, 1], y[0, 1, 4, 5], y[1, 0, 2, 3] = float("inf"), float("-inf"), float("nan")
    omega, alpha = torch.rand(2, 2, 6, 7, generator=g), torch.rand(2, 2, 6, 7, generator=g)
    weight = torch.randn(2, 2, 3, 3, generator=g)
    weight[:, :, 0, :] = 0.0  # zero taps: 0 * inf = NaN, as in the convolution
    ybuf, zbuf, sbuf = torch.zeros(2, 2, 2, 6, 7), torch.zeros(2, 2, 2, 6, 7), torch.empty(1, 2, 2, 6, 7)
    ybuf[0] = y
    _native.forward_segment(ybuf, zbuf, sbuf, omega, alpha, weight, 0.1, 1)
    expected = [torch.empty_like(y) for _ in range(3)]
    engine._eager_step_into(y, torch.zeros_like(y), omega, alpha, weight, 0.1, *expected)
    for got, want in zip((ybuf[1], zbuf[1], sbuf[0]), expected):
        assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.isinf(), want.isinf())
        torch.testing.assert_close(got, want, equal_nan=True)
    assert sbuf[0].isnan().any() and (sbuf[0].abs() == 1).any()  # both cases occur


@needs_native
def test_bad_arguments_are_refused():
    y = torch.zeros(2, 2, 4, 4, 4)[..., 0]  # non-contiguous
    with pytest.raises(ValueError, match="must be a contiguous float32 CPU tensor"):
        _native.forward_segment(torch.zeros(2, 2, 2, 4, 4), torch.zeros(2, 2, 2, 4, 4), torch.zeros(1, 2, 2, 4, 4), y,
                                y, torch.zeros(2, 2, 3, 3), 0.1, 1)
    assert not _native.supports(torch.zeros(1, 5, 8, 8))  # too many channels for the row kernels, not the wide path
    assert not _native.supports(torch.zeros(1, 72, 8, 16))  # beyond the wide path's 64
    assert not _native.supports(torch.zeros(1, 2, 8, 8, dtype=torch.float64))
    assert not _native.supports(torch.zeros(1, 2, 2, 8))  # rows shorter than the 3x3 stencil


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_switched_off_or_without_compiler_falls_back(tmp_path):
    """$TWI_ENGINE_NATIVE=0, or a compiler that fails: the torch kernels run, with the same numbers, and the reason
    is reported."""
    code = """
        import torch
        from twi_core.models import _native, engine
        from twi_core.models.dynamics import laplacian_kernel, nwm_rollout_plain
        y = 0.1 * torch.ones(1, 2, 6, 6)
        print(_native.available(), engine._kernels(False, y).name, "|", _native.unavailable_reason())
        out = engine.nwm_rollout(y, y, y, laplacian_kernel(2), dt=0.1, steps=4)
        assert torch.allclose(out, nwm_rollout_plain(y, y, y, laplacian_kernel(2), dt=0.1, steps=4))
    """
    off = _python(code, TWI_ENGINE_NATIVE="0", XDG_CACHE_HOME=str(tmp_path / "a"))
    assert off.returncode == 0, off.stderr
    assert off.stdout.startswith("False eager |") and "TWI_ENGINE_NATIVE=0" in off.stdout
    broken = _python(code, CC="false", XDG_CACHE_HOME=str(tmp_path / "b"))
    assert broken.returncode == 0, broken.stderr
    assert broken.stdout.startswith("False eager |") and "false failed" in broken.stdout
    assert not list((tmp_path / "b").rglob("*.so")) and not list((tmp_path / "b").rglob("*.tmp"))


@needs_native
def test_corrupt_cached_library_is_rebuilt(tmp_path):
    code = """
        from twi_core.models import _native
        path = _native.library_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a shared library")
        print(_native.available(), path.stat().st_size > 1000)
    """
    run = _python(code, XDG_CACHE_HOME=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "True"]
    assert "did not load" in run.stderr


@needs_native
def test_usable_in_a_forked_child():
    """A process forked after the kernels ran (a fork-based worker pool) runs them too, instead of hanging on the
    parent's thread pool, which it inherits without its threads."""
    import multiprocessing

    inputs = [t.detach() for t in _inputs(4, 2, 8, 8)]
    before = engine.nwm_rollout(*inputs, dt=0.1, steps=6, readout="mean")  # starts the pool in this process
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        result = pool.apply_async(_rollout_in_child, (inputs,))
        after = result.get(timeout=60)
    torch.testing.assert_close(after, before)


def _rollout_in_child(inputs):
    torch.set_num_threads(2)  # two ranges: the thread pool is used
    return engine.nwm_rollout(*inputs, dt=0.1, steps=6, readout="mean")
