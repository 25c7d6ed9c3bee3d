"""A package's public names imported on first use (PEP 562), so that importing it stays cheap.

``import rxstargate`` and the ``rxstargate`` command start without the client's machinery
(reactivex, websocket-client, marshmallow, the service and the notebook views): each public
name is imported from its module the first time it is used, then kept as an ordinary
attribute of the package.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, sources: Mapping[str, Iterable[str]], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        sources: for each module (absolute name), the public names it defines.
        submodules: the package's modules that are attributes of it, imported on first use.
    """
    module_of = {name: module for module, names in sources.items() for name in names}
    modules = frozenset(submodules)
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name in module_of:
            value = getattr(importlib.import_module(module_of[name]), name)
        elif name in modules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *module_of, *modules})

    return __getattr__, __dir__
