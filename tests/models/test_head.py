"""The fused per-pixel MLP head (twi_core.models.head) against its specification, the nn.Sequential form."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from twi_core.models import head as head_module
from twi_core.models import workspace as workspace_module
from twi_core.models.readouts import HEADS, PixelMLP

TOL = {torch.float32: dict(forward=1e-5, grad=1e-4), torch.float64: dict(forward=1e-12, grad=1e-10)}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm().clamp_min(1e-30))


def _model(head: str, dtype: torch.dtype, *, fused: bool = True, features: int = 7, classes: int = 3) -> PixelMLP:
    torch.manual_seed(0)
    return PixelMLP(features, HEADS[head], classes, fused=fused).to(dtype)


def _run(model: PixelMLP, forward, x: torch.Tensor, target: torch.Tensor):
    """Logits, and the gradients of the cross-entropy for x (if it requires grad) and every parameter."""
    logits = forward(x)
    loss = F.cross_entropy(logits, target)
    wrt = ([x] if x.requires_grad else []) + list(model.parameters())
    return logits, torch.autograd.grad(loss, wrt)


@pytest.fixture
def pooled(monkeypatch):
    """Pool every buffer, however small, in a fresh workspace (the default pools only >= 4 MiB)."""
    monkeypatch.setattr(workspace_module, "WORKSPACE_MIN_BYTES", 0)
    monkeypatch.setattr(workspace_module, "WORKSPACE", workspace_module.Workspace())
    assert workspace_module.WORKSPACE.enabled
    return workspace_module.WORKSPACE


@pytest.mark.parametrize("head", ["default", "small"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("pool", [False, True])
def test_fused_head_equals_sequential(head, dtype, input_grad, pool, request):
    if pool:
        request.getfixturevalue("pooled")
    model = _model(head, dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 7, generator=g, dtype=dtype).requires_grad_(input_grad)
    target = torch.randint(0, 3, (2, 3, 5), generator=g)
    logits, grads = _run(model, model.forward, x, target)
    ref_logits, ref_grads = _run(model, model.forward_plain, x, target)
    assert logits.shape == ref_logits.shape == (2, 3, 3, 5)
    assert _rel(logits, ref_logits) <= TOL[dtype]["forward"]
    assert len(grads) == len(ref_grads) == 2 * (len(HEADS[head]) + 1) + input_grad
    for a, b in zip(grads, ref_grads):
        assert a.shape == b.shape and float(b.norm()) > 0
        assert _rel(a, b) <= TOL[dtype]["grad"]
    if pool:
        assert workspace_module.WORKSPACE.nbytes > 0  # the run above did draw from the pool


def test_relu_masks_are_exercised():
    """Half the pre-activations are negative at initialisation: a wrong mask would change the gradients."""
    model = _model("default", torch.float64)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    z = model.layers[0](x)
    assert 0.2 < float((z <= 0).double().mean()) < 0.8
    logits, grads = _run(model, model.forward, x, torch.zeros(2, 3, 5, dtype=torch.long))
    # Without the mask (ReLU' = 1), the first layer's weight gradient is different.
    unmasked = nn.Sequential(*[m for m in model.layers if isinstance(m, nn.Linear)])
    loss = F.cross_entropy(unmasked(x).permute(0, 3, 1, 2), torch.zeros(2, 3, 5, dtype=torch.long))
    assert _rel(torch.autograd.grad(loss, unmasked[0].weight)[0], grads[0]) > 1e-3


def test_parameters_state_dict_and_rng_unchanged():
    """Same parameters, keys and values as the nn.Sequential head built from the same seed (authors' checkpoints)."""
    fused, plain = _model("default", torch.float32), _model("default", torch.float32, fused=False)
    torch.manual_seed(0)
    layers, widths = [], (7, 256, 256, 256, 3)
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    reference = nn.Sequential(*layers[:-1])
    keys = [f"layers.{i}.{kind}" for i in (0, 2, 4, 6) for kind in ("weight", "bias")]
    assert list(fused.state_dict()) == list(plain.state_dict()) == keys
    for key, value in reference.state_dict().items():
        assert torch.equal(fused.state_dict()[f"layers.{key}"], value)
        assert torch.equal(plain.state_dict()[f"layers.{key}"], value)
    assert fused.fused and not plain.fused
    x = torch.randn(1, 2, 2, 7)
    torch.testing.assert_close(plain(x), plain.forward_plain(x), rtol=0, atol=0)


def test_no_grad_inference_and_non_contiguous_input():
    model = _model("small", torch.float32)
    x = torch.randn(2, 7, 4, 6).permute(0, 2, 3, 1)  # channels-last view, not contiguous
    with torch.no_grad():
        out = model(x)
    assert not out.requires_grad
    torch.testing.assert_close(out, model.forward_plain(x).detach(), rtol=1e-5, atol=1e-6)


def test_frozen_parameters_get_no_gradient():
    model = _model("small", torch.float32)
    model.layers[0].weight.requires_grad_(False)
    model.layers[2].bias.requires_grad_(False)
    x = torch.randn(2, 3, 4, 7, requires_grad=True)
    F.cross_entropy(model(x), torch.zeros(2, 3, 4, dtype=torch.long)).backward()
    assert model.layers[0].weight.grad is None and model.layers[2].bias.grad is None
    fused = [x.grad.clone()] + [p.grad.clone() for p in model.parameters() if p.requires_grad]
    x.grad = None
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model.forward_plain(x), torch.zeros(2, 3, 4, dtype=torch.long)).backward()
    plain = [x.grad] + [p.grad for p in model.parameters() if p.requires_grad]
    for a, b in zip(fused, plain):
        assert _rel(a, b) <= 1e-5


def test_pool_reuses_buffers_but_never_live_ones(pooled):
    """Two graphs alive at once, retain_graph and kept gradients: no pooled buffer is overwritten while in use."""
    model = _model("default", torch.float32)
    x1, x2 = torch.randn(2, 3, 4, 7, requires_grad=True), torch.randn(2, 3, 4, 7, requires_grad=True)
    t = torch.randint(0, 3, (2, 3, 4))
    ref = [_run(model, model.forward_plain, x, t)[1] for x in (x1, x2)]
    loss1 = F.cross_entropy(model(x1), t)  # graph 1 holds its activations ...
    loss2 = F.cross_entropy(model(x2), t)  # ... while graph 2 draws its own
    wrt1, wrt2 = [x1, *model.parameters()], [x2, *model.parameters()]
    g2 = torch.autograd.grad(loss2, wrt2, retain_graph=True)
    g1 = torch.autograd.grad(loss1, wrt1)
    g2_again = torch.autograd.grad(loss2, wrt2)  # backward through a retained graph after the pool was reused
    for got, want in ((g1, ref[0]), (g2, ref[1]), (g2_again, ref[1])):
        for a, b in zip(got, want):
            assert _rel(a, b) <= 1e-5
    # Steady state: further steps reuse the pool instead of growing it.
    x1.grad = None
    F.cross_entropy(model(x1), t).backward()
    held = pooled.nbytes
    kept = x1.grad  # the input gradient leaves the head: it is not a pooled buffer
    for _ in range(3):
        F.cross_entropy(model(x1), t).backward()
    assert pooled.nbytes == held > 0
    pool_storages = {buf.untyped_storage().data_ptr() for buf, _, _ in pooled._buffers}
    assert kept.untyped_storage().data_ptr() not in pool_storages
    head_module.clear_workspace()
    assert pooled.nbytes == 0


def test_pool_steps_aside_when_glibc_reuses_memory(pooled, monkeypatch):
    monkeypatch.setattr(workspace_module, "freed_memory_reused", lambda: True)
    model = _model("small", torch.float32)
    F.cross_entropy(model(torch.randn(1, 2, 2, 7)), torch.zeros(1, 2, 2, dtype=torch.long)).backward()
    assert pooled.nbytes == 0


def test_pool_disabled_without_use_count(monkeypatch):
    monkeypatch.setattr(workspace_module, "_use_count_fn", lambda: None)
    assert not head_module.Workspace().enabled


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_reuse_freed_memory_in_a_fresh_process():
    code = ("from twi_core._memory import reuse_freed_memory, freed_memory_reused\n"
            "import platform\n"
            "ok = reuse_freed_memory()\n"
            "assert ok == (platform.libc_ver()[0] == 'glibc') == freed_memory_reused(), ok\n"
            "assert reuse_freed_memory() == ok\n"
            "print(ok)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_head_on_cuda_equals_sequential():
    model = _model("default", torch.float32).cuda()
    x = torch.randn(2, 3, 5, 7, device="cuda", requires_grad=True)
    target = torch.randint(0, 3, (2, 3, 5), device="cuda")
    logits, grads = _run(model, model.forward, x, target)
    ref_logits, ref_grads = _run(model, model.forward_plain, x, target)
    assert _rel(logits, ref_logits) <= 1e-5
    for a, b in zip(grads, ref_grads):
        assert _rel(a, b) <= 1e-4


@pytest.mark.parametrize("fused", [True, False])
def test_forward_after_first_continues_the_head(fused):
    """forward(x) == forward_after_first(x @ W1.T + b1): the entry the NWM uses when it folds its readout in."""
    model = _model("small", torch.float64, fused=fused)
    x = torch.randn(2, 3, 4, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    first = model.layers[0]
    torch.testing.assert_close(model.forward_after_first(x @ first.weight.T + first.bias), model(x))


# ---------------------------------------------------------------- bf16 training on CPUs where it is faster

def test_training_dtype_follows_the_setting(monkeypatch):
    monkeypatch.setenv("TWI_HEAD_BF16", "1")
    assert head_module.training_dtype("cpu") == torch.bfloat16
    assert head_module.training_dtype("cpu", width=32) == torch.bfloat16   # forced: any width
    assert head_module.training_dtype("cuda") == torch.float32          # CUDA: fp32 here (TF32 is a separate option)
    monkeypatch.setenv("TWI_HEAD_BF16", "0")
    assert head_module.training_dtype("cpu") == torch.float32
    monkeypatch.setenv("TWI_HEAD_BF16", "auto")
    assert head_module.training_dtype("cpu") == (torch.bfloat16 if head_module.cpu_has_bf16() else torch.float32)
    assert head_module.training_dtype("cpu", width=256) == head_module.training_dtype("cpu")
    assert head_module.training_dtype("cpu", width=32) == torch.float32     # narrow heads stay fp32 (slower in bf16)
    monkeypatch.setenv("TWI_HEAD_BF16", "yes")
    with pytest.raises(ValueError, match=r"TWI_HEAD_BF16='yes'; expected one of \['auto', '0', '1'\]"):
        head_module.training_dtype("cpu")


@pytest.mark.parametrize("flags, speedup, expected", [
    ({"amx_bf16", "avx512_bf16"}, None, True),   # AMX: bf16 without measuring
    ({"avx512_bf16"}, 6.0, True),                 # e.g. the AMD EPYC: measured about 6x
    ({"avx512_bf16"}, 1.1, False),                # e.g. an Intel CPU without AMX: no faster
    ({"avx2"}, None, False),                      # no bf16 instructions: never measured
])
def test_cpu_bf16_decision_measures_where_the_flag_alone_does_not_decide(monkeypatch, flags, speedup, expected):
    def probe():
        assert speedup is not None, "measured where the flags decide"
        return speedup

    monkeypatch.setattr(head_module._cpu, "flags", lambda: frozenset(flags))
    monkeypatch.setattr(head_module, "bf16_gemm_speedup", probe)
    head_module.cpu_has_bf16.cache_clear()
    try:
        assert head_module.cpu_has_bf16() is expected
    finally:
        head_module.cpu_has_bf16.cache_clear()


def test_bf16_head_keeps_fp32_interfaces_and_close_values():
    torch.manual_seed(0)
    x = torch.randn(3000, 40, requires_grad=True)
    layers = [torch.nn.Linear(40, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 6)]
    weights, biases = [m.weight for m in layers], [m.bias for m in layers]
    grads = {}
    for dtype in (torch.float32, torch.bfloat16):
        out = head_module.pixel_mlp(x, weights, biases, dtype=dtype)
        assert out.dtype == torch.float32
        g = torch.autograd.grad(out, [x, *weights, *biases], torch.ones_like(out) / out.numel())
        assert all(t.dtype == torch.float32 for t in g)              # master weights and their gradients stay fp32
        grads[dtype] = (out.detach(), g)
    (out32, g32), (out16, g16) = grads[torch.float32], grads[torch.bfloat16]
    assert _rel(out16, out32) < 2e-2                                  # bf16 keeps 8 significant bits
    for a, b in zip(g16, g32):
        # ReLU masks flip where a pre-activation is within bf16 rounding of 0, so gradients differ by more than the
        # values; their direction stays (cosine > 0.99 measured at 0.995-0.9999).
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert cos > 0.98, cos
    with torch.no_grad():                                             # no gradient: evaluation stays fp32 exactly
        assert torch.equal(head_module.pixel_mlp(x, weights, biases), head_module.pixel_mlp(x, weights, biases,
                                                                                       dtype=torch.float32))


def test_bf16_training_follows_the_fp32_loss_curve(monkeypatch):
    """A small NWM-linear trained 40 steps with the bf16 head and with the fp32 head: the loss curves agree."""
    from twi_core import models
    from twi_core.train_step import make_train_step

    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    y = (x.mean(1) > 0.5).long() + (x[:, 0] > 0.7).long()
    curves = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("TWI_HEAD_BF16", setting)
        torch.manual_seed(1)
        model = models.build(name="nwm", in_channels=3, num_classes=3, image_size=16, steps=12, readout="linear")
        step = make_train_step(model, torch.optim.Adam(model.parameters(), lr=3e-3), x, y)
        curves[setting] = torch.tensor([float(step(x, y)[0]) for _ in range(40)])
    fp32, bf16 = curves["0"], curves["1"]
    assert fp32[-1] < 0.7 * fp32[0]                                   # it learns at all
    # Stated tolerance: every loss within 5 % (relative) of the fp32 curve's, over the whole curve.
    assert torch.all((bf16 - fp32).abs() <= 0.05 * fp32), (fp32, bf16)
