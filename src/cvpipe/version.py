"""cvpipe's version (one place; ``cvpipe.__version__`` and run files read it)."""

__version__ = "0.1.0"
