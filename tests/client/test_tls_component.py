"""wss:// with TLS options against a scripted peer using a throwaway self-signed certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.server import serve

import rxstargate as rs

from .conftest import ack_every_message

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made once for this module's tests."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command, which makes the test certificate, is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        # An EC key: made in milliseconds where an RSA one takes a tenth of a second or more.
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def wss_url(certificate: tuple[Path, Path]) -> Iterator[str]:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = serve(ack_every_message, "127.0.0.1", 0, ssl=context, compression=None)
    server.SHUTDOWN_POLLING_INTERVAL = 0.002  # as the scripted peers (conftest.py)
    thread = threading.Thread(target=server.serve_forever, name="tls-peer", daemon=True)
    thread.start()
    yield f"wss://localhost:{server.socket.getsockname()[1]}"
    server.shutdown()
    thread.join(timeout=10)


def test_wss_with_the_right_ca_file_works(wss_url: str, certificate: tuple[Path, Path]) -> None:
    tls = rs.TlsOptions(ca_file=str(certificate[0]))
    with rs.Client(wss_url, tls=tls) as client:
        assert client.topic("t").producer().send(b"secret").ok


def test_wss_refuses_an_untrusted_certificate(wss_url: str) -> None:
    with (
        rs.Client(wss_url, connect_timeout=5) as client,
        pytest.raises(rs.StargateConnectionError) as caught,
    ):
        client.topic("t").producer().send(b"x")
    assert isinstance(caught.value.__cause__, ssl.SSLError | OSError)


def test_wss_hostname_check_can_be_relaxed_but_not_trust(
    wss_url: str, certificate: tuple[Path, Path]
) -> None:
    by_ip = wss_url.replace("localhost", "127.0.0.1")
    tls = rs.TlsOptions(ca_file=str(certificate[0]), check_hostname=False)
    with rs.Client(by_ip, tls=tls) as client:
        assert client.topic("t").producer().send(b"x").ok
