"""The authors' parameter counts, for every configuration of the paper's Tables 1 and 2.

Source: the authors' model classes (their repository, KempnerInstitute/traveling-waves-integrate, commit ``ccfdc9e``)
instantiated with CPU torch; analytic and torch counts agree exactly. Keys are ``(dataset, family, variant)`` as in
:func:`twi_core.models.paper_config`. The paper prints them rounded ("176k"); these are exact.
"""

from __future__ import annotations

__all__ = ["REFERENCE_COMPONENTS", "REFERENCE_COUNTS"]

_SPECTRAL = ("fft", "linear")
_POINTWISE = ("last", "mean", "max")


def _table() -> dict[tuple[str, str, object], int]:
    counts: dict[tuple[str, str, object], int] = {}
    for dataset, spectral, pointwise in (("tetrominoes", 176_124, 150_524), ("mnist", 176_545, 150_945)):
        counts.update({(dataset, "nwm", r): spectral for r in _SPECTRAL})
        counts.update({(dataset, "nwm", r): pointwise for r in _POINTWISE})
    for dataset, spectral, pointwise in (("tetrominoes", 151_046, 145_926), ("mnist", 151_467, 146_347)):
        counts.update({(dataset, "lstm", r): spectral for r in _SPECTRAL})
        counts.update({(dataset, "lstm", r): pointwise for r in _POINTWISE})
    depths = (2, 4, 8, 16, 32)
    counts.update(zip((("tetrominoes", "cnn", L) for L in depths), (159_502, 164_142, 173_422, 191_982, 229_102)))
    counts.update(zip((("mnist", "cnn", L) for L in depths), (160_499, 165_139, 174_419, 192_979, 230_099)))
    counts[("multi_mnist", "nwm", "linear")] = 54_855
    counts.update(zip((("multi_mnist", "unet", m) for m in (2, 3, 4, 5)), (30_745, 68_834, 122_071, 190_456)))
    return counts


#: Total trainable parameters of the authors' models, by ``(dataset, family, variant)``.
REFERENCE_COUNTS: dict[tuple[str, str, object], int] = _table()

#: Per-component counts of the authors' NWMs (``cornn_model2.py``), keyed by our module names.
REFERENCE_COMPONENTS: dict[tuple[str, str, object], dict[str, int]] = {
    ("tetrominoes", "nwm", "linear"): {
        "omega_encoder": 3_058, "alpha_encoder": 3_058, "y0_encoder": 5_378, "coupling": 36,
        "time_projection": 5_100, "head": 159_494,
    },
    ("tetrominoes", "nwm", "last"): {"head": 133_894},
    ("mnist", "nwm", "linear"): {
        "omega_encoder": 2_770, "alpha_encoder": 2_770, "y0_encoder": 5_090, "coupling": 36,
        "time_projection": 5_100, "head": 160_779,
    },
    ("mnist", "nwm", "last"): {"head": 135_179},
    ("multi_mnist", "nwm", "linear"): {
        "omega_encoder": 4_800, "alpha_encoder": 4_800, "y0_encoder": 7_120, "coupling": 2_304,
        "time_projection": 5_100, "head": 30_731,
    },
    ("tetrominoes", "lstm", "linear"): {
        "y0_encoder": 5_378, "h0_encoder": 3_058, "c0_encoder": 3_058, "cell": 296, "transform": 22,
        "time_projection": 220, "head": 139_014,
    },
    ("tetrominoes", "cnn", 2): {"head": 158_470},
}
