"""CenterWatch agent: checks → scheduler → spool → uploader. Never imports ``collector``."""

from centerwatch import __version__

__all__ = ["__version__"]
