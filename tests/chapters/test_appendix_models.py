"""The appendix tables of twi_core.chapters.appendix_models."""

from __future__ import annotations

import pytest
import torch

from twi_core.models import REFERENCE_COUNTS, build, count_parameters, paper_config
from twi_core.chapters import appendix_models as summary
from twi_core.presets import PRESETS, resolve


def test_settings_cover_every_preset():
    assert set(summary.TABLE) == set(PRESETS)
    assert resolve(summary.TABLE, "smoke", env=False).trace_size == 16


def test_parameter_table_matches_every_reported_count():
    table = summary.parameter_table()
    reported = table.dropna(subset=["authors"])
    assert len(reported) == len(REFERENCE_COUNTS)
    assert reported["match"].astype(bool).all()
    assert (reported["ours"] == reported["authors"]).all()
    assert table["match"].isna().sum() == len(table) - len(REFERENCE_COUNTS)


@pytest.mark.parametrize(
    "row", [("tetrominoes", "nwm", "linear"), ("mnist", "lstm", "fft"), ("tetrominoes", "cnn", 4),
            ("multi_mnist", "unet", 2), ("multi_mnist", "nwm", "last")], ids=str,
)
def test_layer_table_accounts_for_every_parameter(row):
    model = build(**paper_config(*row))
    table = summary.layer_table(model, image_size=16)
    assert int(table["parameters"].sum()) == count_parameters(model)
    assert not table["operation"].isin(["ReLU", "Tanh"]).any()  # activations are folded into their layer's row
    if row[1] in ("nwm", "lstm"):
        rollout = table.set_index("layer").loc["rollout", "output shape"]
        c = model.config["hidden_channels"]
        assert rollout == f"1×{model.config['steps']}×{c}×16×16"
    assert table["output shape"].iloc[-1 if row[1] in ("cnn", "unet") else 0].startswith("1×")


def test_readout_and_head_tables():
    readouts = summary.readout_table(steps=100, channels=2).set_index("readout")
    assert readouts.loc["fft", "F (head input)"] == 102 and readouts.loc["last", "F (head input)"] == 2
    assert readouts["uses the time projection"].sum() == 1 and readouts.loc["linear", "uses the time projection"]
    heads = summary.head_table().set_index("head")
    assert heads.loc["small", "Linear layers"] == 6 and heads.loc["default", "Linear layers"] == 4


def test_demo_states():
    x, states = summary.demo_states(image_size=16, steps=5)
    assert x.shape == (1, 3, 16, 16) and states.shape == (1, 5, 2, 16, 16)
    assert float(x.max()) > 0 and bool(torch.isfinite(states).all())


def test_traced_layer_tables_slice_the_page_settings():
    settings = resolve(summary.TABLE, "smoke", env=False)
    first = summary.traced_layer_tables(settings, 0, 1)
    assert len(first) == 1 and summary.traced_layer_tables(settings, len(settings.traced), None) == []
    heading, table = first[0]
    dataset, family, variant = settings.traced[0]
    model = build(**paper_config(dataset, family, variant))
    assert heading == (f"{family} on {dataset} ({variant}); shapes traced at 16x16 (preset smoke); "
                       f"parameters: {count_parameters(model):,}")
    assert int(table["parameters"].sum()) == count_parameters(model)
