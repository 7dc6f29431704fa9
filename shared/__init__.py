"""Linescale's own shared package: wire contracts, configuration, logging, metric names.

Not to be confused with the team folder ``../shared`` beside a checkout.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("linescale")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
