"""Tables that describe the models: parameter counts beside the authors', layer-by-layer shapes, readouts and heads.

Used by the appendix page "Models"; each function returns a :class:`pandas.DataFrame`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from twi_core.models.readouts import HEADS, READOUTS, num_frequency_bins
from twi_core.models.reference_counts import REFERENCE_COUNTS
from twi_core.models.registry import build, count_parameters, paper_config, paper_rows

__all__ = ["TABLE", "demo_states", "head_table", "layer_table", "parameter_table", "readout_table",
           "traced_layer_tables"]

_TRACED = [("tetrominoes", "nwm", "linear"), ("tetrominoes", "lstm", "linear"), ("tetrominoes", "cnn", 4),
           ("multi_mnist", "unet", 2)]

#: Scale-dependent settings of the appendix page. ``traced``: configurations that get a layer table (one forward pass
#: each); ``trace_size``: canvas of those passes (``None``: the dataset's own size); ``demo_size``/``demo_steps``: the
#: untrained-NWM illustration.
TABLE: dict[str, dict[str, Any]] = {
    "smoke": {"traced": _TRACED, "trace_size": 16, "demo_size": 32, "demo_steps": 40},
    "book": {"traced": _TRACED, "trace_size": None, "demo_size": 64, "demo_steps": 100},
    "paper": {"traced": [*_TRACED, ("multi_mnist", "nwm", "linear")], "trace_size": None, "demo_size": 64,
              "demo_steps": 100},
}


def parameter_table() -> pd.DataFrame:
    """Every configuration of :func:`~twi_core.models.paper_rows`, counted live, beside the authors' count.

    Columns: dataset, family, variant, ours, authors (``<NA>`` where the paper has no such row), match.
    """
    rows = []
    for dataset, family, variant in paper_rows():
        ours = count_parameters(build(**paper_config(dataset, family, variant)))
        authors = REFERENCE_COUNTS.get((dataset, family, variant))
        rows.append({
            "dataset": dataset, "family": family, "variant": str(variant), "ours": ours,
            "authors": authors, "match": None if authors is None else ours == authors,
        })
    table = pd.DataFrame(rows)
    table["authors"] = table["authors"].astype("Int64")
    return table


_ACTIVATIONS = (nn.ReLU, nn.Tanh)


def layer_table(model: nn.Module, *, batch: int = 1, image_size: int | None = None) -> pd.DataFrame:
    """The model's layers in call order with their output shapes (one forward pass on zeros) and parameter counts.

    Activations are folded into the row of the layer they follow. For the recurrent models a row ``rollout`` gives the
    hidden-state sequence ``(B, T, C, H, W)``; a layer used in every step (the LSTM's per-pixel transform) is listed
    once. ``image_size`` traces a freshly built model of the same configuration at another canvas size (cheaper).
    """
    if image_size is not None:
        model = build(**{**model.config, "image_size": image_size})
    cfg = model.config
    x = torch.zeros(batch, cfg["in_channels"], cfg["image_size"], cfg["image_size"])
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    hooks = []
    recurrent = cfg["name"] in ("nwm", "lstm")

    def hook(name):
        def record(module, inputs, output):
            if name in seen:
                return
            seen.add(name)
            if recurrent and name.startswith("head") and "rollout" not in seen:
                seen.add("rollout")
                rows.append({"layer": "rollout", "operation": f"T = {cfg['steps']} steps",
                             "output shape": None, "parameters": 0})
            if isinstance(module, _ACTIVATIONS) and rows and rows[-1]["layer"] != "rollout":
                rows[-1]["operation"] += f", {type(module).__name__}"
                rows[-1]["output shape"] = tuple(output.shape)
                return
            rows.append({"layer": name, "operation": _describe(module), "output shape": tuple(output.shape),
                         "parameters": sum(p.numel() for p in module.parameters(recurse=False))})
        return record

    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(hook(name)))
    # Trace the heads in their nn.Sequential form: the fused head computes the same without calling its submodules,
    # so their hooks would not fire.
    from twi_core.models.readouts import PixelMLP

    heads = [(m, m.fused) for m in model.modules() if isinstance(m, PixelMLP)]
    for m, _ in heads:
        m.fused = False
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            out = model(x, return_states=True) if recurrent else model(x)
            model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
        for m, fused in heads:
            m.fused = fused
    if recurrent:
        states = out[1]
        for row in rows:
            if row["layer"] == "rollout":
                row["output shape"] = tuple(states.shape)
        # parameters used functionally inside the rollout (not through a module call)
        used = {"nwm": ["coupling", "time_projection"], "lstm": ["cell", "time_projection"]}[cfg["name"]]
        for name in used:
            module = getattr(model, name)
            rows.append({"layer": name, "operation": _describe(module), "output shape": None,
                         "parameters": sum(p.numel() for p in module.parameters())})
    table = pd.DataFrame(rows)
    table["output shape"] = table["output shape"].map(lambda s: "" if s is None else "×".join(map(str, s)))
    return table


def traced_layer_tables(settings, start: int = 0, stop: int | None = None) -> list[tuple[str, pd.DataFrame]]:
    """Layer tables (:func:`layer_table`) of the page's traced configurations ``settings.traced[start:stop]``.

    Parameters
    ----------
    settings : the page's settings (:data:`TABLE` through :func:`twi_core.presets.resolve`); ``traced`` holds
        ``(dataset, family, variant)`` rows, ``trace_size`` the canvas of the passes (``None``: the dataset's own).
    start, stop : the slice of ``settings.traced`` to trace (one forward pass each); an empty slice gives ``[]``.

    Returns
    -------
    list of (str, DataFrame)
        Per configuration a heading (model, dataset, variant, traced canvas, preset, parameter count) and its table.
    """
    out = []
    for dataset, family, variant in settings.traced[start:stop]:
        model = build(**paper_config(dataset, family, variant))
        table = layer_table(model, image_size=settings.trace_size)
        size = settings.trace_size or model.config["image_size"]
        out.append((f"{family} on {dataset} ({variant}); shapes traced at {size}x{size} (preset {settings.preset}); "
                    f"parameters: {count_parameters(model):,}", table))
    return out


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        pad = f", {module.padding_mode} padding" if module.padding_mode != "zeros" else ""
        bias = "" if module.bias is not None else ", no bias"
        k = "×".join(map(str, module.kernel_size))
        return f"Conv {k} {module.in_channels}→{module.out_channels}{pad}{bias}"
    if isinstance(module, nn.ConvTranspose2d):
        return f"ConvTranspose 2×2/2 {module.in_channels}→{module.out_channels}"
    if isinstance(module, nn.Linear):
        bias = "" if module.bias is not None else ", no bias"
        return f"Linear {module.in_features}→{module.out_features}{bias}"
    if isinstance(module, nn.BatchNorm2d):
        return f"BatchNorm {module.num_features}"
    return type(module).__name__


def readout_table(*, steps: int = 100, channels: int = 2) -> pd.DataFrame:
    """Each readout with its head input size F for ``steps`` and ``channels``, and whether it trains the projection."""
    return pd.DataFrame([
        {"readout": name, "F (head input)": r.num_features(channels=channels, steps=steps),
         "uses the time projection": r.uses_time_weight}
        for name, r in READOUTS.items()
    ]).assign(K=num_frequency_bins(steps))


def head_table() -> pd.DataFrame:
    """The per-pixel MLP heads: hidden widths and number of Linear layers."""
    return pd.DataFrame([
        {"head": name, "hidden widths": " → ".join(map(str, widths)), "Linear layers": len(widths) + 1}
        for name, widths in HEADS.items()
    ])


def demo_states(*, image_size: int = 64, steps: int = 100, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An untrained Tetrominoes NWM (seeded) run on one synthetic image: a coloured T piece on black.

    Returns
    -------
    x : Tensor, shape (1, 3, S, S)
        The image.
    states : Tensor, shape (1, T, 2, S, S)
        The oscillator positions :math:`y_1..y_T` at initialisation (Laplacian coupling, default-initialised encoders).
    """
    torch.manual_seed(seed)
    model = build(**{**paper_config("tetrominoes", "nwm", "linear"), "image_size": image_size, "steps": steps})
    x = torch.zeros(1, 3, image_size, image_size)
    cell = max(image_size // 9, 1)  # the Tetrominoes' 7-px cells at 64 px
    top, left = image_size // 3, image_size // 3
    colour = torch.tensor([0.9, 0.6, 0.2])[:, None, None]
    x[0, :, top:top + cell, left:left + 3 * cell] = colour  # the bar of the T
    x[0, :, top + cell:top + 2 * cell, left + cell:left + 2 * cell] = colour  # its stem
    with torch.no_grad():
        _, states = model(x, return_states=True)
    return x, states
