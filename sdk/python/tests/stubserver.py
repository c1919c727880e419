"""A scriptable local HTTP server standing in for event-api, and helpers for the tests."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Union
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    """One request as the stub received it."""

    method: str
    target: str  # raw request target, exactly as sent (still percent-encoded)
    path: str  # raw path, still percent-encoded
    query: List[Any]  # decoded (name, value) pairs
    headers: Dict[str, str]
    body: bytes
    peer: Any = None  # the client's (address, port): one per connection

    @property
    def data(self) -> bytes:
        """The body as the server reads it: gunzipped when sent with ``Content-Encoding: gzip``."""
        encoding = next((v for k, v in self.headers.items() if k.lower() == "content-encoding"), "")
        return gzip.decompress(self.body) if encoding.lower() == "gzip" else self.body

    @property
    def json(self) -> Any:
        return json.loads(self.data.decode("utf-8"))


@dataclass
class Reply:
    """A scripted answer. ``drop=True`` closes the connection without answering;
    ``delay`` waits that many seconds before answering. The connection is closed after the
    answer (``Connection: close``) unless ``keep_alive``; ``close_silently`` closes it anyway,
    without saying so, as a server's idle timeout would right after."""

    status: int = 200
    body: Any = None  # dict/list -> JSON, str/bytes -> as is, None -> empty
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    keep_alive: bool = False
    close_silently: bool = False


Responder = Callable[[Recorded], Reply]


class StubServer:
    """A ThreadingHTTPServer on 127.0.0.1:<ephemeral port> answering from a script.

    ``stub.queue(Reply(...), ...)`` appends answers used in order; when the queue is empty,
    ``stub.responder`` (if set) computes the answer; otherwise the stub answers 599 so that an
    unexpected request shows up clearly in a test failure.
    """

    def __init__(self) -> None:
        self.requests: List[Recorded] = []
        self.responder: Optional[Responder] = None
        self._replies: List[Reply] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    target=self.path,
                    path=parts.path,
                    query=parse_qsl(parts.query, keep_blank_values=True),
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                    peer=self.client_address,
                )
                reply = stub._next_reply(recorded)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if isinstance(reply.body, (dict, list)):
                    payload = json.dumps(reply.body).encode("utf-8")
                    content_type = "application/json"
                elif isinstance(reply.body, str):
                    payload = reply.body.encode("utf-8")
                    content_type = "text/plain; charset=utf-8"
                elif isinstance(reply.body, bytes):
                    payload = reply.body
                    content_type = "application/octet-stream"
                else:
                    payload = b""
                    content_type = "application/json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    if not (reply.keep_alive or reply.close_silently):
                        self.send_header("Connection", "close")
                    if "X-Request-Id" not in reply.headers:
                        self.send_header(
                            "X-Request-Id", recorded.headers.get("X-Request-Id", "stub-generated")
                        )
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                self.close_connection = not reply.keep_alive

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _next_reply(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self._replies:
                return self._replies.pop(0)
        if self.responder is not None:
            return self.responder(recorded)
        return Reply(599, {"error": "stub: no scripted reply", "field": None})

    def queue(self, *replies: Union[Reply, int]) -> None:
        with self._lock:
            for reply in replies:
                self._replies.append(Reply(reply) if isinstance(reply, int) else reply)

    def start(self) -> "StubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SleepRecorder:
    """Stands in for time.sleep: records the delays, does not wait."""

    def __init__(self) -> None:
        self.calls: List[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def free_port() -> int:
    """A local port with nothing listening on it (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ACCEPTED_ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def accepted(request: Recorded) -> Reply:
    """Responder echoing the request's event_id with 202 accepted."""
    event_id = request.json.get("event_id") if request.body else None
    return Reply(202, {"event_id": event_id or ACCEPTED_ID, "status": "accepted"})
