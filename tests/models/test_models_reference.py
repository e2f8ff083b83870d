"""Parameter counts against the authors' (reference notes §2.6), and loading the authors' checkpoints.

The key names and shapes below are those of the authors' checkpoints (``reference_state_dict_keys.md``, produced by
instantiating their model classes); the state dicts in these tests are synthetic, built to those names and shapes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from twi_core.models import (
    REFERENCE_COUNTS,
    build,
    count_parameters,
    from_reference_config,
    load_reference_checkpoint,
    paper_config,
)
from twi_core.models.dynamics import conv_lstm_rollout, nwm_rollout_plain
from twi_core.models.reference_counts import REFERENCE_COMPONENTS

REFERENCE_KEYS = {
    # NWM, Tetrominoes, readout linear (same keys for fft/last/mean_time/max_time; the first MLP layer is 2->256 for last/mean/max)
    'nwm_tetrominoes_linear': [
        ('classifier.fc_readout.0.weight', (256, 102)),
        ('classifier.fc_readout.0.bias', (256,)),
        ('classifier.fc_readout.2.weight', (256, 256)),
        ('classifier.fc_readout.2.bias', (256,)),
        ('classifier.fc_readout.4.weight', (256, 256)),
        ('classifier.fc_readout.4.bias', (256,)),
        ('classifier.fc_readout.6.weight', (6, 256)),
        ('classifier.fc_readout.6.bias', (6,)),
        ('classifier.omega_encoder.0.weight', (16, 3, 3, 3)),
        ('classifier.omega_encoder.0.bias', (16,)),
        ('classifier.omega_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.omega_encoder.2.bias', (16,)),
        ('classifier.omega_encoder.4.weight', (2, 16, 3, 3)),
        ('classifier.omega_encoder.4.bias', (2,)),
        ('classifier.alpha_encoder.0.weight', (16, 3, 3, 3)),
        ('classifier.alpha_encoder.0.bias', (16,)),
        ('classifier.alpha_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.alpha_encoder.2.bias', (16,)),
        ('classifier.alpha_encoder.4.weight', (2, 16, 3, 3)),
        ('classifier.alpha_encoder.4.bias', (2,)),
        ('classifier.hy_encoder.0.weight', (16, 3, 3, 3)),
        ('classifier.hy_encoder.0.bias', (16,)),
        ('classifier.hy_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.hy_encoder.2.bias', (16,)),
        ('classifier.hy_encoder.4.weight', (16, 16, 3, 3)),
        ('classifier.hy_encoder.4.bias', (16,)),
        ('classifier.hy_encoder.6.weight', (2, 16, 3, 3)),
        ('classifier.hy_encoder.6.bias', (2,)),
        ('classifier.cell.Wy.weight', (2, 2, 3, 3)),
        ('classifier.fc_time.weight', (51, 100)),
    ],
    # NWM, Multi-MNIST, readout linear_smaller4, 16 hidden channels
    'nwm_multi_mnist_linear': [
        ('classifier.fc_readout.0.weight', (32, 816)),
        ('classifier.fc_readout.0.bias', (32,)),
        ('classifier.fc_readout.2.weight', (32, 32)),
        ('classifier.fc_readout.2.bias', (32,)),
        ('classifier.fc_readout.4.weight', (32, 32)),
        ('classifier.fc_readout.4.bias', (32,)),
        ('classifier.fc_readout.6.weight', (32, 32)),
        ('classifier.fc_readout.6.bias', (32,)),
        ('classifier.fc_readout.8.weight', (32, 32)),
        ('classifier.fc_readout.8.bias', (32,)),
        ('classifier.fc_readout.10.weight', (11, 32)),
        ('classifier.fc_readout.10.bias', (11,)),
        ('classifier.omega_encoder.0.weight', (16, 1, 3, 3)),
        ('classifier.omega_encoder.0.bias', (16,)),
        ('classifier.omega_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.omega_encoder.2.bias', (16,)),
        ('classifier.omega_encoder.4.weight', (16, 16, 3, 3)),
        ('classifier.omega_encoder.4.bias', (16,)),
        ('classifier.alpha_encoder.0.weight', (16, 1, 3, 3)),
        ('classifier.alpha_encoder.0.bias', (16,)),
        ('classifier.alpha_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.alpha_encoder.2.bias', (16,)),
        ('classifier.alpha_encoder.4.weight', (16, 16, 3, 3)),
        ('classifier.alpha_encoder.4.bias', (16,)),
        ('classifier.hy_encoder.0.weight', (16, 1, 3, 3)),
        ('classifier.hy_encoder.0.bias', (16,)),
        ('classifier.hy_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.hy_encoder.2.bias', (16,)),
        ('classifier.hy_encoder.4.weight', (16, 16, 3, 3)),
        ('classifier.hy_encoder.4.bias', (16,)),
        ('classifier.hy_encoder.6.weight', (16, 16, 3, 3)),
        ('classifier.hy_encoder.6.bias', (16,)),
        ('classifier.cell.Wy.weight', (16, 16, 3, 3)),
        ('classifier.fc_time.weight', (51, 100)),
    ],
    # Conv-LSTM, Tetrominoes, readout linear, T=20
    'lstm_tetrominoes_linear': [
        ('classifier.fc_readout.0.weight', (256, 22)),
        ('classifier.fc_readout.0.bias', (256,)),
        ('classifier.fc_readout.2.weight', (256, 256)),
        ('classifier.fc_readout.2.bias', (256,)),
        ('classifier.fc_readout.4.weight', (256, 256)),
        ('classifier.fc_readout.4.bias', (256,)),
        ('classifier.fc_readout.6.weight', (6, 256)),
        ('classifier.fc_readout.6.bias', (6,)),
        ('classifier.hy_encoder.0.weight', (16, 3, 3, 3)),
        ('classifier.hy_encoder.0.bias', (16,)),
        ('classifier.hy_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.hy_encoder.2.bias', (16,)),
        ('classifier.hy_encoder.4.weight', (16, 16, 3, 3)),
        ('classifier.hy_encoder.4.bias', (16,)),
        ('classifier.hy_encoder.6.weight', (2, 16, 3, 3)),
        ('classifier.hy_encoder.6.bias', (2,)),
        ('classifier.hz_encoder.0.weight', (16, 3, 3, 3)),
        ('classifier.hz_encoder.0.bias', (16,)),
        ('classifier.hz_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.hz_encoder.2.bias', (16,)),
        ('classifier.hz_encoder.4.weight', (2, 16, 3, 3)),
        ('classifier.hz_encoder.4.bias', (2,)),
        ('classifier.hc_encoder.0.weight', (16, 3, 3, 3)),
        ('classifier.hc_encoder.0.bias', (16,)),
        ('classifier.hc_encoder.2.weight', (16, 16, 3, 3)),
        ('classifier.hc_encoder.2.bias', (16,)),
        ('classifier.hc_encoder.4.weight', (2, 16, 3, 3)),
        ('classifier.hc_encoder.4.bias', (2,)),
        ('classifier.recurrent_cell.cell.conv.weight', (8, 4, 3, 3)),
        ('classifier.recurrent_cell.cell.conv.bias', (8,)),
        ('classifier.recurrent_cell.transform_hidden.0.weight', (4, 2)),
        ('classifier.recurrent_cell.transform_hidden.0.bias', (4,)),
        ('classifier.recurrent_cell.transform_hidden.2.weight', (2, 4)),
        ('classifier.recurrent_cell.transform_hidden.2.bias', (2,)),
        ('classifier.fc_time.weight', (11, 20)),
    ],
    # CNN baseline, Tetrominoes, L=4
    'cnn_tetrominoes_4': [
        ('encoder.0.weight', (16, 3, 3, 3)),
        ('encoder.0.bias', (16,)),
        ('encoder.2.weight', (16, 16, 3, 3)),
        ('encoder.2.bias', (16,)),
        ('encoder.4.weight', (16, 16, 3, 3)),
        ('encoder.4.bias', (16,)),
        ('encoder.6.weight', (2, 16, 3, 3)),
        ('encoder.6.bias', (2,)),
        ('encoder.8.weight', (98, 2, 1, 1)),
        ('encoder.8.bias', (98,)),
        ('readout.0.weight', (256, 98)),
        ('readout.0.bias', (256,)),
        ('readout.2.weight', (256, 256)),
        ('readout.2.bias', (256,)),
        ('readout.4.weight', (256, 256)),
        ('readout.4.bias', (256,)),
        ('readout.6.weight', (6, 256)),
        ('readout.6.bias', (6,)),
    ],
    # U-Net, Multi-MNIST, width m=2
    'unet_multi_mnist_2': [
        ('inc.double_conv.0.weight', (2, 1, 3, 3)),
        ('inc.double_conv.1.weight', (2,)),
        ('inc.double_conv.1.bias', (2,)),
        ('inc.double_conv.1.running_mean', (2,)),
        ('inc.double_conv.1.running_var', (2,)),
        ('inc.double_conv.1.num_batches_tracked', ()),
        ('inc.double_conv.3.weight', (2, 2, 3, 3)),
        ('inc.double_conv.4.weight', (2,)),
        ('inc.double_conv.4.bias', (2,)),
        ('inc.double_conv.4.running_mean', (2,)),
        ('inc.double_conv.4.running_var', (2,)),
        ('inc.double_conv.4.num_batches_tracked', ()),
        ('down1.maxpool_conv.1.double_conv.0.weight', (4, 2, 3, 3)),
        ('down1.maxpool_conv.1.double_conv.1.weight', (4,)),
        ('down1.maxpool_conv.1.double_conv.1.bias', (4,)),
        ('down1.maxpool_conv.1.double_conv.1.running_mean', (4,)),
        ('down1.maxpool_conv.1.double_conv.1.running_var', (4,)),
        ('down1.maxpool_conv.1.double_conv.1.num_batches_tracked', ()),
        ('down1.maxpool_conv.1.double_conv.3.weight', (4, 4, 3, 3)),
        ('down1.maxpool_conv.1.double_conv.4.weight', (4,)),
        ('down1.maxpool_conv.1.double_conv.4.bias', (4,)),
        ('down1.maxpool_conv.1.double_conv.4.running_mean', (4,)),
        ('down1.maxpool_conv.1.double_conv.4.running_var', (4,)),
        ('down1.maxpool_conv.1.double_conv.4.num_batches_tracked', ()),
        ('down2.maxpool_conv.1.double_conv.0.weight', (8, 4, 3, 3)),
        ('down2.maxpool_conv.1.double_conv.1.weight', (8,)),
        ('down2.maxpool_conv.1.double_conv.1.bias', (8,)),
        ('down2.maxpool_conv.1.double_conv.1.running_mean', (8,)),
        ('down2.maxpool_conv.1.double_conv.1.running_var', (8,)),
        ('down2.maxpool_conv.1.double_conv.1.num_batches_tracked', ()),
        ('down2.maxpool_conv.1.double_conv.3.weight', (8, 8, 3, 3)),
        ('down2.maxpool_conv.1.double_conv.4.weight', (8,)),
        ('down2.maxpool_conv.1.double_conv.4.bias', (8,)),
        ('down2.maxpool_conv.1.double_conv.4.running_mean', (8,)),
        ('down2.maxpool_conv.1.double_conv.4.running_var', (8,)),
        ('down2.maxpool_conv.1.double_conv.4.num_batches_tracked', ()),
        ('down3.maxpool_conv.1.double_conv.0.weight', (16, 8, 3, 3)),
        ('down3.maxpool_conv.1.double_conv.1.weight', (16,)),
        ('down3.maxpool_conv.1.double_conv.1.bias', (16,)),
        ('down3.maxpool_conv.1.double_conv.1.running_mean', (16,)),
        ('down3.maxpool_conv.1.double_conv.1.running_var', (16,)),
        ('down3.maxpool_conv.1.double_conv.1.num_batches_tracked', ()),
        ('down3.maxpool_conv.1.double_conv.3.weight', (16, 16, 3, 3)),
        ('down3.maxpool_conv.1.double_conv.4.weight', (16,)),
        ('down3.maxpool_conv.1.double_conv.4.bias', (16,)),
        ('down3.maxpool_conv.1.double_conv.4.running_mean', (16,)),
        ('down3.maxpool_conv.1.double_conv.4.running_var', (16,)),
        ('down3.maxpool_conv.1.double_conv.4.num_batches_tracked', ()),
        ('down4.maxpool_conv.1.double_conv.0.weight', (32, 16, 3, 3)),
        ('down4.maxpool_conv.1.double_conv.1.weight', (32,)),
        ('down4.maxpool_conv.1.double_conv.1.bias', (32,)),
        ('down4.maxpool_conv.1.double_conv.1.running_mean', (32,)),
        ('down4.maxpool_conv.1.double_conv.1.running_var', (32,)),
        ('down4.maxpool_conv.1.double_conv.1.num_batches_tracked', ()),
        ('down4.maxpool_conv.1.double_conv.3.weight', (32, 32, 3, 3)),
        ('down4.maxpool_conv.1.double_conv.4.weight', (32,)),
        ('down4.maxpool_conv.1.double_conv.4.bias', (32,)),
        ('down4.maxpool_conv.1.double_conv.4.running_mean', (32,)),
        ('down4.maxpool_conv.1.double_conv.4.running_var', (32,)),
        ('down4.maxpool_conv.1.double_conv.4.num_batches_tracked', ()),
        ('up1.up.weight', (32, 16, 2, 2)),
        ('up1.up.bias', (16,)),
        ('up1.conv.double_conv.0.weight', (16, 32, 3, 3)),
        ('up1.conv.double_conv.1.weight', (16,)),
        ('up1.conv.double_conv.1.bias', (16,)),
        ('up1.conv.double_conv.1.running_mean', (16,)),
        ('up1.conv.double_conv.1.running_var', (16,)),
        ('up1.conv.double_conv.1.num_batches_tracked', ()),
        ('up1.conv.double_conv.3.weight', (16, 16, 3, 3)),
        ('up1.conv.double_conv.4.weight', (16,)),
        ('up1.conv.double_conv.4.bias', (16,)),
        ('up1.conv.double_conv.4.running_mean', (16,)),
        ('up1.conv.double_conv.4.running_var', (16,)),
        ('up1.conv.double_conv.4.num_batches_tracked', ()),
        ('up2.up.weight', (16, 8, 2, 2)),
        ('up2.up.bias', (8,)),
        ('up2.conv.double_conv.0.weight', (8, 16, 3, 3)),
        ('up2.conv.double_conv.1.weight', (8,)),
        ('up2.conv.double_conv.1.bias', (8,)),
        ('up2.conv.double_conv.1.running_mean', (8,)),
        ('up2.conv.double_conv.1.running_var', (8,)),
        ('up2.conv.double_conv.1.num_batches_tracked', ()),
        ('up2.conv.double_conv.3.weight', (8, 8, 3, 3)),
        ('up2.conv.double_conv.4.weight', (8,)),
        ('up2.conv.double_conv.4.bias', (8,)),
        ('up2.conv.double_conv.4.running_mean', (8,)),
        ('up2.conv.double_conv.4.running_var', (8,)),
        ('up2.conv.double_conv.4.num_batches_tracked', ()),
        ('up3.up.weight', (8, 4, 2, 2)),
        ('up3.up.bias', (4,)),
        ('up3.conv.double_conv.0.weight', (4, 8, 3, 3)),
        ('up3.conv.double_conv.1.weight', (4,)),
        ('up3.conv.double_conv.1.bias', (4,)),
        ('up3.conv.double_conv.1.running_mean', (4,)),
        ('up3.conv.double_conv.1.running_var', (4,)),
        ('up3.conv.double_conv.1.num_batches_tracked', ()),
        ('up3.conv.double_conv.3.weight', (4, 4, 3, 3)),
        ('up3.conv.double_conv.4.weight', (4,)),
        ('up3.conv.double_conv.4.bias', (4,)),
        ('up3.conv.double_conv.4.running_mean', (4,)),
        ('up3.conv.double_conv.4.running_var', (4,)),
        ('up3.conv.double_conv.4.num_batches_tracked', ()),
        ('up4.up.weight', (4, 2, 2, 2)),
        ('up4.up.bias', (2,)),
        ('up4.conv.double_conv.0.weight', (2, 4, 3, 3)),
        ('up4.conv.double_conv.1.weight', (2,)),
        ('up4.conv.double_conv.1.bias', (2,)),
        ('up4.conv.double_conv.1.running_mean', (2,)),
        ('up4.conv.double_conv.1.running_var', (2,)),
        ('up4.conv.double_conv.1.num_batches_tracked', ()),
        ('up4.conv.double_conv.3.weight', (2, 2, 3, 3)),
        ('up4.conv.double_conv.4.weight', (2,)),
        ('up4.conv.double_conv.4.bias', (2,)),
        ('up4.conv.double_conv.4.running_mean', (2,)),
        ('up4.conv.double_conv.4.running_var', (2,)),
        ('up4.conv.double_conv.4.num_batches_tracked', ()),
        ('outc.conv.weight', (11, 2, 1, 1)),
        ('outc.conv.bias', (11,)),
    ],
}


# ------------------------------------------------------------------------------------------------- parameter counts
def test_reference_table_holds_the_issue_numbers():
    """Guard the data table itself with the numbers quoted in the issue and the notes."""
    assert REFERENCE_COUNTS[("tetrominoes", "nwm", "linear")] == 176_124
    assert REFERENCE_COUNTS[("multi_mnist", "nwm", "linear")] == 54_855
    assert [REFERENCE_COUNTS[("multi_mnist", "unet", m)] for m in (2, 3, 4, 5)] == [30_745, 68_834, 122_071, 190_456]
    assert len(REFERENCE_COUNTS) == 3 * 5 * 2 + 1 + 4  # nwm, lstm, cnn x 5 variants x 2 datasets; MM NWM; 4 U-Nets


@pytest.mark.parametrize("row", sorted(REFERENCE_COUNTS, key=str), ids=str)
def test_parameter_count_equals_the_authors(row):
    assert count_parameters(build(**paper_config(*row))) == REFERENCE_COUNTS[row]


@pytest.mark.parametrize("row", sorted(REFERENCE_COMPONENTS, key=str), ids=str)
def test_parameter_count_per_component(row):
    model = build(**paper_config(*row))
    for module, expected in REFERENCE_COMPONENTS[row].items():
        assert count_parameters(getattr(model, module)) == expected, module


# ------------------------------------------------------------------------------------------ synthetic checkpoints
def synthetic_state_dict(table, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in table:
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            sd[key] = 0.5 + torch.rand(shape, generator=g, dtype=torch.float64)
        else:
            sd[key] = 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    return sd


def small_size(config, size):
    """The same weights at a smaller canvas (every model here is convolutional), to keep the forward cheap.

    In float64: random weights make chaotic dynamics, which would amplify float32 summation-order differences.
    """
    return build(**{**config, "image_size": size}).double()


def mlp(x, sd, prefix, layers):
    for i in range(layers):
        x = F.linear(x, sd[f"{prefix}.{2 * i}.weight"], sd[f"{prefix}.{2 * i}.bias"])
        if i < layers - 1:
            x = F.relu(x)
    return x


def encoder(x, sd, prefix, layers, final):
    for i in range(layers):
        x = F.conv2d(x, sd[f"{prefix}.{2 * i}.weight"], sd[f"{prefix}.{2 * i}.bias"], padding=1)
        if i < layers - 1:
            x = F.relu(x)
    return final(x) if final else x


def reference_nwm_forward(x, sd, *, head_layers, steps=100):
    """The authors' NWM forward written directly against their key names."""
    p = "classifier."
    omega = encoder(x, sd, p + "omega_encoder", 3, F.relu)
    alpha = encoder(x, sd, p + "alpha_encoder", 3, F.relu)
    y0 = encoder(x, sd, p + "hy_encoder", 4, torch.tanh)
    ys = nwm_rollout_plain(y0, omega, alpha, sd[p + "cell.Wy.weight"], dt=0.1, steps=steps)  # (B, T, C, H, W)
    b, t, c, h, w = ys.shape
    seq = ys.permute(0, 3, 4, 2, 1)  # (B, H, W, C, T)
    feats = F.linear(seq, sd[p + "fc_time.weight"])  # (B, H, W, C, K)
    feats = feats.transpose(-1, -2).reshape(b, h, w, -1)  # (B, H, W, K*C), frequency-major
    return mlp(feats, sd, p + "fc_readout", head_layers).permute(0, 3, 1, 2)


@pytest.mark.parametrize(
    "table, dataset, head_layers",
    [("nwm_tetrominoes_linear", "tetrominoes", 4), ("nwm_multi_mnist_linear", "multi_mnist", 6)],
)
def test_load_nwm_checkpoint_gives_the_authors_forward(table, dataset, head_layers):
    sd = synthetic_state_dict(REFERENCE_KEYS[table])
    model = load_reference_checkpoint(small_size(paper_config(dataset, "nwm", "linear"), 12), sd)
    assert torch.equal(model.coupling.weight, sd["classifier.cell.Wy.weight"])
    assert torch.equal(model.time_projection.weight, sd["classifier.fc_time.weight"])
    c_in = model.config["in_channels"]
    x = torch.rand(2, c_in, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_nwm_forward(x, sd, head_layers=head_layers), rtol=1e-9, atol=1e-10)


def test_load_lstm_checkpoint_gives_the_authors_forward():
    sd = synthetic_state_dict(REFERENCE_KEYS["lstm_tetrominoes_linear"])
    model = load_reference_checkpoint(small_size(paper_config("tetrominoes", "lstm", "linear"), 12), sd)
    p = "classifier."
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def transform(h):  # (B, C, H, W) per-pixel MLP C -> 2C -> C
        return mlp(h.permute(0, 2, 3, 1), sd, p + "recurrent_cell.transform_hidden", 2).permute(0, 3, 1, 2)

    with torch.no_grad():
        ys = conv_lstm_rollout(
            encoder(x, sd, p + "hy_encoder", 4, torch.tanh),
            encoder(x, sd, p + "hz_encoder", 3, None),
            encoder(x, sd, p + "hc_encoder", 3, None),
            conv_weight=sd[p + "recurrent_cell.cell.conv.weight"],
            conv_bias=sd[p + "recurrent_cell.cell.conv.bias"],
            transform=transform,
            steps=20,
        )
        feats = F.linear(ys.permute(0, 3, 4, 2, 1), sd[p + "fc_time.weight"]).transpose(-1, -2).reshape(2, 12, 12, -1)
        expected = mlp(feats, sd, p + "fc_readout", 4).permute(0, 3, 1, 2)
        torch.testing.assert_close(model(x), expected, rtol=1e-9, atol=1e-10)


def test_load_cnn_checkpoint_gives_the_authors_forward():
    sd = synthetic_state_dict(REFERENCE_KEYS["cnn_tetrominoes_4"])
    model = load_reference_checkpoint(small_size(paper_config("tetrominoes", "cnn", 4), 12), sd)
    x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        feats = F.conv2d(encoder(x, sd, "encoder", 4, F.relu), sd["encoder.8.weight"], sd["encoder.8.bias"])
        expected = mlp(feats.permute(0, 2, 3, 1), sd, "readout", 4).permute(0, 3, 1, 2)
        torch.testing.assert_close(model(x), expected, rtol=1e-9, atol=1e-10)


def reference_unet_forward(x, sd):
    def double(x, p):
        for conv, bn in ((0, 1), (3, 4)):
            x = F.conv2d(x, sd[f"{p}.{conv}.weight"], padding=1)
            x = F.batch_norm(x, sd[f"{p}.{bn}.running_mean"], sd[f"{p}.{bn}.running_var"],
                             sd[f"{p}.{bn}.weight"], sd[f"{p}.{bn}.bias"], training=False, eps=1e-5)
            x = F.relu(x)
        return x

    skips = [double(x, "inc.double_conv")]
    for k in range(1, 5):
        skips.append(double(F.max_pool2d(skips[-1], 2), f"down{k}.maxpool_conv.1.double_conv"))
    x = skips.pop()
    for k in range(1, 5):
        up = F.conv_transpose2d(x, sd[f"up{k}.up.weight"], sd[f"up{k}.up.bias"], stride=2)
        x = double(torch.cat([skips.pop(), up], dim=1), f"up{k}.conv.double_conv")
    return F.conv2d(x, sd["outc.conv.weight"], sd["outc.conv.bias"])


def test_load_unet_checkpoint_gives_the_authors_forward():
    sd = synthetic_state_dict(REFERENCE_KEYS["unet_multi_mnist_2"])
    model = load_reference_checkpoint(small_size(paper_config("multi_mnist", "unet", 2), 32), sd).eval()
    assert int(model.down4[1][4].num_batches_tracked) == 7
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_unet_forward(x, sd), rtol=1e-9, atol=1e-10)


def test_load_round_trip_equals_setting_weights_directly():
    """Loading a checkpoint is the same as building with the same seed when the weights are the authors' names."""
    torch.manual_seed(5)
    direct = build(**paper_config("tetrominoes", "nwm", "fft"))
    ours = direct.state_dict()
    # our module names -> the authors' (written out here independently of the loader's table)
    rename = {"head.layers.": "classifier.fc_readout.", "omega_encoder.": "classifier.omega_encoder.",
              "alpha_encoder.": "classifier.alpha_encoder.", "y0_encoder.": "classifier.hy_encoder.",
              "coupling.": "classifier.cell.Wy.", "time_projection.": "classifier.fc_time."}
    theirs = {}
    for key, value in ours.items():
        prefix = next(p for p in rename if key.startswith(p))
        theirs[rename[prefix] + key[len(prefix):]] = value.clone()
    assert sorted(theirs) == sorted(k for k, _ in REFERENCE_KEYS["nwm_tetrominoes_linear"])
    loaded = load_reference_checkpoint(build(**paper_config("tetrominoes", "nwm", "fft")), theirs)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded(x), direct(x))


def test_load_rejects_wrong_shapes_and_keys():
    sd = synthetic_state_dict(REFERENCE_KEYS["nwm_tetrominoes_linear"])
    with pytest.raises(ValueError, match=r"'classifier.fc_readout.0.weight' has shape \(256, 102\); .*\(256, 2\)"):
        load_reference_checkpoint(build(**paper_config("tetrominoes", "nwm", "last")), sd)
    with pytest.raises(ValueError, match="'classifier.bogus.weight' is not a key of the authors' 'nwm'"):
        bogus = {**sd, "classifier.bogus.weight": sd["classifier.fc_time.weight"]}
        load_reference_checkpoint(build(**paper_config("tetrominoes", "nwm", "linear")), bogus)
    partial = dict(sd)
    del partial["classifier.cell.Wy.weight"]
    with pytest.raises(ValueError, match=r"missing \['coupling.weight'\]"):
        load_reference_checkpoint(build(**paper_config("tetrominoes", "nwm", "linear")), partial)
    with pytest.raises(TypeError, match="twi_core.models.build"):
        load_reference_checkpoint(torch.nn.Linear(2, 2), sd)


# ------------------------------------------------------------------------------------------ the authors' run configs
def _authors_config(dataset, family, variant):
    """The authors' config.yaml values for a paper row (reference notes §0.5 and §7)."""
    model_type = {"nwm": "cornn_model2", "lstm": "conv_recurrent2", "cnn": "baseline1_flexible", "unet": "unet2"}[family]
    ds = {"tetrominoes": ("new_tetronimoes", 64, 6), "mnist": ("mnist", 56, 11), "multi_mnist": ("multi_mnist", 128, 11)}
    key, n, classes = ds[dataset]
    cfg = {"model_type": model_type, "dataset": key, "N": n, "num_classes": classes, "c_mid": 16, "hidden_channels": 2,
           "max_iters": 20 if family == "lstm" else 100, "min_iters": 0, "dt": 0.1, "num_layers": 16, "cell_type": "lstm"}
    if family in ("nwm", "lstm"):
        names = {"mean": "mean_time", "max": "max_time"}
        cfg["readout_type"] = "linear_smaller4" if dataset == "multi_mnist" else names.get(variant, variant)
        if dataset == "multi_mnist":
            cfg["hidden_channels"] = 16
    elif family == "cnn":
        cfg.update(num_layers=variant, readout_type="linear")
    else:
        cfg.update(c_mid=variant, readout_type="linear")
    return cfg


@pytest.mark.parametrize("row", sorted(REFERENCE_COUNTS, key=str), ids=str)
def test_from_reference_config_gives_the_paper_config(row):
    assert from_reference_config(_authors_config(*row)) == paper_config(*row)


def test_from_reference_config_errors():
    with pytest.raises(ValueError, match="unknown model_type 'cornn_model3'"):
        from_reference_config({"model_type": "cornn_model3"})
    with pytest.raises(ValueError, match="unknown readout_type 'conv4'"):
        from_reference_config({"model_type": "cornn_model2"})  # the authors' default config.yaml
    with pytest.raises(ValueError, match="cell_type 'gru'"):
        from_reference_config({"model_type": "conv_recurrent2", "readout_type": "fft", "cell_type": "gru"})
