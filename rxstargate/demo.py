"""The demo of ``rxstargate demo``, to run from Python: ``run_demo()`` returns its summary.

Example:
    >>> from rxstargate.demo import run_demo
    >>> run_demo(messages=1000, show=False).out_of_order  # doctest: +SKIP
    0
"""

from rxstargate.cli._demo import DemoSummary, run_demo

__all__ = ["DemoSummary", "run_demo"]
