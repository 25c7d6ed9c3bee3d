"""Writable twins of frozen, slotted dataclasses, for building many instances fast.

A frozen dataclass sets each field through ``object.__setattr__``. A twin with the same slots
and bases takes plain slot stores (a few nanoseconds each) and is then given the frozen
class, which leaves an ordinary, frozen instance: about a third of the time for the Messages
and ``Processed`` items the client makes one of per message.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

__all__ = ["unfrozen_twin"]


def unfrozen_twin(frozen: type, fields: tuple[str, ...]) -> type[Any] | None:
    """A writable class with ``frozen``'s slots whose instances, once filled in, may be given
    ``frozen``'s class (``instance.__class__ = frozen``).

    Returns None, for the caller to build instances the usual way, if ``frozen``'s fields are
    not ``fields`` in that order (a builder written for them would be wrong) or the layouts
    differ (Python then refuses the class change).
    """
    if tuple(field.name for field in dataclasses.fields(frozen)) != fields:
        return None
    bases = getattr(frozen, "__orig_bases__", frozen.__bases__)  # Generic[T], not Generic
    twin = types.new_class(
        f"_Unfrozen{frozen.__name__}", bases, exec_body=lambda space: space.update(__slots__=fields)
    )
    instance: Any = object.__new__(twin)
    try:
        instance.__class__ = frozen
    except TypeError:
        return None
    return twin
