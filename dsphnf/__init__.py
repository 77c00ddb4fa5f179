"""dsphnf: dark-matter profiles of dwarf spheroidals with equivariant flows."""
__version__ = "0.1.0"
__all__ = ["__version__"]
