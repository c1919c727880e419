"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import re
import signal
import socket
import time
import uuid

import pytest

from api_support import request_count, unique, wait_for_event


def test_health(api):
    response = api.get("/health")
    assert (response.status, response.json) == (200, {"status": "ok"})
    assert response.header("Content-Type") == "application/json"


def test_ready(api):
    response = api.get("/ready")
    assert (response.status, response.json) == (200, {"status": "ready", "clickhouse": "ok", "kafka": "ok"})
    assert response.header("Retry-After") is None


def test_metrics_count_requests_by_route_pattern(api):
    # Counters are cumulative for the process: the check is the change these requests make.
    before = api.get("/metrics").body.decode()
    api.get("/event/%s" % uuid.uuid4())
    api.get("/no/such/route")
    response = api.get("/metrics")
    assert response.status == 200
    assert response.header("Content-Type").startswith("text/plain")
    text = response.body.decode()
    assert request_count(text, "/event/:id", "GET", "404") - request_count(before, "/event/:id", "GET", "404") == 1, text[:2000]
    assert request_count(text, "unknown", "GET", "404") - request_count(before, "unknown", "GET", "404") == 1, text[:2000]
    assert not any(re.match(r"/event/[0-9a-f-]{36}", route) for route in re.findall(r'route="([^"]*)"', text))


def _send_duration(text: str, kind: str) -> tuple:
    """The count and sum of kafka_send_duration_seconds for one kind, from a /metrics page."""
    count = re.search(r'^kafka_send_duration_seconds_count\{kind="%s"\} (\S+)$' % kind, text, re.M)
    total = re.search(r'^kafka_send_duration_seconds_sum\{kind="%s"\} (\S+)$' % kind, text, re.M)
    assert count and total, text[:3000]
    return float(count.group(1)), float(total.group(1))


def test_duration_buckets_reach_the_longest_waits(api):
    # Found in review: the buckets ended at 5 s, so Kafka sends timing out at 10 s and ClickHouse
    # reads at 30 s all fell into +Inf, indistinguishable.
    api.get("/event/%s" % uuid.uuid4())
    text = api.get("/metrics").body.decode()
    for name in ("kafka_send_duration_seconds", "clickhouse_query_duration_seconds", "http_request_duration_seconds"):
        bounds = [float(b) for b in re.findall(r'^%s_bucket\{[^}]*le="([0-9.e+]+)"\}' % name, text, re.M)]
        assert bounds and max(bounds) == 30.0 and 10.0 in bounds, (name, sorted(set(bounds)))


def test_metrics_time_the_wait_for_the_brokers_acknowledgement(api):
    text = api.get("/metrics").body.decode()
    before_event, before_batch = _send_duration(text, "event"), _send_duration(text, "batch")
    event_id = api.create(conversation_id=unique("metrics"), event_name="metrics")
    api.update(event_id, output="acknowledged")
    api.remove(event_id)
    batch = api.post("/events/batch", {"events": [{"conversation_id": unique("metrics"), "event_name": "metrics"}] * 3})
    assert batch.status == 207, batch
    text = api.get("/metrics").body.decode()
    after_event, after_batch = _send_duration(text, "event"), _send_duration(text, "batch")
    # One observation per single-event write (create, update, delete), one per batch request.
    assert after_event[0] - before_event[0] >= 3
    assert after_batch[0] - before_batch[0] >= 1
    # Each waited for a broker round trip, so the time is positive and plausible (under a minute).
    assert 0 < after_event[1] - before_event[1] < 60
    assert 0 < after_batch[1] - before_batch[1] < 60


def test_openapi_document(api):
    response = api.get("/openapi.yaml")
    assert response.status == 200
    assert response.header("Content-Type") == "application/yaml"
    text = response.body.decode()
    assert text.startswith("openapi: 3.1")
    for path in ("/event/:", "/event/{id}:", "/events/batch:", "/events/conversation/{conversation_id}:",
                 "/analytics/errors:", "/analytics/latency:", "/analytics/sessions/top-errors:", "/health:", "/ready:",
                 "/metrics:", "/openapi.yaml:"):
        assert "\n  %s\n" % path in text, path


def test_json_logs():
    # LOG_FORMAT=json: every line event-api writes is one JSON object, the access log included.
    import json
    import subprocess

    from api_support import API_BIN, api_instance

    for instance in api_instance("json-logs", {"LOG_FORMAT": "json", "LOG_LEVEL": "debug"}):
        api = instance.api()
        request_id = "json-log-" + uuid.uuid4().hex
        assert api.post("/event/", {"conversation_id": unique("json-logs"), "event_name": "e"},
                        headers={"X-Request-Id": request_id}).status == 202
        assert api.get("/event/not-a-uuid").status == 400
    lines = instance.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert records and all(set(r) - {"metadata"} == {"time", "level", "logger", "source", "message"} for r in records), records[:3]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in records)
    access = [r for r in records if r["message"] == "request" and r.get("metadata", {}).get("request_id") == request_id]
    assert access and access[0]["level"] == "debug" and access[0]["metadata"]["route"] == "/event/" and access[0]["metadata"]["method"] == "POST" \
        and access[0]["metadata"]["status"] == "202", access
    # An unknown format stops the process at once, naming the variable.
    result = subprocess.run([str(API_BIN)], env={"LOG_FORMAT": "yaml", "PATH": "/usr/bin:/bin"}, capture_output=True, timeout=30)
    assert (result.returncode, result.stderr.decode()) == (2, "event-api: invalid configuration: LOG_FORMAT: must be text or json, got 'yaml'\n")


def test_json_logs_of_the_consumer_stay_json_while_the_broker_is_unreachable():
    # Found in review: the short-lived metadata client (the dead-letter topic check) let librdkafka
    # print its own lines, `%3|...|FAIL|...`, on stderr: 195 of them in 5 s, none of them JSON.
    import json
    import os
    import subprocess

    from api_support import CONSUMER_BIN, free_port

    env = dict(os.environ, LOG_FORMAT="json", KAFKA_BROKERS="127.0.0.1:1", CONSUMER_METRICS_PORT=str(free_port()))
    process = subprocess.Popen([str(CONSUMER_BIN)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(5)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    lines = stderr.decode().splitlines()
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, not_json[:3]
    records = [json.loads(line) for line in lines]
    assert any(r["message"] == "cannot check the dead-letter topic yet" for r in records), [r["message"] for r in records]


def test_the_consumer_measures_how_fresh_the_data_is(api):
    # consumer_event_delay_seconds: from the API's 202 to the row written, per applied write.
    import os
    import urllib.request

    from api_support import wait_for_conversation

    port = os.environ.get("CONSUMER_METRICS_PORT")
    if not port:
        import pytest
        pytest.skip("needs the consumer's CONSUMER_METRICS_PORT")

    def histogram():
        text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read().decode()
        values = {}
        for line in text.splitlines():
            if line.startswith("consumer_event_delay_seconds"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    from api_support import poll

    before = histogram()
    conversation = unique("freshness")
    for _ in range(20):
        api.post("/event/", {"conversation_id": conversation, "event_name": "fresh"})
    wait_for_conversation(api, conversation, 20)
    # Recorded just after the INSERT that made the rows readable: a scrape may come in between.
    after = poll(histogram, lambda h: h["consumer_event_delay_seconds_count"] - before.get("consumer_event_delay_seconds_count", 0) >= 20,
                 "the 20 writes in consumer_event_delay_seconds", timeout=10)
    count = after["consumer_event_delay_seconds_count"] - before.get("consumer_event_delay_seconds_count", 0)
    total = after["consumer_event_delay_seconds_sum"] - before.get("consumer_event_delay_seconds_sum", 0)
    assert 0 <= total / count < 5, (count, total)  # stored well within seconds on the local services
    assert after['consumer_event_delay_seconds_bucket{le="+Inf"}'] == after["consumer_event_delay_seconds_count"]


# --------------------------------------------------------------------- HEAD (RFC 9110, 9.3.2)


@pytest.mark.parametrize("path", [
    "/health", "/openapi.yaml", "/event/%s" % uuid.uuid4(), "/event/not-a-uuid", "/analytics/latency?limit=0",
    "/analytics/errors?days=0", "/events/conversation/c?cursor=not-a-cursor",
])
def test_head_answers_what_get_answers_without_the_body(api, path):
    head = api.request("HEAD", path)
    get = api.get(path)
    assert (head.status, head.body) == (get.status, b""), head
    for name in ("Content-Type", "Content-Length"):
        assert head.header(name) == get.header(name), name
    assert head.header("X-Request-Id")


def test_head_of_a_stored_event_has_the_length_of_its_get(api):
    event_id = api.create(conversation_id=unique("head"), event_name="head", output="o" * 1000)
    wait_for_event(api, event_id)
    head = api.request("HEAD", "/event/" + event_id)
    get = api.get("/event/" + event_id)
    assert (head.status, head.body, head.header("Content-Type")) == (200, b"", "application/json")
    assert head.header("Content-Length") == get.header("Content-Length") == str(len(get.body))


@pytest.mark.parametrize("path", ["/ready", "/metrics", "/analytics/errors", "/analytics/sessions/top-errors"])
def test_head_of_a_changing_answer_has_its_status_and_type(api, path):
    head = api.request("HEAD", path)
    get = api.get(path)
    assert (head.status, head.body, head.header("Content-Type")) == (200, b"", get.header("Content-Type"))
    assert int(head.header("Content-Length")) > 0


@pytest.mark.parametrize("path,status,length", [
    ("/health", 200, 15),
    ("/event/%s" % uuid.uuid4(), 404, len('{"error":"event not found","field":"id"}')),
    ("/event/", 405, len('{"error":"method HEAD not allowed","field":null}')),
])
def test_a_head_answer_is_followed_by_the_next_answer_not_a_body(api, path, status, length):
    # On a kept-alive connection, body bytes after a HEAD answer would be read as the start of
    # the next answer: the second answer must begin right after the first one's header block.
    # (http.client never reads a HEAD answer's body, so only a raw socket shows this.)
    with socket.create_connection((api.host, api.port), timeout=10) as sock:
        sock.sendall(b"HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        received = b""
        while not (received.count(b"\r\n\r\n") >= 2 and received.endswith(b"}")):
            chunk = sock.recv(65536)
            assert chunk, "closed after %r" % received
            received += chunk
    first, second, body = received.split(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 %d " % status) and b"content-length: %d" % length in first.lower(), first
    assert second.startswith(b"HTTP/1.1 200 "), second
    assert body == b'{"status":"ok"}'
