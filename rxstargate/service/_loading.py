"""Reading an App's configuration: a TOML file, or a dict of the same shape.

::

    url = "ws://127.0.0.1:8080"          # else $RXSTARGATE_URL
    token_file = "token.txt"             # or token = "..."; else $RXSTARGATE_TOKEN
    [client]                             # more rs.Client arguments (reconnect as a table)
    [producers.NAME]                     # topic, schema, max_in_flight, timeout, [options]
    [consumers.NAME]                     # topic, subscription, handler, ..., [options]
    [readers.NAME]                       # topic, handler, start, ..., [options]
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rxstargate._reconnect import Backoff
from rxstargate.exceptions import ConfigurationError
from rxstargate.operators import Retry
from rxstargate.service._build import named
from rxstargate.service._imports import is_import_path, resolve
from rxstargate.service._specs import ConsumerSpec, ProducerSpec, ReaderSpec

__all__ = ["URL_VARIABLE", "app_arguments", "load_app", "read_toml"]

URL_VARIABLE = "RXSTARGATE_URL"
TOKEN_VARIABLE = "RXSTARGATE_TOKEN"

_TOP = ("url", "token", "token_file", "client", "producers", "consumers", "readers")
_CLIENT = (
    "connect_timeout",
    "ping_interval",
    "ping_timeout",
    "write_timeout",
    "close_timeout",
    "max_frame_bytes",
    "max_send_bytes",
    "reconnect",
)
_PRODUCER = ("topic", "schema", "max_in_flight", "timeout", "options")
_HANDLING = (
    "topic",
    "handler",
    "timeout",
    "retry",
    "on_failure",
    "dead_letter_to",
    "publish_to",
    "max_in_flight",
    "restart",
    "start",
    "schema",
    "schema_failures",
    "stall_timeout",
    "options",
)
_CONSUMER = (*_HANDLING, "subscription", "subscription_type", "concurrency", "key_ordered")


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``.

    Raises:
        ConfigurationError: when it cannot be read or is not valid TOML.
    """
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the app's file {str(path)!r}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None


def _table(value: Any, where: str, known: tuple[str, ...] | None = None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a table, not {value!r:.80}")
    if known is not None:
        unknown = [key for key in value if key not in known]
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(known)})"
            )
    return dict(value)


def _token(data: Mapping[str, Any], base_dir: Path) -> str | None:
    token, file = data.get("token"), data.get("token_file")
    if token is not None and file is not None:
        raise ConfigurationError("give token or token_file, not both")
    if token is not None:
        if not isinstance(token, str):
            raise ConfigurationError("token must be a string")
        return token
    if file is None:
        return os.environ.get(TOKEN_VARIABLE) or None
    if not isinstance(file, str):
        raise ConfigurationError(f"token_file must be a path, not {file!r}")
    path = base_dir / file
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the token file {str(path)!r}: {exc}") from None
    if not text:
        raise ConfigurationError(f"the token file {str(path)!r} is empty")
    return text


def _made(kind: Callable[..., Any], value: Any, where: str) -> Any:
    """``kind(**value)`` for a table (a Retry or Backoff), with errors that say where."""
    table = _table(value, where)
    with named(where):
        try:
            return kind(**table)
        except TypeError as exc:
            raise ConfigurationError(str(exc).replace("__init__() ", "")) from None


def _spec(kind: type, table: Any, where: str, known: tuple[str, ...]) -> Any:
    settings = _table(table, where, known)
    options = _table(settings.pop("options", {}), f"{where}.options")
    for key in settings:
        if key in options:
            raise ConfigurationError(f"{where}: {key!r} is set twice (and in its options)")
    for required in ("topic", "subscription", "handler"):
        if required in known and required not in settings:
            raise ConfigurationError(f"{where}: {required!r} is missing")
    if "retry" in settings:
        settings["retry"] = _made(Retry, settings["retry"], f"{where}.retry")
    if "restart" in settings:
        settings["restart"] = _made(Backoff, settings["restart"], f"{where}.restart")
    with named(where):
        return kind(**options, **settings)


def _named_specs(
    data: Mapping[str, Any], section: str, kind: type, known: tuple[str, ...]
) -> dict[str, Any]:
    tables = _table(data.get(section, {}), section)
    return {
        str(name): _spec(kind, table, f"{section}.{name}", known) for name, table in tables.items()
    }


def app_arguments(data: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """The keyword arguments of ``App(...)`` that ``data`` describes.

    Raises:
        ConfigurationError: naming the setting that is wrong.
    """
    data = _table(data, "the app's configuration", _TOP)
    url = data.get("url") or os.environ.get(URL_VARIABLE)
    if not url:
        raise ConfigurationError(f"no url: set url in the app's configuration or ${URL_VARIABLE}")
    client = _table(data.get("client", {}), "client", _CLIENT)
    if "reconnect" in client:
        client["reconnect"] = _made(Backoff, client["reconnect"], "client.reconnect")
    return {
        "url": url,
        "token": _token(data, base_dir),
        "producers": _named_specs(data, "producers", ProducerSpec, _PRODUCER),
        "consumers": _named_specs(data, "consumers", ConsumerSpec, _CONSUMER),
        "readers": _named_specs(data, "readers", ReaderSpec, _HANDLING),
        **client,
    }


def load_app(reference: str) -> Any:
    """The App that ``reference`` names: a TOML file, or ``module:attribute`` naming an App
    (or a function that returns one), imported with the current directory on the path.

    Raises:
        ConfigurationError: when it cannot be read, imported or made, or is not an App.
    """
    from rxstargate.service._app import App

    here = os.getcwd()  # as `python -m` does: the app's modules and handlers are found here
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)
    if reference.endswith(".toml") or Path(reference).is_file():
        return App.from_toml(reference)
    if not is_import_path(reference):
        raise ConfigurationError(
            f"APP must be a TOML file or module:attribute naming an rs.App, not {reference!r}"
            " (no such file)"
        )
    target = resolve(reference, "APP")
    if not isinstance(target, App) and callable(target):
        try:
            target = target()
        except ConfigurationError:
            raise
        except Exception as exc:  # the factory's own failure: say where, keep the cause
            raise ConfigurationError(
                f"APP {reference}: calling it failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not isinstance(target, App):
        raise ConfigurationError(f"{reference!r} is not an rs.App (it is {target!r:.60})")
    return target
