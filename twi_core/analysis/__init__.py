"""Analyses of hidden-state sequences: spectra, wavelengths, space-time separability, receptive fields.

Import the submodules directly, e.g. ``from twi_core.analysis.wavelength import wavelength_field``.
"""
