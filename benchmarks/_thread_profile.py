"""cProfile over every thread of this process (cProfile alone sees only the thread it runs on).

Usage::

    with profile_threads("produce.prof"):
        ...  # threads started in here are profiled too; the stats of all threads are merged

Read the result with ``python -m pstats produce.prof`` (``sort tottime``, ``stats 25``).
"""

from __future__ import annotations

import contextlib
import cProfile
import pstats
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def profile_threads(path: str) -> Iterator[None]:
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            original_run(self, *args, **kwargs)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile()
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.Thread.run = original_run  # type: ignore[method-assign]
        stats = pstats.Stats(main)
        with lock:
            for profile in profiles:
                with contextlib.suppress(TypeError):  # a thread still running has no stats yet
                    stats.add(profile)
        stats.dump_stats(path)
