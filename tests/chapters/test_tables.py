"""Every page module names its scales the same way: ``TABLE``, one entry per preset."""

from __future__ import annotations

import importlib

import pytest

from twi_core.presets import PRESETS

PAGES = ["ch1_drum", "ch2_polygons", "ch3_table1", "ch4_multi_mnist", "ch5_wavelengths", "appendix_datasets",
         "appendix_models", "appendix_performance"]


@pytest.mark.parametrize("name", PAGES)
def test_each_page_has_one_table_of_presets(name):
    page = importlib.import_module(f"twi_core.chapters.{name}")
    assert set(page.TABLE) == set(PRESETS) and "TABLE" in page.__all__
    assert not any(hasattr(page, old) for old in ("PRESETS", "SETTINGS", "PAGE_PRESETS"))
