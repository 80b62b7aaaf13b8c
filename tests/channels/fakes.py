"""A small HTTP/1.1 server on 127.0.0.1 that plays a provider's API in tests.

``FakeServer(handler)`` records every request (method, path, headers, body, and which TCP
connection it came on) and answers with whatever ``handler(request)`` returns: a ``Reply``.
Provider fakes (``tests/channels/backends/test_*.py``) check the request shape in their handler and
answer as the provider documents, including its errors. ``script`` holds replies to give
instead, one per request, before the handler's own (e.g. a 503, then success); the handler
still sees the request (``request.scripted`` is true) to check its shape.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    connection: int  # the number of the TCP connection it came on (1, 2 …)
    scripted: bool = False  # a scripted reply answers it: the handler only checks its shape
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """A form-encoded body, one value per field (asserts no field repeats)."""
        fields = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=True)
        assert all(len(values) == 1 for values in fields.values()), fields
        return {name: values[0] for name, values in fields.items()}


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # bytes, str, or anything JSON-serialisable (sent as JSON)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (timeouts)


def json_reply(status: int, body: Any, **headers: str) -> Reply:
    return Reply(status, body, {"Content-Type": "application/json", **headers})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one handler instance per TCP connection
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake.lock:
            self.server.fake.connections += 1
            self.connection_number = self.server.fake.connections

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            connection=self.connection_number,
        )
        reply = self.server.fake.answer(request)
        if reply.delay:
            time.sleep(reply.delay)
        payload = reply.body
        headers = dict(reply.headers)
        if not isinstance(payload, bytes | str):
            payload = json.dumps(payload)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(payload, str):
            payload = payload.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeServer

    def handle_error(self, request, client_address) -> None:
        pass  # a client that timed out closed its end: not the test's business


class FakeServer:
    def __init__(self, handler: Callable[[Request], Reply]):
        self.handler = handler
        self.requests: list[Request] = []
        self.script: list[Reply] = []
        self.connections = 0
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            scripted = self.script.pop(0) if self.script else None
        request.scripted = scripted is not None
        reply = self.handler(request)  # checks the request shape even when scripted
        return scripted if scripted is not None and reply.status < 400 else reply

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
