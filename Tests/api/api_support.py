"""Helpers shared by the live HTTP API tests: raw HTTP requests, polling, unique names, and extra
event-api / event-consumer processes.

Standard library only (no SDK): every test sees exactly the bytes the server sent.

Environment (all optional; scripts/test.d/50-api sets them):
  EVENT_API_URL            the API under test (default http://127.0.0.1:18080)
  EVENT_API_BIN            event-api binary for extra instances (default .build/debug/event-api)
  EVENT_CONSUMER_BIN       event-consumer binary (default .build/debug/event-consumer)
  API_TEST_CONSUMER_PIDFILE  pid file of the running consumer; the redelivery test stops and restarts it
  API_TEST_CONSUMER_LOG    where the restarted consumer logs
  API_TEST_LOG_DIR         where extra API instances log
  KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_GROUP_ID, CONSUMER_METRICS_PORT, CLICKHOUSE_DATABASE: the
                           configuration the consumer runs with (inherited by restarted processes)
"""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple
from urllib.parse import quote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_URL = os.environ.get("EVENT_API_URL", "http://127.0.0.1:18080").rstrip("/")
API_BIN = Path(os.environ.get("EVENT_API_BIN", str(ROOT / ".build/debug/event-api")))
CONSUMER_BIN = Path(os.environ.get("EVENT_CONSUMER_BIN", str(ROOT / ".build/debug/event-consumer")))
LOG_DIR = Path(os.environ.get("API_TEST_LOG_DIR", "/tmp"))

#: Unique per test run: every conversation id and event name the tests create contains it.
RUN = "%s-%s" % (time.strftime("%H%M%S"), uuid.uuid4().hex[:8])

POLL_TIMEOUT = 15.0
POLL_INTERVAL = 0.2

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# Server bugs found by this suite (see the report of the session that wrote it). A test marked
# with known_bug() is expected to fail until the server is fixed; strict, so a fixed bug makes the
# test "XPASS(strict)" and fails the run: then delete the entry here and the marker at the test.
KNOWN_BUGS: Dict[str, str] = {}


def known_bug(name: str):
    return pytest.mark.xfail(reason="server bug: " + KNOWN_BUGS[name], strict=True)


def unique(kind: str) -> str:
    """A fresh conversation id or event name for this run."""
    return "api-test-%s-%s-%s" % (RUN, kind, uuid.uuid4().hex[:8])


# ----------------------------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AssertionError("not JSON (%d): %r" % (self.status, self.body[:300])) from exc

    def __repr__(self) -> str:
        return "<%d %r>" % (self.status, self.body[:500])


class Api:
    """A tiny HTTP client for one base URL; a new connection per request."""

    def __init__(self, base_url: str = BASE_URL, token: Optional[str] = None, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None,
                raw: Optional[bytes] = None, timeout: Optional[float] = None) -> Response:
        """`body` is sent as JSON; `raw` as bytes exactly. `path` is sent as given (encode it yourself)."""
        all_headers = {}
        if self.token is not None:
            all_headers["Authorization"] = "Bearer " + self.token
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            connection.close()

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> Response:
        return self.request("POST", path, body=body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs) -> Response:
        return self.request("PUT", path, body=body, **kwargs)

    def delete(self, path: str, **kwargs) -> Response:
        return self.request("DELETE", path, **kwargs)

    # Convenience wrappers that assert success.

    def create(self, **fields) -> str:
        response = self.post("/event/", fields)
        assert response.status == 202, response
        assert response.json["status"] == "accepted"
        return response.json["event_id"]

    def update(self, event_id: str, **fields) -> None:
        response = self.put("/event/" + event_id, fields)
        assert response.status == 202, response
        assert response.json == {"event_id": event_id, "status": "accepted"}

    def remove(self, event_id: str) -> None:
        response = self.delete("/event/" + event_id)
        assert response.status == 202, response
        assert response.json == {"event_id": event_id, "status": "accepted"}

    def batch(self, events: list) -> dict:
        response = self.post("/events/batch", {"events": events})
        assert response.status == 207, response
        result = response.json
        assert result["rejected"] == 0, result
        return result

    def conversation(self, conversation_id: str, **query) -> Response:
        path = "/events/conversation/" + quote(conversation_id, safe="")
        if query:
            path += "?" + "&".join("%s=%s" % (k, quote(str(v), safe="")) for k, v in query.items())
        return self.get(path)


def raw_http(host: str, port: int, data: bytes, timeout: float = 30.0) -> Tuple[int, Dict[str, str], bytes]:
    """Sends `data` (a whole request, as is) and reads one response while still sending, so a
    server that answers early (413) and stops reading cannot block us."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    received = b""
    sent = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete response within %.0f s (sent %d of %d bytes; got %r)"
                                   % (timeout, sent, len(data), received[:200]))
            for _, events in selector.select(remaining):
                if events & selectors.EVENT_WRITE:
                    try:
                        sent += sock.send(data[sent:sent + 256 * 1024])
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        sent = len(data)  # the server stopped reading; its answer may be waiting
                    if sent >= len(data):
                        selector.modify(sock, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        return parse_response(received)
                    received += chunk
                    head, sep, rest = received.partition(b"\r\n\r\n")
                    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if sep and length and len(rest) >= int(length.group(1)):
                        return parse_response(received)
    finally:
        selector.close()
        sock.close()


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (within the socket's timeout)."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


def closed_within(sock: socket.socket, timeout: float) -> Tuple[bool, bytes]:
    """Whether the server closes the connection within `timeout`, and what it sent before."""
    sock.settimeout(timeout)
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, received
            received += chunk
    except socket.timeout:
        return False, received
    except ConnectionResetError:
        return True, received


def parse_response(received: bytes) -> Tuple[int, Dict[str, str], bytes]:
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1.1 "), "no HTTP response: %r" % received[:200]
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def post_raw(api: Api, path: str, body: bytes, chunked: bool = False, extra_headers: str = "") -> Tuple[int, Dict[str, str], bytes]:
    """POSTs `body` with Content-Length, or with chunked transfer encoding (no declared length)."""
    head = "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n%s" % (path, api.host, api.port, extra_headers)
    if api.token:
        head += "Authorization: Bearer %s\r\n" % api.token
    if chunked:
        head += "Transfer-Encoding: chunked\r\n\r\n"
        payload = b""
        for start in range(0, len(body), 64 * 1024):
            piece = body[start:start + 64 * 1024]
            payload += b"%x\r\n" % len(piece) + piece + b"\r\n"
        payload += b"0\r\n\r\n"
    else:
        head += "Content-Length: %d\r\n\r\n" % len(body)
        payload = body
    return raw_http(api.host, api.port, head.encode() + payload)


# -------------------------------------------------------------------------------- polling


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = POLL_TIMEOUT) -> Any:
    """Calls `fetch` until `done(result)`; fails after `timeout` seconds, showing the last result."""
    deadline = time.monotonic() + timeout
    while True:
        last = fetch()
        if done(last):
            return last
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.0f s waiting for %s; last result: %r" % (timeout, what, last))
        time.sleep(POLL_INTERVAL)


def wait_for_event(api: Api, event_id: str, done: Callable[[dict], bool] = lambda e: True, what: str = "",
                   timeout: float = POLL_TIMEOUT) -> dict:
    response = poll(lambda: api.get("/event/" + event_id),
                    lambda r: r.status == 200 and done(r.json),
                    what or "event %s to be readable" % event_id, timeout)
    return response.json


def wait_until_consumed(api: Api, markers: int = 24, timeout: float = POLL_TIMEOUT) -> None:
    """Returns once the consumer has applied everything written before the call: a negative check
    ("this never arrives") after it cannot pass just because the consumer is slow. Markers with
    random ids land on every partition (keys are event ids; 24 markers miss one of 2 partitions with
    probability 2^-23), and each partition is applied in order, so all markers visible means all
    earlier writes were applied too."""
    conversation = unique("consumed-marker")
    for _ in range(markers):
        api.create(conversation_id=conversation, event_name="marker")
    wait_for_conversation(api, conversation, markers, timeout=timeout)


def wait_for_conversation(api: Api, conversation_id: str, count: int, timeout: float = POLL_TIMEOUT) -> list:
    response = poll(lambda: api.conversation(conversation_id, limit=1000),
                    lambda r: r.status == 200 and len(r.json["events"]) == count,
                    "%d events in conversation %s" % (count, conversation_id), timeout)
    return response.json["events"]


def assert_error(response: Response, status: int, error: str, field: Optional[str], head: bool = False) -> None:
    """The exact error status and body; for a HEAD request (`head`), no body but the
    `Content-Length` of the body GET would have had."""
    if head:
        body = json.dumps({"error": error, "field": field}, separators=(",", ":")).encode()
        assert (response.status, response.body, response.header("Content-Length")) == (status, b"", str(len(body))), response
    else:
        assert (response.status, response.json) == (status, {"error": error, "field": field}), response
    assert response.header("Content-Type") == "application/json"
    assert response.header("X-Request-Id")


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


class ApiInstance:
    """An extra event-api process with its own environment, on a free port."""

    def __init__(self, name: str, env: Dict[str, str]):
        if not API_BIN.exists():
            pytest.skip("event-api binary not found at %s (set EVENT_API_BIN)" % API_BIN)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log_path = LOG_DIR / ("api-test-%s-%s.log" % (name, RUN))
        environment = dict(os.environ)
        environment.update(env)
        environment["API_PORT"] = str(self.port)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(API_BIN)], env=environment, stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                self.log.close()
                raise AssertionError("event-api (%s) exited with %s; log:\n%s" % (name, self.process.returncode, self.log_path.read_text()[-3000:]))
            try:
                if Api(self.url, timeout=2).get("/health").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("event-api (%s) did not answer /health within 20 s" % name)
            time.sleep(0.1)

    def api(self, token: Optional[str] = None) -> Api:
        return Api(self.url, token=token)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def api_instance(name: str, env: Dict[str, str]) -> Iterator[ApiInstance]:
    instance = ApiInstance(name, env)
    try:
        yield instance
    finally:
        instance.stop()


# ---------------------------------------------------------------------------- dead letters


def wait_for_dead_letters(reasons: Dict[str, str], timeout: float = POLL_TIMEOUT) -> Dict[str, dict]:
    """Reads the consumer's dead-letter topic (KAFKA_DLQ_TOPIC, default KAFKA_TOPIC.dlq) from the
    beginning until, for every reason in `reasons` (event id -> expected reason), a letter with
    that event id and reason is there. Returns the letters found, by reason."""
    kafka = pytest.importorskip("confluent_kafka")
    brokers = os.environ.get("KAFKA_BROKERS", "localhost:9092")
    topic = os.environ.get("KAFKA_DLQ_TOPIC") or os.environ.get("KAFKA_TOPIC", "events") + ".dlq"
    consumer = kafka.Consumer({"bootstrap.servers": brokers, "group.id": "api-test-dlq-reader-" + RUN,
                               "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 0})
    wanted = set(reasons.values())
    found: Dict[str, dict] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([kafka.TopicPartition(topic, p, kafka.OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while not wanted <= set(found) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            letter = json.loads(message.value())
            if letter.get("event_id") in reasons and letter.get("reason") == reasons[letter["event_id"]]:
                found[letter["reason"]] = letter
    finally:
        consumer.close()
    missing = wanted - set(found)
    assert not missing, "no dead letter in %s within %.0f s for: %s" % (topic, timeout, sorted(missing))
    return found


def request_count(metrics_text: str, route: str, method: str, status: str) -> int:
    """http_requests_total of one label set, from a /metrics page (labels in the order route, method, status)."""
    match = re.search(r'^http_requests_total\{route="%s",method="%s",status="%s"\} (\d+)' % (re.escape(route), method, status),
                      metrics_text, re.M)
    return int(match.group(1)) if match else 0
