"""A module whose import fails, for the tests of handler import paths."""

raise RuntimeError("this module fails to import, on purpose")
