"""How sockets are opened and kept: credentials, TLS, timeouts and size caps; URL redaction."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = ["TlsOptions", "TransportConfig", "redact_url"]


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
    """How sockets are opened and kept: credentials, TLS, timeouts (seconds) and size caps."""

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
