"""topic.last_message_id() against a scripted admin endpoint: ids, empty topics, refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import rxstargate as rs


class Admin:
    """An HTTP server answering every GET with ``status`` and ``body``; records requests."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {"ledgerId": 7, "entryId": 3, "partitionIndex": -1}
        self.requests: list[tuple[str, str | None]] = []
        admin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                admin.requests.append((self.path, self.headers.get("Authorization")))
                data = json.dumps(admin.body).encode()
                self.send_response(admin.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # shutdown() waits for the server's next poll: 0.5 s by default
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, name="admin"
        )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def admin() -> Iterator[Admin]:
    server = Admin()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    server.thread.join(5)


def test_the_last_message_id_comes_from_the_admin_api(admin: Admin) -> None:
    with rs.Client(admin.url, token="secret") as client:
        last = client.topic("acme/eu/orders").last_message_id()
    assert last == rs.MessageId.from_parts(7, 3)
    path, auth = admin.requests[0]
    assert path == "/admin/v2/persistent/acme/eu/orders/lastMessageId"
    assert auth == "Bearer secret"


def test_an_empty_topic_has_no_last_message_id(admin: Admin) -> None:
    admin.body = {"ledgerId": -1, "entryId": -1}
    with rs.Client(admin.url) as client:
        assert client.topic("t").last_message_id() is None


def test_a_refusal_is_a_typed_error(admin: Admin) -> None:
    admin.status, admin.body = 403, {"reason": "Not authorized"}
    with rs.Client(admin.url) as client, pytest.raises(rs.AuthorizationError):
        client.topic("t").last_message_id()
