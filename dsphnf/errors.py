"""Exceptions whose message is shown to command-line users as one line."""

__all__ = ["DsphnfError", "CatalogError", "FitError", "AnisotropyError"]


class DsphnfError(Exception):
    """Base class: the CLI prints ``dsphnf: error: <message>`` and exits with 2."""


class CatalogError(DsphnfError, ValueError):
    """A star catalogue cannot be read or fails validation (names file/row/column)."""


class FitError(DsphnfError):
    """A fit cannot proceed (bad settings, diverging training, bad prior file)."""


class AnisotropyError(DsphnfError, ValueError):
    """A malformed or unsupported anisotropy spelling, or a model outside its limits."""
