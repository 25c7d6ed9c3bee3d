"""How sockets are opened and kept: credentials, TLS, timeouts and size caps; URL redaction."""

from __future__ import annotations

import math
import os
import random
import ssl
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from rxstargate.exceptions import ConfigurationError

__all__ = ["MAX_SECONDS", "TlsOptions", "TransportConfig", "checked_seconds", "redact_url"]

#: The longest timeout accepted anywhere (30 days): longer ones overflow the clocks they set.
MAX_SECONDS = 30 * 86_400.0


def checked_seconds(value: object, name: str, *, zero: bool = False) -> float:
    """``value`` (a number or timedelta) as seconds, or a ConfigurationError naming ``name``.

    Example:
        >>> checked_seconds(timedelta(minutes=1), "timeout")
        60.0
    """
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(f"{name} must be seconds (a number or timedelta), not {value!r}")
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not result > 0 and not (zero and result == 0):
        raise ConfigurationError(f"{name} must be positive, not {value!r}")
    if not math.isfinite(result) or result > MAX_SECONDS:
        raise ConfigurationError(f"{name} must be at most {MAX_SECONDS:.0f} s, not {value!r}")
    return result


def checked_backoff(
    initial: object, factor: object, cap: object, jitter: object, *, zero_initial: bool
) -> tuple[float, float, float, float]:
    """A capped exponential backoff's settings as (initial, factor, cap, jitter) in seconds.

    Raises:
        ConfigurationError: naming the setting that is wrong.
    """
    first = checked_seconds(initial, "initial", zero=zero_initial)
    most = checked_seconds(cap, "cap", zero=True)
    growth = _finite(factor, "factor")
    spread = _finite(jitter, "jitter")
    if growth < 1:
        raise ConfigurationError(f"factor must be at least 1, not {factor!r}")
    if most < first:
        raise ConfigurationError(f"cap ({most} s) must be at least initial ({first} s)")
    if not 0 <= spread <= 1:
        raise ConfigurationError(f"jitter must be between 0 and 1, not {jitter!r}")
    return first, growth, most, spread


def backoff_delay(
    initial: float, factor: float, cap: float, jitter: float, n: int, rng: random.Random
) -> float:
    """The n-th delay (n from 0): ``min(cap, initial * factor ** n)``, less up to ``jitter``."""
    try:
        delay = min(cap, initial * factor**n)
    except OverflowError:
        delay = cap
    if jitter:
        delay *= 1 - jitter * rng.random()
    return delay


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a finite number, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """TLS settings for ``wss://`` URLs.

    Attributes:
        ca_file: PEM file of the CAs to trust (the system store when None).
        cert_file: client certificate (PEM), for servers that authenticate by certificate.
        key_file: the client certificate's private key (PEM).
        check_hostname: verify that the certificate names the host (keep True in production).
        verify: verify the server certificate at all (False only for tests).

    Example:
        >>> TlsOptions(ca_file="ca.pem").check_hostname
        True
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True
    verify: bool = True

    def check(self) -> None:
        """Load the files now, so that a wrong path fails at ``Client(...)``, naming the file.

        Raises:
            ConfigurationError: for a file that cannot be read or does not hold what it should.
        """
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and (not isinstance(path, str) or not os.path.isfile(path)):
                raise ConfigurationError(f"tls {name} {path!r} is not a file")
        try:
            self.sslopt()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigurationError(f"tls settings cannot be loaded: {exc}") from None

    def sslopt(self) -> dict[str, object]:
        """The options websocket-client expects, as one ``ssl.SSLContext``."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = self.check_hostname
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return {"context": context}


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """How sockets are opened and kept: credentials, TLS, timeouts (seconds) and size caps.

    A :class:`~rxstargate.Client` builds one from its arguments and hands it to its
    connector with every socket it opens.

    Attributes:
        token: the JWT to send as ``Authorization: Bearer``, or None.
        tls: TLS settings for ``wss://`` URLs, or None for the defaults.
        connect_timeout: seconds to open a socket and finish its handshake.
        ping_interval: seconds of silence before a ping.
        ping_timeout: seconds to wait for the pong before the socket counts as dropped.
        write_timeout: seconds a socket may accept no bytes before it counts as dropped.
        close_timeout: seconds a close waits for queued frames and the server's answer.
        max_receive_bytes: the largest frame accepted from the server.
        max_send_bytes: the largest frame sent.
    """

    token: str | None = None
    tls: TlsOptions | None = None
    connect_timeout: float = 10.0
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    write_timeout: float = 10.0
    close_timeout: float = 5.0
    max_receive_bytes: int = 8 * 1024 * 1024
    max_send_bytes: int = 1024 * 1024

    def __repr__(self) -> str:
        token = "<hidden>" if self.token else None
        return (
            f"TransportConfig(token={token}, tls={self.tls!r},"
            f" connect_timeout={self.connect_timeout}, ping_interval={self.ping_interval},"
            f" ping_timeout={self.ping_timeout}, write_timeout={self.write_timeout},"
            f" close_timeout={self.close_timeout})"
        )


def redact_url(url: str) -> str:
    """``url`` without a ``token`` query parameter or user info, for logs and errors.

    Example:
        >>> redact_url("ws://u:p@h:1/ws?token=abc&x=1")
        'ws://h:1/ws?token=<hidden>&x=1'
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        "token=<hidden>" if item.startswith("token=") else item
        for item in parts.query.split("&")
        if item
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
