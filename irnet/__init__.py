"""irnet: a neural-network compiler from `.irn` models to Numba code, through xDSL IR."""

__version__ = "0.1.0"
