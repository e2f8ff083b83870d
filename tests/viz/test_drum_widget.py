"""Tests of twi_core.viz.drum_widget: the JavaScript asset ships as package data, the HTML embeds it whole and offline,
the config the page runs with is the one Python validated, and the preset shapes are twi_core.drum's own masks.

The numbers the page computes are checked against twi_core.drum in tests/test_browser.py (they need Chromium).
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from twi_core import drum
from twi_core.viz import drum_widget

ROOT = Path(__file__).resolve().parents[2]


def _mount_config(fragment: str) -> dict:
    """The JSON config the fragment passes to ``twiDrumLib.mount`` (the second argument of the call)."""
    call = re.search(r"twiDrumLib\.mount\(document\.getElementById\((\"[^\"]*\")\), (\{.*\})\);</script>", fragment)
    assert call, "the fragment does not mount the widget"
    return json.loads(call.group(2))


def test_asset_is_package_data():
    asset = resources.files("twi_core").joinpath("resources", drum_widget.ASSET)
    assert asset.is_file()
    # the wheel carries it only if a package-data pattern of pyproject.toml matches it
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["twi_core"]
    assert any(fnmatch.fnmatch(f"resources/{drum_widget.ASSET}", p) for p in patterns), patterns
    source = drum_widget.asset_source()
    assert source == asset.read_text(encoding="utf-8")
    for api in ("setMask", "getMask", "run", "fundamental", "peaks", "toneSamples", "play", "window.twiDrum"):
        assert api in source, f"the asset lost its {api} interface"


def test_html_embeds_the_asset_inline_and_offline():
    fragment = drum_widget.drawable_drum_html(element_id="drum-x")
    assert drum_widget.asset_source() in fragment                      # whole, not a link to it
    assert f'class="{drum_widget.DRUM_CLASS}" id="drum-x"' in fragment
    # nothing is fetched: no element that loads a file, no fetch or dynamic import, no URL anywhere (a CDN link would
    # break the offline page)
    assert not re.search(r"<(script|link|img|iframe|audio|source)\b[^>]*\b(src|href)\s*=", fragment, re.I)
    assert "fetch(" not in fragment and "import(" not in fragment
    assert "http:" not in fragment and "https:" not in fragment and "//cdn" not in fragment
    # the inline script must not be cut short by a closing tag inside it
    assert fragment.lower().count("</script") == 2
    page = drum_widget.drawable_drum_page(grid=24, steps=1024)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert _mount_config(page)["grid"] == 24


def test_notebook_display_object_carries_the_fragment():
    shown = drum_widget.drawable_drum(element_id="drum-nb")
    assert shown.data == drum_widget.drawable_drum_html(element_id="drum-nb")
    # two embeds without an explicit id on one page get different ids
    ids = {re.search(r'id="([^"]+)"', drum_widget.drawable_drum_html()).group(1) for _ in range(2)}
    assert len(ids) == 2


def test_config_in_the_page_is_the_validated_one():
    cfg = _mount_config(drum_widget.drawable_drum_html(grid=40, steps=4096, dt=0.4, base_hz=200.0))
    assert cfg == drum_widget.drum_config(grid=40, steps=4096, dt=0.4, base_hz=200.0)
    assert (cfg["grid"], cfg["steps"], cfg["dt"], cfg["base_hz"]) == (40, 4096, 0.4, 200.0)
    side = cfg["reference_side"]
    assert cfg["reference_eigenvalue"] == pytest.approx(8 * np.sin(np.pi / (2 * side)) ** 2, rel=1e-12)


@pytest.mark.parametrize("grid", [32, 48])
def test_presets_are_the_package_masks(grid):
    cfg = drum_widget.drum_config(grid=grid)
    masks = drum_widget.preset_masks(grid)
    assert set(cfg["presets"]) == set(masks) == {"square", "disk", "gww1", "gww2"}
    for name, mask in masks.items():
        cells = np.array([c == "1" for c in cfg["presets"][name]["cells"]]).reshape(grid, grid)
        assert np.array_equal(cells, mask), name
        # nothing free on the canvas edge: the drum's rim lies inside the board, where the reader sees it
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()), name
    side = int(round(0.7 * grid))
    assert masks["square"].sum() == (side - 1) ** 2
    rows, cols = np.nonzero(masks["square"])
    sq = masks["square"][rows.min() - 1:rows.max() + 2, cols.min() - 1:cols.max() + 2]
    assert np.array_equal(sq, drum.square_mask(side))
    # the isospectral pair: same number of free neurons, different shapes, and isospectral as discrete operators
    assert masks["gww1"].sum() == masks["gww2"].sum()
    assert not np.array_equal(masks["gww1"], masks["gww2"])
    if grid == 32:
        lam = [drum.discrete_dirichlet_eigenvalues(masks[k], 4) for k in ("gww1", "gww2")]
        np.testing.assert_allclose(lam[0], lam[1], rtol=1e-9)


def test_config_errors_say_how_to_fix():
    with pytest.raises(ValueError, match="power of two.*try 1024"):
        drum_widget.drum_config(steps=1000)
    with pytest.raises(ValueError, match="unstable"):
        drum_widget.drum_config(dt=0.8)
    with pytest.raises(ValueError, match=r"unknown initial shape 'star'; expected one of \['disk', 'gww1'"):
        drum_widget.drum_config(initial="star")
    with pytest.raises(ValueError, match="grid must be an integer >= 12"):
        drum_widget.drum_config(grid=8)
    with pytest.raises(ValueError, match="volume"):
        drum_widget.drum_config(volume=2.0)
