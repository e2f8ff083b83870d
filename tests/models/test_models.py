"""The models' public API: shapes, gradients, determinism, configs, readouts, heads and error messages."""

from __future__ import annotations

import math
import sys
import types
import warnings

import pytest
import torch
from torch import nn

from twi_core.models import (
    HEADS,
    MODELS,
    READOUTS,
    build,
    count_parameters,
    num_frequency_bins,
    paper_config,
    paper_rows,
)
from twi_core.models.dynamics import nwm_rollout_plain
from twi_core.models.readouts import PixelMLP

SMALL = {"in_channels": 3, "num_classes": 4, "image_size": 16}
SMALL_OPTIONS = {
    "nwm": {"steps": 8, "mid_channels": 4},
    "lstm": {"steps": 6, "mid_channels": 4},
    "cnn": {"depth": 3, "mid_channels": 4, "expanded_channels": 10},
    "unet": {"width": 2},
}
RECURRENT = ("nwm", "lstm")


def small(name, **options):
    return build(name, **SMALL, **{**SMALL_OPTIONS[name], **options})


def batch(seed=0, b=2, c=3, size=16):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", sorted(MODELS))
def test_logits_shape(name):
    assert small(name)(batch()).shape == (2, 4, 16, 16)


@pytest.mark.parametrize("name", RECURRENT)
@pytest.mark.parametrize("readout", sorted(READOUTS))
def test_recurrent_states_shape(name, readout):
    model = small(name, readout=readout)
    logits, states = model(batch(), return_states=True)
    assert logits.shape == (2, 4, 16, 16)
    assert states.shape == (2, model.config["steps"], 2, 16, 16)  # (B, T, C, H, W)


def test_nwm_states_are_the_plain_rollout_of_the_encoders():
    model = small("nwm", engine="plain")
    x = batch()
    _, states = model(x, return_states=True)
    expected = nwm_rollout_plain(
        model.y0_encoder(x), model.omega_encoder(x), model.alpha_encoder(x), model.coupling.weight, dt=0.1, steps=8
    )
    assert torch.equal(states, expected)
    with torch.no_grad():
        omega, alpha, y0 = model.omega_encoder(x), model.alpha_encoder(x), model.y0_encoder(x)
    assert float(omega.min()) >= 0 and float(alpha.min()) >= 0 and float(y0.abs().max()) < 1


# -------------------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    options = {"readout": "linear"} if name in RECURRENT else {}
    model = small(name, **options)
    model(batch()).square().mean().backward()
    for key, p in model.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, key


@pytest.mark.parametrize("name", RECURRENT)
@pytest.mark.parametrize("readout", ["last", "mean", "max", "fft"])
def test_time_projection_is_untrained_for_non_linear_readouts(name, readout):
    """The authors keep the T → K projection in every model; only 'linear' uses it (reference notes §10.15)."""
    torch.manual_seed(0)  # with 4 encoder channels a seed can start with a dead ReLU (all-zero alpha); seed 0 does not
    model = small(name, readout=readout)
    model(batch()).square().mean().backward()
    for key, p in model.named_parameters():
        if key == "time_projection.weight":
            assert p.grad is None
        else:
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, key


# ------------------------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("name", sorted(MODELS))
def test_determinism_under_a_seed(name):
    torch.manual_seed(123)
    a = small(name)
    torch.manual_seed(123)
    b = small(name)
    torch.manual_seed(124)
    c = small(name)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
    assert any(not torch.equal(va, vc) for va, vc in zip(a.state_dict().values(), c.state_dict().values()))
    x = batch()
    assert torch.equal(a(x), b(x))


# ------------------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_round_trip(name):
    model = small(name)
    config = dict(model.config)
    assert config["name"] == name
    clone = build(**config)
    assert clone.config == config
    clone.load_state_dict(model.state_dict())
    model.eval(), clone.eval()
    x = batch()
    assert torch.equal(model(x), clone(x))


@pytest.mark.parametrize("row", paper_rows(), ids=str)
def test_paper_config_builds_and_round_trips(row):
    config = paper_config(*row)
    model = build(**config)
    assert model.config == {**model.config, **config}
    assert build(**model.config).config == model.config


def test_paper_config_values():
    nwm = paper_config("tetrominoes", "nwm", "fft")
    assert (nwm["steps"], nwm["dt"], nwm["hidden_channels"], nwm["head"]) == (100, 0.1, 2, "default")
    assert paper_config("multi_mnist", "nwm", "linear")["hidden_channels"] == 16
    assert paper_config("multi_mnist", "nwm", "linear")["image_size"] == 128
    assert paper_config("mnist", "lstm", "max")["steps"] == 20
    poly = paper_config("polygons", "nwm", "fft")
    assert poly["steps"] == 500 and num_frequency_bins(poly["steps"]) == 251
    assert (poly["in_channels"], poly["num_classes"]) == (1, 5)
    assert paper_config("multi_mnist", "unet", 3)["width"] == 3
    assert paper_config("tetrominoes", "cnn", 16)["depth"] == 16


def test_cnn_squeeze_activation_option():
    torch.manual_seed(0)
    authors = small("cnn")
    assert isinstance(authors.encoder[-2], nn.ReLU)
    repaired = build(**{**authors.config, "squeeze_activation": "none"})
    assert isinstance(repaired.encoder[-2], nn.Identity)
    assert count_parameters(repaired) == count_parameters(authors)
    repaired.load_state_dict(authors.state_dict())
    with torch.no_grad():  # a dead squeeze: large negative bias kills the authors' ReLU, not the repaired path
        for model in (authors, repaired):
            model.encoder[-3].bias.fill_(-1e3)
    x = batch()
    with torch.no_grad():
        assert float(authors(x).std(dim=(2, 3)).max()) == 0.0  # constant logits over the image
        assert float(repaired(x).std(dim=(2, 3)).max()) > 0.0
    with pytest.raises(ValueError, match=r"unknown squeeze_activation 'gelu'; expected one of \['none', 'relu'\]"):
        build("cnn", **SMALL, squeeze_activation="gelu")


# ------------------------------------------------------------------------------------------------------------ engine
def test_fast_engine_seam(monkeypatch):
    """engine='fast' calls twi_core.models.engine.nwm_rollout when it exists; 'plain' never does."""
    calls = []

    def fake(y0, omega, alpha, coupling_weight, *, dt, steps, readout=None):
        calls.append((dt, steps, readout))
        return nwm_rollout_plain(y0, omega, alpha, coupling_weight, dt=dt, steps=steps)

    monkeypatch.setitem(sys.modules, "twi_core.models.engine", types.SimpleNamespace(nwm_rollout=fake))
    torch.manual_seed(0)
    fast = small("nwm", engine="fast")
    plain = build(**{**fast.config, "engine": "plain"})
    plain.load_state_dict(fast.state_dict())
    x = batch()
    assert torch.equal(fast(x), plain(x))
    assert calls == [(0.1, 8, None)]


def test_fast_and_plain_engines_agree():
    torch.manual_seed(0)
    fast = small("nwm", engine="fast")
    plain = build(**{**fast.config, "engine": "plain"})
    plain.load_state_dict(fast.state_dict())
    x = batch()
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------- readouts
def test_num_frequency_bins():
    assert [num_frequency_bins(t) for t in (1, 2, 20, 99, 100, 500)] == [1, 2, 11, 50, 51, 251]
    with pytest.raises(ValueError, match="steps"):
        num_frequency_bins(0)


def _states(b=1, t=10, c=2, h=3, w=4, seed=0):
    return torch.randn(b, t, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_pointwise_readouts():
    y = _states()
    assert torch.equal(READOUTS["last"](y), y[:, -1].permute(0, 2, 3, 1))
    assert torch.allclose(READOUTS["mean"](y), y.mean(1).permute(0, 2, 3, 1))
    assert torch.equal(READOUTS["max"](y), y.amax(1).permute(0, 2, 3, 1))


def test_fft_readout_of_a_sinusoid_peaks_in_its_bin_with_frequency_major_order():
    t = torch.arange(100, dtype=torch.float64)
    y = torch.zeros(1, 100, 2, 1, 1, dtype=torch.float64)
    y[0, :, 0, 0, 0] = torch.cos(2 * math.pi * 7 * t / 100)  # channel 0: bin 7
    y[0, :, 1, 0, 0] = 2.0  # channel 1: DC only
    feats = READOUTS["fft"](y)[0, 0, 0]  # (K*C,), index k*C + c
    assert feats.shape == (51 * 2,)
    spectrum0, spectrum1 = feats[0::2], feats[1::2]
    assert int(spectrum0.argmax()) == 7 and float(spectrum0[7]) == pytest.approx(50.0)  # unnormalised |sum|
    assert int(spectrum1.argmax()) == 0 and float(spectrum1[0]) == pytest.approx(200.0)


def test_linear_readout_is_a_time_projection_in_frequency_major_order():
    y = _states()
    w = torch.randn(6, 10, dtype=torch.float64)
    feats = READOUTS["linear"](y, w)  # (B, H, W, K*C)
    k, c, h, x = 4, 1, 2, 3
    assert float(feats[0, h, x, k * 2 + c]) == pytest.approx(float((w[k] * y[0, :, c, h, x]).sum()))
    with pytest.raises(ValueError, match="time_weight"):
        READOUTS["linear"](y)


def test_pixel_mlp_equals_1x1_convolutions():
    torch.manual_seed(0)
    mlp = PixelMLP(5, (7, 7), 3)
    x = torch.randn(2, 5, 4, 6)
    convs = []
    for layer in mlp.layers:
        if isinstance(layer, nn.Linear):
            conv = nn.Conv2d(layer.in_features, layer.out_features, 1)
            conv.weight.data = layer.weight.data[:, :, None, None]
            conv.bias.data = layer.bias.data
            convs.append(conv)
        else:
            convs.append(nn.ReLU())
    torch.testing.assert_close(mlp(x.permute(0, 2, 3, 1)), nn.Sequential(*convs)(x))


@pytest.mark.parametrize("fused", [True, False])
def test_pixel_mlp_with_reordered_first_weight(fused):
    """Features in another order plus the first weight's columns in that order: the same logits and gradients."""
    torch.manual_seed(0)
    mlp = PixelMLP(6, (7, 5), 3, fused=fused)
    x = torch.randn(2, 3, 4, 6)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    first = mlp.layers[0].weight
    expected = mlp(x)
    (g_expected,) = torch.autograd.grad(expected.square().sum(), first)
    got = mlp(x[..., order], first_weight=first[:, order])
    (g_got,) = torch.autograd.grad(got.square().sum(), first)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(g_got, g_expected)
    with pytest.raises(ValueError, match=r"first_weight must have shape \(7, 6\), got \(7, 5\)"):
        mlp(x, first_weight=first[:, :5])


def test_heads():
    assert HEADS["default"] == (256, 256, 256) and HEADS["small"] == (32,) * 5
    model = build(**paper_config("multi_mnist", "nwm", "linear"))
    linears = [m for m in model.head.layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(816, 32)] + [(32, 32)] * 4 + [(32, 11)]


# ------------------------------------------------------------------------------------------------------------ errors
def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown model 'rnn'; expected one of \['cnn', 'lstm', 'nwm', 'unet'\]"):
        build("rnn", **SMALL)
    with pytest.raises(ValueError, match=r"unknown readout 'fourier'; expected one of \['fft', 'last', 'linear', 'max', 'mean'\]"):
        build("nwm", **SMALL, readout="fourier")
    with pytest.raises(ValueError, match=r"unknown head 'big'; expected one of \['default', 'small'\]"):
        build("lstm", **SMALL, head="big")
    with pytest.raises(ValueError, match=r"unknown engine 'cuda'; expected one of \['fast', 'plain'\]"):
        build("nwm", **SMALL, engine="cuda")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['readout'\] for model 'cnn'"):
        build("cnn", **SMALL, readout="fft")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        paper_config("cifar", "nwm", "fft")
    with pytest.raises(ValueError, match="no 'unet' model on 'mnist'"):
        paper_config("mnist", "unet", 2)
    with pytest.raises(ValueError, match=r"unknown variant 3 for 'cnn' on 'mnist'; expected one of \[2, 4, 8, 16, 32\]"):
        paper_config("mnist", "cnn", 3)


def test_bad_config_values():
    with pytest.raises(TypeError, match="in_channels must be an int"):
        build("nwm", in_channels=3.0, num_classes=4, image_size=16)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        build("lstm", **SMALL, steps=0)
    with pytest.raises(ValueError, match="dt must be a positive finite float, got -0.1"):
        build("nwm", **SMALL, dt=-0.1)
    with pytest.raises(ValueError, match="depth must be an int >= 2, got 1"):
        build("cnn", **SMALL, depth=1)
    with pytest.raises(ValueError, match="image_size must be a multiple of 16 .* got 56"):
        build("unet", in_channels=1, num_classes=11, image_size=56)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_bad_inputs(name):
    model = small(name)
    with pytest.raises(ValueError, match="x has 1 channels; this model expects in_channels=3"):
        model(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="x has size 32x32; this model was built for image_size=16"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="x has size 16x8; .*image_size=16 \\(square 16x16\\)"):
        model(torch.rand(2, 3, 16, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 16, 16\), got \(3, 16, 16\)"):
        model(torch.rand(3, 16, 16))
    for bad in (math.nan, math.inf, -math.inf):
        x = batch()
        x[1, 0, 3, 3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            model(x)
    with pytest.raises(TypeError, match="floating-point tensor"):
        model(torch.ones(2, 3, 16, 16, dtype=torch.long))


def test_unstable_dt_warns_at_build_and_stable_dt_does_not():
    with pytest.warns(RuntimeWarning, match=r"dt=0.8 makes the linearised NWM unstable.*dt <= 0.7071"):
        build("nwm", **SMALL, dt=0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build("nwm", **SMALL, dt=0.7)
        build(**paper_config("tetrominoes", "nwm", "linear"))


def test_count_parameters_ignores_buffers():
    model = small("unet")
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers > 0
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_a_checkpoint_rebuilds_its_own_model(tmp_path):
    from twi_core.models import checkpoint_dict, load_checkpoint, paper_config, read_checkpoint

    kwargs = dict(paper_config("tetrominoes", "cnn", 2))
    model = build(**kwargs)
    torch.save(checkpoint_dict(kwargs, {k: v.half() for k, v in model.state_dict().items()}), tmp_path / "c.pt")
    again = load_checkpoint(tmp_path / "c.pt")                            # from the file alone, fp16 weights -> fp32
    assert type(again) is type(model) and all(p.dtype == torch.float32 for p in again.parameters())
    assert all(torch.allclose(a, b.half().float()) for a, b in zip(again.state_dict().values(),
                                                                   model.state_dict().values()))
    torch.save(model.state_dict(), tmp_path / "bare.pt")                 # an older checkpoint: weights only
    assert read_checkpoint(tmp_path / "bare.pt")[0] is None
    with pytest.raises(ValueError, match=r"bare state_dict .*runs\.load\(folder\)\.model\(\)"):
        load_checkpoint(tmp_path / "bare.pt")
    torch.save([1, 2], tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="is not a twi_core checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


def test_logits_and_states_in_batches_equal_one_forward():
    from twi_core.models import build, logits_and_states, paper_config

    torch.manual_seed(0)
    nwm = build(**{**paper_config("tetrominoes", "nwm", "linear"), "steps": 5}).eval()
    x = torch.rand(5, 3, 64, 64)
    logits, states = logits_and_states(nwm, x, batch_size=2)
    with torch.no_grad():
        ref_logits, ref_states = nwm(x, return_states=True)
    assert torch.allclose(logits, ref_logits, atol=1e-5) and torch.allclose(states, ref_states, atol=1e-6)
    assert not logits.requires_grad
    cnn = build(**paper_config("tetrominoes", "cnn", 2))
    out, none = logits_and_states(cnn, x[:2])
    assert none is None and out.shape == (2, 6, 64, 64)
    with pytest.raises(TypeError, match="CNN does not return hidden states"):
        logits_and_states(cnn, x[:2], states=True)
    with pytest.raises(ValueError, match="batch_size must be >= 1; got 0"):
        logits_and_states(nwm, x, batch_size=0)
