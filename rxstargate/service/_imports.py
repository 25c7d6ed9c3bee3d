"""Import paths (``module:attribute``): how a configuration names handlers, schemas and apps."""

from __future__ import annotations

import importlib
from typing import Any

from rxstargate.exceptions import ConfigurationError

__all__ = ["is_import_path", "resolve"]


def is_import_path(value: object) -> bool:
    """Whether ``value`` is shaped like ``module:attribute`` (``a.b:c.d``)."""
    if not isinstance(value, str):
        return False
    module, colon, attribute = value.partition(":")
    return bool(colon and module.strip() and attribute.strip()) and ":" not in attribute


def resolve(path: str, what: str) -> Any:
    """The object ``path`` (``module:attribute``, dotted on both sides) names.

    Args:
        path: ``package.module:name`` or ``package.module:Class.attribute``.
        what: what the object is for, for error messages (``"handler of consumer 'billing'"``).

    Raises:
        ConfigurationError: when the path is malformed, the module cannot be imported (its
            own import error is the cause) or has no such attribute.

    Example:
        >>> resolve("json:dumps", "an example")([1])
        '[1]'
    """
    if not is_import_path(path):
        raise ConfigurationError(
            f"{what} must be an import path 'module:attribute' (such as 'shop.billing:charge'),"
            f" not {path!r}"
        )
    module_name, _, attribute = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name.strip())
    except ModuleNotFoundError as exc:
        wanted = module_name.strip()
        if exc.name is not None and (wanted == exc.name or wanted.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"{what}: no module named {exc.name!r} (from {path!r}; is its directory on the"
                " Python path? `rxstargate run` adds the current directory)"
            ) from exc
        raise ConfigurationError(f"{what}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:  # the module's own code failed: say where, keep the cause
        raise ConfigurationError(
            f"{what}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.strip().split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigurationError(
                f"{what}: {module_name.strip()!r} has no attribute {attribute.strip()!r}"
            ) from None
    return found
