"""The training step, eager and CUDA-graphed (twi_core.train_step)."""

from __future__ import annotations

import pytest
import torch

from twi_core.models.registry import build
from twi_core.train_step import EagerStep, GraphedStep, make_train_step

CUDA = torch.cuda.is_available()


def _model(seed: int = 0, engine: str = "fast"):
    torch.manual_seed(seed)
    return build(name="nwm", in_channels=1, num_classes=3, image_size=8, steps=6, head="small", engine=engine)


def _data(seed: int, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(4, 1, 8, 8, generator=g).to(device), torch.randint(0, 3, (4, 8, 8), generator=g).to(device))


def test_eager_step_is_the_authors_step():
    a, b = _model(), _model()
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    step = EagerStep(a, opt_a)
    for seed in range(3):
        x, y = _data(seed)
        loss, logits = step(x, y)
        ref_logits = b(x)
        ref = torch.nn.functional.cross_entropy(ref_logits, y)
        opt_b.zero_grad()
        ref.backward()
        opt_b.step()
        assert torch.equal(loss, ref.detach()) and torch.equal(logits, ref_logits.detach())
        assert not loss.requires_grad
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), _model().parameters()))
    assert moved > 1e-4  # the updates happened


def test_graphed_step_needs_cuda_and_capturable_adam():
    model = _model()
    x, y = _data(0)
    with pytest.raises(ValueError, match="CUDA"):
        GraphedStep(model, torch.optim.Adam(model.parameters()), x, y)
    with pytest.raises(ValueError, match="CUDA"):
        make_train_step(model, torch.optim.Adam(model.parameters()), x, y, graph=True)
    assert isinstance(make_train_step(model, torch.optim.Adam(model.parameters()), x, y), EagerStep)


@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU (run on one: benchmarks/bench_gpu.py checks the same)")
@pytest.mark.parametrize("engine", ["fast", "plain"])
def test_graphed_step_takes_the_eager_updates(engine):
    a, b = _model(engine=engine).cuda(), _model(engine=engine).cuda()
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-2, capturable=True)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="capturable"):
        GraphedStep(b, opt_b, *_data(0, "cuda"))
    graphed, eager = GraphedStep(a, opt_a, *_data(0, "cuda")), EagerStep(b, opt_b)
    for p, q in zip(a.parameters(), b.parameters()):  # the warm-up was undone
        assert torch.equal(p, q)
    for state in opt_a.state.values():
        assert float(state["step"]) == 0 and float(state["exp_avg"].abs().max()) == 0
    la, _ = graphed(*_data(1, "cuda"))
    lb, _ = eager(*_data(1, "cuda"))
    assert torch.allclose(la, lb, rtol=1e-5, atol=1e-7)
    for p, q in zip(a.parameters(), b.parameters()):  # the graph's gradient at the same weights
        assert float((p.grad - q.grad).norm()) <= 1e-4 * float(q.grad.norm()) + 1e-9
        state = opt_a.state[p]
        assert float(state["step"]) == 1  # one update, not 1 + warm-up
        assert torch.allclose(state["exp_avg"], 0.1 * p.grad, rtol=1e-5, atol=1e-9)
    for seed in range(2, 5):  # later losses follow (Adam's first steps are ~lr * sign(g): rounding of tiny
        la, _ = graphed(*_data(seed, "cuda"))  # gradients can flip a sign, so weights are compared loosely)
        lb, _ = eager(*_data(seed, "cuda"))
        assert torch.allclose(la, lb, rtol=1e-3)
    with pytest.raises(ValueError, match="captured for"):
        graphed(torch.rand(2, 1, 8, 8, device="cuda"), torch.zeros(2, 8, 8, dtype=torch.long, device="cuda"))
