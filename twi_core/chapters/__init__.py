"""Chapter orchestration: one module per chapter and appendix page of the book, each with its preset table and the few
high-level calls its notebook makes. Notebooks stay thin; the logic they need lives here and in the library modules."""

from __future__ import annotations


__all__ = ["shipped_configs"]


def shipped_configs(preset: str = "book") -> list:
    """Every training configuration the chapters load at ``preset`` that the shipped run store must hold, so that a
    build at that preset trains nothing: chapter 3's table rows (when its preset is set to the store), the Polygons
    runs of chapters 2 and 5 (chapter 2's run is chapter 5's seed 0) and chapter 4's Multi-MNIST runs (except at
    ``smoke``, which trains its few-image runs live).

    Examples
    --------
    >>> configs = shipped_configs("book")
    >>> sorted({c.dataset for c in configs})
    ['mnist', 'multi_mnist', 'polygons', 'tetrominoes']
    """
    from twi_core import presets
    from twi_core.chapters import ch3_table1 as ch3
    from twi_core.chapters import ch4_multi_mnist as ch4
    from twi_core.chapters import ch5_wavelengths as ch5

    with presets.pinned(preset):
        s3 = ch3.settings(preset)
        configs = [p["config"] for p in ch3.live_points(s3)] if s3.stored else []
        configs += [config for _, config in ch5.figure10_configs(ch5.settings(preset))]
        if preset != "smoke":
            configs += [p["config"] for p in ch4.live_points(ch4.settings(preset))]
    return configs
