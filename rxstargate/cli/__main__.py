"""``python -m rxstargate.cli``: the ``rxstargate`` command."""

import sys

from rxstargate.cli._main import main

sys.exit(main())
