"""``python -m rxstargate.cli``: the ``rxstargate`` command."""

import sys

from rxstargate.cli._main import main

status = main()
# CPython remembers a KeyboardInterrupt that left code run by exec() or eval() of a string (a
# dataclass or namedtuple being made during an import), even one that main() caught, and then
# ends a `python -m` run by SIGINT instead of with this status. Running a string clears that.
exec("")
sys.exit(status)
