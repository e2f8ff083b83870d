"""One entry point over every model: ``build``, the paper's configurations, parameter counts, the authors' checkpoints."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

import torch
from torch import nn

from twi_core.models.cnn import CNN
from twi_core.models.conv_lstm import ConvLSTM
from twi_core.models.nwm import NWM
from twi_core.models.readouts import READOUTS
from twi_core.models.unet import UNet

__all__ = [
    "DATASETS",
    "MODELS",
    "PAPER_VARIANTS",
    "build",
    "count_parameters",
    "from_reference_config",
    "load_reference_checkpoint",
    "model_config",
    "paper_config",
    "paper_rows",
]

#: The model classes by ``build`` name.
MODELS: dict[str, type[nn.Module]] = {"nwm": NWM, "lstm": ConvLSTM, "cnn": CNN, "unet": UNet}

#: Input channels, classes (background included) and image side of each dataset. Polygons: 1–2 white polygons with 3–6
#: sides on black, so 5 classes (background + 4 side counts); the paper does not give the canvas, 64 px is our choice.
DATASETS: dict[str, dict[str, int]] = {
    "polygons": {"in_channels": 1, "num_classes": 5, "image_size": 64},
    "tetrominoes": {"in_channels": 3, "num_classes": 6, "image_size": 64},
    "mnist": {"in_channels": 1, "num_classes": 11, "image_size": 56},
    "multi_mnist": {"in_channels": 1, "num_classes": 11, "image_size": 128},
}

_RECURRENT = tuple(READOUTS)  # last, mean, max, fft, linear (the tables' order)

#: The variants of each ``(dataset, family)`` row group of the paper (Tables 1 and 2, and the Polygons experiment).
PAPER_VARIANTS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("polygons", "nwm"): _RECURRENT,
    ("tetrominoes", "nwm"): _RECURRENT,
    ("tetrominoes", "lstm"): _RECURRENT,
    ("tetrominoes", "cnn"): (2, 4, 8, 16, 32),
    ("mnist", "nwm"): _RECURRENT,
    ("mnist", "lstm"): _RECURRENT,
    ("mnist", "cnn"): (2, 4, 8, 16, 32),
    ("multi_mnist", "nwm"): _RECURRENT,
    ("multi_mnist", "unet"): (2, 3, 4, 5),
}


def build(name: str, *, in_channels: int, num_classes: int, image_size: int, **options: Any) -> nn.Module:
    """Build a model by name; ``model(x)`` returns logits ``(B, num_classes, H, W)``.

    Parameters
    ----------
    name : {'nwm', 'lstm', 'cnn', 'unet'}
    in_channels : int
        Input channels (1 for MNIST, 3 for Tetrominoes).
    num_classes : int
        Output classes, background included.
    image_size : int
        Side of the square inputs, in pixels.
    **options
        The model's other configuration fields (see :class:`~twi_core.models.nwm.NWMConfig`,
        :class:`~twi_core.models.conv_lstm.ConvLSTMConfig`, :class:`~twi_core.models.cnn.CNNConfig`,
        :class:`~twi_core.models.unet.UNetConfig`); unknown options are rejected.

    Returns
    -------
    nn.Module
        With ``.config``, the complete keyword arguments of this call (defaults filled in, ``name`` included), so that
        ``build(**model.config)`` rebuilds it. The recurrent models (``nwm``, ``lstm``) also accept
        ``model(x, return_states=True)`` and return ``(logits, states)`` with states ``(B, T, C, H, W)``.

    Raises
    ------
    ValueError
        Unknown model name or option, invalid values.

    Examples
    --------
    >>> model = build("nwm", in_channels=3, num_classes=6, image_size=64)
    >>> count_parameters(model)
    176124
    >>> count_parameters(build(**model.config))
    176124
    """
    model_config(name=name, in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)


def _config_types() -> dict[str, type]:
    from twi_core.models.cnn import CNNConfig
    from twi_core.models.conv_lstm import ConvLSTMConfig
    from twi_core.models.nwm import NWMConfig
    from twi_core.models.unet import UNetConfig

    return {"nwm": NWMConfig, "lstm": ConvLSTMConfig, "cnn": CNNConfig, "unet": UNetConfig}


def model_config(name: str, **options: Any):
    """The typed, validated configuration of ``build(name, **options)``: a frozen :class:`NWMConfig`,
    :class:`ConvLSTMConfig`, :class:`CNNConfig` or :class:`UNetConfig` (defaults filled in).

    Raises
    ------
    ValueError
        An unknown model name or option (the message lists the accepted ones), or an invalid value.

    Examples
    --------
    >>> model_config(**paper_config("tetrominoes", "nwm", "linear")).steps
    100
    >>> model_config("cnn", in_channels=3, num_classes=6, image_size=64, depht=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown option(s) ['depht'] for model 'cnn' (CNNConfig); expected some of ['depth', ...]
    """
    return check_options(name, options)(**options)


def check_options(name: str, options: Mapping[str, Any]) -> type:
    """The configuration class of model ``name`` after checking that every key of ``options`` is one of its fields.

    Raises
    ------
    ValueError
        An unknown model name or option; the message lists the accepted ones.
    """
    types = _config_types()
    if name not in types:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(types)}")
    config_type = types[name]
    accepted = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = sorted(accepted - {"in_channels", "num_classes", "image_size"})
        raise ValueError(f"unknown option(s) {unknown} for model {name!r} ({config_type.__name__}); expected some of "
                         f"{valid}")
    return config_type


def paper_config(dataset: str, family: str, variant: Any) -> dict[str, Any]:
    """The ``build`` keyword arguments (``name`` included) of one row of the paper's Tables 1–2 (or of Polygons).

    Parameters
    ----------
    dataset : {'polygons', 'tetrominoes', 'mnist', 'multi_mnist'}
    family : {'nwm', 'lstm', 'cnn', 'unet'}
    variant : str or int
        The readout (``'last'``, ``'mean'``, ``'max'``, ``'fft'``, ``'linear'``) for ``nwm`` and ``lstm``, the depth L
        for ``cnn`` (2, 4, 8, 16, 32), the width m for ``unet`` (2, 3, 4, 5).

    Notes
    -----
    NWM: C = 2 oscillator channels, C_m = 16, T = 100, Δt = 0.1, the 4-layer 256-wide head; on Multi-MNIST C = 16 and
    the 6-layer 32-wide head (the table's row is the linear readout; the other readouts use the same configuration);
    on Polygons T = 500 (so the FFT has 251 bins; the paper says 250). Conv-LSTM: C = 2, C_m = 16, T = 20. CNN: C_m = 16,
    C = 2, the 1×1 expansion to 98 channels. U-Net: width m.

    Examples
    --------
    >>> paper_config("tetrominoes", "cnn", 8)["depth"]
    8
    >>> paper_config("multi_mnist", "nwm", "linear")["head"]
    'small'
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(DATASETS)}")
    if family not in MODELS:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(MODELS)}")
    key = (dataset, family)
    if key not in PAPER_VARIANTS:
        have = sorted(f for d, f in PAPER_VARIANTS if d == dataset)
        raise ValueError(f"the paper has no {family!r} model on {dataset!r}; families on {dataset!r}: {have}")
    variants = PAPER_VARIANTS[key]
    if isinstance(variant, bool) or variant not in variants:
        raise ValueError(f"unknown variant {variant!r} for {family!r} on {dataset!r}; expected one of {list(variants)}")
    config: dict[str, Any] = {"name": family, **DATASETS[dataset]}
    if family == "nwm":
        multi = dataset == "multi_mnist"
        config.update(
            hidden_channels=16 if multi else 2,
            mid_channels=16,
            steps=500 if dataset == "polygons" else 100,
            dt=0.1,
            readout=variant,
            head="small" if multi else "default",
        )
    elif family == "lstm":
        config.update(hidden_channels=2, mid_channels=16, steps=20, readout=variant, head="default")
    elif family == "cnn":
        config.update(depth=variant, mid_channels=16, hidden_channels=2, expanded_channels=98, head="default")
    else:
        config.update(width=variant)
    return config


def paper_rows() -> list[tuple[str, str, Any]]:
    """Every ``(dataset, family, variant)`` accepted by :func:`paper_config`, in table order."""
    return [(d, f, v) for (d, f), variants in PAPER_VARIANTS.items() for v in variants]


def count_parameters(model: nn.Module) -> int:
    """The number of parameters of ``model`` (buffers such as BatchNorm running statistics are not counted).

    Counts every parameter, as the authors do, including the time projection that non-linear readouts never train.
    """
    return sum(p.numel() for p in model.parameters())


# The authors' names (config.yaml) -> ours.
_REFERENCE_MODELS = {"cornn_model2": "nwm", "conv_recurrent2": "lstm", "baseline1_flexible": "cnn", "unet2": "unet"}
_REFERENCE_READOUTS = {  # readout_type -> (readout, head)
    "last": ("last", "default"), "mean_time": ("mean", "default"), "max_time": ("max", "default"),
    "fft": ("fft", "default"), "linear": ("linear", "default"), "linear_smaller4": ("linear", "small"),
}
_REFERENCE_DATASETS = {"new_tetronimoes": "tetrominoes", "mnist": "mnist", "multi_mnist": "multi_mnist"}


def from_reference_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``build`` kwargs for a run configured with the authors' ``config.yaml`` keys (to load its ``cp.pt``).

    Reads ``model_type``, ``dataset``, ``readout_type``, ``hidden_channels``, ``c_mid``, ``max_iters``, ``dt``,
    ``num_classes``, ``N`` and ``num_layers`` (CNN) as the authors' ``make_model`` does; ``min_iters``, ``rnn_kernel``
    and the other unused keys are ignored. Missing keys take the authors' defaults.

    Examples
    --------
    >>> kwargs = from_reference_config({"model_type": "cornn_model2", "dataset": "multi_mnist", "N": 128,
    ...     "num_classes": 11, "c_mid": 16, "hidden_channels": 16, "readout_type": "linear_smaller4"})
    >>> kwargs == paper_config("multi_mnist", "nwm", "linear")
    True
    """
    defaults = {"model_type": "cornn_model2", "readout_type": "conv4", "dataset": "new_tetronimoes", "N": 64,
                "num_classes": 6, "c_mid": 11, "hidden_channels": 11, "max_iters": 100, "dt": 0.1, "num_layers": 16,
                "cell_type": "lstm"}
    cfg = {**defaults, **dict(config)}
    if cfg["model_type"] not in _REFERENCE_MODELS:
        raise ValueError(f"unknown model_type {cfg['model_type']!r}; expected one of {sorted(_REFERENCE_MODELS)}")
    if cfg["dataset"] not in _REFERENCE_DATASETS:
        raise ValueError(f"unknown dataset {cfg['dataset']!r}; expected one of {sorted(_REFERENCE_DATASETS)}")
    name = _REFERENCE_MODELS[cfg["model_type"]]
    dataset = DATASETS[_REFERENCE_DATASETS[cfg["dataset"]]]
    kwargs: dict[str, Any] = {"name": name, "in_channels": dataset["in_channels"], "num_classes": cfg["num_classes"],
                              "image_size": cfg["N"]}
    if name in ("nwm", "lstm"):
        if cfg["readout_type"] not in _REFERENCE_READOUTS:
            raise ValueError(
                f"unknown readout_type {cfg['readout_type']!r}; expected one of {sorted(_REFERENCE_READOUTS)}"
            )
        if name == "lstm" and cfg["cell_type"] != "lstm":
            raise ValueError(f"cell_type {cfg['cell_type']!r} is not supported; expected 'lstm' (the paper's baseline)")
        readout, head = _REFERENCE_READOUTS[cfg["readout_type"]]
        kwargs.update(hidden_channels=cfg["hidden_channels"], mid_channels=cfg["c_mid"], steps=cfg["max_iters"])
        if name == "nwm":
            kwargs["dt"] = cfg["dt"]
        kwargs.update(readout=readout, head=head)
    elif name == "cnn":
        kwargs.update(depth=cfg["num_layers"], mid_channels=cfg["c_mid"], hidden_channels=cfg["hidden_channels"],
                      expanded_channels=(int(cfg["max_iters"] / 2) - 1) * cfg["hidden_channels"], head="default")
    else:
        kwargs["width"] = cfg["c_mid"]
    return kwargs


# Key renames from the authors' checkpoints (reference_state_dict_keys.md) to ours, per model family.
_REFERENCE_KEYS: dict[str, list[tuple[str, str]]] = {
    "nwm": [
        (r"^classifier\.fc_readout\.", "head.layers."),
        (r"^classifier\.omega_encoder\.", "omega_encoder."),
        (r"^classifier\.alpha_encoder\.", "alpha_encoder."),
        (r"^classifier\.hy_encoder\.", "y0_encoder."),
        (r"^classifier\.cell\.Wy\.", "coupling."),
        (r"^classifier\.fc_time\.", "time_projection."),
    ],
    "lstm": [
        (r"^classifier\.fc_readout\.", "head.layers."),
        (r"^classifier\.hy_encoder\.", "y0_encoder."),
        (r"^classifier\.hz_encoder\.", "h0_encoder."),
        (r"^classifier\.hc_encoder\.", "c0_encoder."),
        (r"^classifier\.recurrent_cell\.cell\.conv\.", "cell."),
        (r"^classifier\.recurrent_cell\.transform_hidden\.", "transform."),
        (r"^classifier\.fc_time\.", "time_projection."),
    ],
    "cnn": [
        (r"^encoder\.", "encoder."),
        (r"^readout\.", "head.layers."),
    ],
    "unet": [
        (r"^inc\.double_conv\.", "inc."),
        (r"^down(\d)\.maxpool_conv\.1\.double_conv\.", r"down\1.1."),
        (r"^up(\d)\.up\.", r"up\1.up."),
        (r"^up(\d)\.conv\.double_conv\.", r"up\1.conv."),
        (r"^outc\.conv\.", "outc."),
    ],
}


def reference_key_map(family: str, keys) -> dict[str, str]:
    """Map the authors' state-dict keys of a ``family`` model to ours; a ValueError names any key it cannot map."""
    if family not in _REFERENCE_KEYS:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(_REFERENCE_KEYS)}")
    mapping: dict[str, str] = {}
    for key in keys:
        for pattern, replacement in _REFERENCE_KEYS[family]:
            new, hits = re.subn(pattern, replacement, key)
            if hits:
                mapping[key] = new
                break
        else:
            raise ValueError(f"state_dict key {key!r} is not a key of the authors' {family!r} checkpoints")
    return mapping


def load_reference_checkpoint(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a ``state_dict`` saved by the authors' code into ``model`` (strictly: every key, every shape).

    Build the matching model first, e.g. ``build(**paper_config('tetrominoes', 'nwm', 'linear'))``; the authors' key
    names (``classifier.cell.Wy.weight``, ``classifier.fc_time.weight``, ...) are mapped to ours.

    Parameters
    ----------
    model : nn.Module
        A model from :func:`build`.
    state_dict : mapping of str to Tensor
        E.g. ``torch.load('cp.pt', weights_only=True)``.

    Returns
    -------
    nn.Module
        ``model``, with the weights loaded.

    Raises
    ------
    ValueError
        A key the authors' models of that family do not have, a missing key, or a shape that does not fit ``model``.
    """
    family = getattr(model, "config", {}).get("name") if isinstance(getattr(model, "config", None), dict) else None
    if family not in MODELS:
        raise TypeError(f"model must come from twi_core.models.build (with .config['name']), got {type(model).__name__}")
    mapping = reference_key_map(family, state_dict.keys())
    ours = {mapping[k]: v for k, v in state_dict.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint does not fit this {family!r} model ({model.config}): missing {missing}, unexpected {unexpected}; "
            "build the model with the checkpoint's configuration (readout, head, hidden_channels, steps)"
        )
    for key, value in ours.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            source = next(k for k, v in mapping.items() if v == key)
            raise ValueError(
                f"checkpoint tensor {source!r} has shape {tuple(value.shape)}; this model expects "
                f"{tuple(expected[key].shape)} for {key!r}; build the model with the checkpoint's configuration"
            )
    model.load_state_dict(ours, strict=True)
    return model
