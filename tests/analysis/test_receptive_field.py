"""Effective receptive fields measured by gradients, against toy models whose receptive field is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from twi_core.analysis import receptive_field as rf


class ConvStack(nn.Module):
    """``depth`` 3x3 convolutions (zero padding): the receptive field is a (2*depth+1)-wide square."""

    def __init__(self, depth: int, classes: int = 3):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=1) for i in range(depth))
        self.head = nn.Conv2d(4, classes, 1)
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.copy_(0.1 * torch.rand(conv.weight.shape, generator=g) + 0.01)   # positive: no cancellation

    def forward(self, x):
        for conv in self.convs:
            x = torch.tanh(conv(x))
        return self.head(x)


class ToyRecurrent(nn.Module):
    """y_{t+1} = tanh(K * y_t + x) with a 3x3 circular kernel: the influence front moves one pixel per step."""

    def __init__(self, steps: int = 6):
        super().__init__()
        self.steps = steps
        self.kernel = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
        with torch.no_grad():
            self.kernel.weight.fill_(0.2)
        self.head = nn.Conv2d(1, 2, 1)

    def forward(self, x, return_states=False):
        y = torch.zeros_like(x)
        states = []
        for _ in range(self.steps):
            y = torch.tanh(self.kernel(y) + x)
            states.append(y)
        seq = torch.stack(states, dim=1)                  # (B, T, C=1, H, W)
        logits = self.head(seq.mean(1))
        return (logits, seq) if return_states else logits


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_cnn_gradient_support_is_the_theoretical_receptive_field(depth):
    model = ConvStack(depth).eval()
    x = torch.rand(1, 17, 17)
    g = rf.input_gradient(model, x, pixel=(8, 8), target=1)
    assert g.shape == (17, 17)
    support = np.argwhere(g > 0)
    assert support.min(0).tolist() == [8 - depth, 8 - depth]
    assert support.max(0).tolist() == [8 + depth, 8 + depth]
    assert rf.mass_radius(g, center=(8, 8), mass=1.0) <= depth * np.sqrt(2) + 1e-9


def test_default_target_is_the_predicted_class():
    model = ConvStack(2).eval()
    x = torch.rand(1, 1, 9, 9)
    k = int(model(x)[0, :, 4, 4].argmax())
    np.testing.assert_allclose(rf.input_gradient(model, x, pixel=(4, 4)),
                               rf.input_gradient(model, x, pixel=(4, 4), target=k))


def test_recurrent_receptive_field_grows_one_pixel_per_step_and_wraps():
    model = ToyRecurrent(steps=6).eval()
    x = torch.rand(1, 1, 15, 15)
    maps = rf.state_gradients(model, x, pixel=(1, 7))
    assert maps.shape == (6, 15, 15)
    for t in range(6):
        d = rf.distance_map((15, 15), center=(1, 7), periodic=True)
        # Chebyshev radius t on the torus; the row axis wraps around from row 1 to row 14 for t >= 2
        rows = np.minimum(np.abs(np.arange(15) - 1), 15 - np.abs(np.arange(15) - 1))
        cols = np.abs(np.arange(15) - 7)
        cheb = np.maximum(rows[:, None], cols[None, :])
        assert ((maps[t] > 0) == (cheb <= t)).all(), t
        assert np.isfinite(d).all()
    radii = [rf.mass_radius(m, center=(1, 7), mass=1.0, periodic=True) for m in maps]
    assert radii == sorted(radii) and radii[-1] > radii[0]
    sub = rf.state_gradients(model, x, pixel=(1, 7), times=[0, -1])
    np.testing.assert_allclose(sub, maps[[0, -1]])


def test_state_gradients_needs_a_recurrent_model():
    with pytest.raises(TypeError, match="return_states"):
        rf.state_gradients(ConvStack(1), torch.rand(1, 8, 8), pixel=(2, 2))


def test_mass_radius_and_distance():
    g = np.zeros((11, 11))
    g[5, 5], g[5, 8], g[0, 5] = 2.0, 1.0, 1.0
    assert rf.mass_radius(g, center=(5, 5), mass=0.5) == 0.0
    assert rf.mass_radius(g, center=(5, 5), mass=0.75) == 3.0
    assert rf.mass_radius(g, center=(5, 5), mass=1.0) == 5.0
    assert np.isnan(rf.mass_radius(np.zeros((4, 4)), center=(1, 1)))
    d = rf.distance_map((10, 10), center=(0, 0), periodic=True)
    assert d[9, 9] == pytest.approx(np.sqrt(2)) and d[5, 0] == 5.0
    assert rf.distance_map((10, 10), center=(0, 0))[9, 9] == pytest.approx(9 * np.sqrt(2))


@pytest.mark.parametrize("call, exc, word", [
    (lambda m: rf.input_gradient(m, torch.rand(2, 1, 8, 8), pixel=(1, 1)), ValueError, "one image"),
    (lambda m: rf.input_gradient(m, [[0.0]], pixel=(1, 1)), TypeError, "image must be"),
    (lambda m: rf.input_gradient(m, torch.rand(1, 8, 8), pixel=(9, 1)), ValueError, "outside"),
    (lambda m: rf.input_gradient(m, torch.rand(1, 8, 8), pixel=(1.0, 1)), TypeError, "pixel"),
    (lambda m: rf.input_gradient(m, torch.rand(1, 8, 8), pixel=(1, 1), target=3), ValueError, "target"),
    (lambda m: rf.mass_radius(-np.ones((3, 3)), center=(1, 1)), ValueError, "non-negative"),
    (lambda m: rf.mass_radius(np.ones((3, 3)), center=(1, 1), mass=0), ValueError, "mass"),
])
def test_errors(call, exc, word):
    with pytest.raises(exc, match=word):
        call(ConvStack(1).eval())
