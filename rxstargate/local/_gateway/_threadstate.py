"""Python callbacks on the broker client's own threads, without a new thread state per call.

The broker client (a C++ library) calls Python back on threads that Python did not start: each
send's receipt, each ack's completion. Python gives such a call a thread state made for it and
destroys it afterwards: the runtime's lock twice, a fresh frame stack (an mmap and an munmap)
and more, per message. At a steady modest rate that was about a third of the broker client
thread's CPU. ``keep_thread_state``, called first in such a callback, takes one more hold of the
calling thread's state, never given back, so every later callback on that thread reuses it (a
state per broker-client thread is kept until the interpreter ends).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable

_kept: set[int] = set()


def _gil_state_ensure() -> Callable[[], object] | None:
    try:
        return ctypes.pythonapi.PyGILState_Ensure
    except AttributeError:  # not CPython: nothing to keep
        return None


_ensure = _gil_state_ensure()


def keep_thread_state() -> None:
    """Keep the calling thread's Python thread state once it returns to foreign code.

    Cheap after the first call on a thread (a set lookup); harmless on threads Python started,
    whose state lives as long as they do anyway. Call with the GIL held, as any Python code is.
    """
    ident = threading.get_native_id()
    if ident in _kept or _ensure is None:
        return
    _kept.add(ident)
    _ensure()  # the GIL is held already: this only counts one more hold of this thread's state
