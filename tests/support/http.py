"""A real HTTP server on 127.0.0.1 that replays recorded responses and scripted faults.

    def test_retry(http_replay):
        http_replay.route("/api/daily_papers", Reply(429, headers={"Retry-After": "1"}), Reply.json([]))
        ...  # point the client at http_replay.base_url
        assert [r.query["p"] for r in http_replay.requests] == ["0", "0"]

A route is (path, query): ``query=None`` matches any query string, a dict
matches exactly those parameters (values compared as strings). Its replies are
served in order and the last one repeats. Anything unrouted gets a 404. Bodies
can be JSON, text, XML (Atom/RSS feeds) or raw bytes, from a value or a file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

CONTENT_TYPES = {
    ".json": "application/json",
    ".xml": "application/xml",
    ".atom": "application/atom+xml",
    ".rss": "application/rss+xml",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


@dataclass(frozen=True)
class Reply:
    """One scripted response: a status, headers, a body, and optionally a fault."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (longer than the client timeout = a timeout)
    drop: bool = False  # close the connection without answering

    @classmethod
    def json(cls, value: object, status: int = 200, **kwargs) -> Reply:
        return cls(status, json.dumps(value).encode(), "application/json", **kwargs)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = CONTENT_TYPES[".txt"], **kw) -> Reply:
        return cls(status, text.encode(), content_type, **kw)

    @classmethod
    def xml(cls, text: str, status: int = 200, content_type: str = "application/atom+xml", **kw) -> Reply:
        return cls(status, text.encode(), content_type, **kw)

    @classmethod
    def file(cls, path: str | Path, status: int = 200, content_type: str | None = None, **kw) -> Reply:
        path = Path(path)
        kind = content_type or CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        return cls(status, path.read_bytes(), kind, **kw)

    @classmethod
    def malformed_json(cls, status: int = 200, **kwargs) -> Reply:
        return cls(status, b'[{"paper": {"id": "2504.1', "application/json", **kwargs)

    @classmethod
    def dropped(cls) -> Reply:
        return cls(drop=True)


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]  # first value of each parameter
    raw_query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""


class Route:
    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.served = 0

    def next(self) -> Reply:
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


def _as_reply(value: Reply | object) -> Reply:
    return value if isinstance(value, Reply) else Reply.json(value)


def _query_key(query: Mapping[str, object] | None) -> frozenset | None:
    return None if query is None else frozenset((k, str(v)) for k, v in query.items())


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() waits for every handler to finish


class ReplayServer:
    """The server behind the ``http_replay`` fixture."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._routes: dict[tuple[str, frozenset | None], Route] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval keeps shutdown (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="http-replay", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, *replies: Reply | object, query: Mapping[str, object] | None = None) -> None:
        """Serve ``replies`` in order for ``path`` (and ``query``); the last one repeats.

        A reply that is not a :class:`Reply` is sent as a JSON body with status 200.
        """
        if not replies:
            raise ValueError("a route needs at least one reply")
        with self._lock:
            self._routes[(path, _query_key(query))] = Route([_as_reply(r) for r in replies])

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _reply_for(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            route = self._routes.get((request.path, _query_key(request.query))) or self._routes.get(
                (request.path, None)
            )
            if route is None:
                return Reply.json({"error": f"no route for {request.path}?{request.raw_query}"}, 404)
            return route.next()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers that are sleeping through a scripted delay
        self._httpd.shutdown()
        self._httpd.server_close()  # joins the handler threads
        self._thread.join(timeout=5)


def _handler_for(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at shutdown
        timeout = 5  # a client that connects and says nothing cannot hold up shutdown for long

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(reversed(parse_qsl(parts.query, keep_blank_values=True))),
                raw_query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            reply = server._reply_for(request)
            if reply.delay and server._stopping.wait(reply.delay):
                return
            if reply.drop:
                self.close_connection = True
                return
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout is shorter than our delay)

        do_GET = do_POST = do_HEAD = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass  # tests read server.requests instead

    return Handler


@pytest.fixture
def http_replay() -> Iterator[ReplayServer]:
    """A started :class:`ReplayServer` on 127.0.0.1, stopped after the test."""
    server = ReplayServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
