"""The one version string: packaging metadata, ``qontak.__version__`` and the User-Agent read it."""

__version__ = "0.1.0"
