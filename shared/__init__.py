"""What the site agent and the coordinator both import: class list, schemas, settings loading, the CT phantom.

Nothing in here imports `site_agent` or `coordinator`: they meet only in this package and over the network.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fedsynth")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
