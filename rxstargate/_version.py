"""rxstargate's version: the one place it is written (the package metadata is built from it)."""

__version__ = "0.1.0"
