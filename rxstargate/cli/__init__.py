"""The ``rxstargate`` command line: ``demo``, ``tail``, ``produce`` and ``local``.

``main()`` is the console script's entry point; ``python -m rxstargate.cli`` runs it too.
"""

from rxstargate.cli._main import main

__all__ = ["main"]
