"""503 with Retry-After when a dependency is down: writes when the broker is, reads when ClickHouse is."""

from __future__ import annotations

import time
import uuid

import pytest

from api_support import api_instance, unique, wait_for_event


@pytest.fixture(scope="module")
def broker_down():
    """event-api pointed at a Kafka address where nothing listens."""
    yield from api_instance("broker-down", {"KAFKA_BROKERS": "127.0.0.1:1"})


@pytest.fixture(scope="module")
def clickhouse_down():
    """event-api pointed at a ClickHouse port where nothing listens."""
    yield from api_instance("clickhouse-down", {"CLICKHOUSE_PORT": "1"})


# Exact causes: the producer's own "no broker answers" (librdkafka's "1/1 brokers are down" came as
# "0/2 brokers are down" in one run, which reads as if none were), and the refused connection
# named plainly (it was NIO's "Connection errors: SingleConnectionFailure(target: [IPv4]...)" behind
# a doubled prefix).
KAFKA_DOWN = "no broker answers"
CLICKHOUSE_DOWN = "cannot connect: 127.0.0.1:1: Connection refused (errno 111)"


def assert_unavailable(response, *errors: str):
    assert response.status == 503, response
    assert set(response.json) == {"error", "field"} and response.json["field"] is None, response
    assert response.json["error"] in errors, response
    assert response.header("Retry-After") is not None and response.header("Retry-After").isdigit(), response.headers
    assert int(response.header("Retry-After")) >= 1
    assert response.header("X-Request-Id")


WRITES = [
    ("POST", "/event/", {"conversation_id": "c", "event_name": "e"}),
    ("PUT", "/event/%s" % uuid.uuid4(), {"output": "x"}),
    ("DELETE", "/event/%s" % uuid.uuid4(), None),
    ("POST", "/events/batch", {"events": [{"conversation_id": "c", "event_name": "e"}]}),
]


@pytest.mark.parametrize("method,path,body", WRITES, ids=["%s %s" % (m, p.split("/")[1]) for m, p, _ in WRITES])
def test_writes_answer_503_when_the_broker_is_down(broker_down, method, path, body):
    api = broker_down.api()
    for _ in range(3):
        started = time.monotonic()
        response = api.request(method, path, body=body, timeout=30)
        assert time.monotonic() - started < 12, "took %.1f s" % (time.monotonic() - started)
        assert_unavailable(response, "Kafka unavailable: " + KAFKA_DOWN)


def test_validation_comes_before_the_broker(broker_down):
    response = broker_down.api().post("/event/", {"colour": "x"})
    assert (response.status, response.json) == (400, {"error": "unknown field", "field": "colour"})


def test_reads_work_while_the_broker_is_down(broker_down):
    api = broker_down.api()
    response = api.get("/event/%s" % uuid.uuid4())
    assert (response.status, response.json) == (404, {"error": "event not found", "field": "id"})
    assert api.get("/analytics/latency?limit=1").status == 200


def test_ready_names_kafka(broker_down):
    response = broker_down.api().get("/ready")
    assert response.status == 503, response
    body = response.json
    assert set(body) == {"status", "clickhouse", "kafka", "error", "field"}
    assert (body["status"], body["clickhouse"], body["field"]) == ("unavailable", "ok", None)
    assert body["kafka"] == KAFKA_DOWN
    assert body["error"] == "Kafka: " + KAFKA_DOWN
    assert response.header("Retry-After").isdigit()
    assert broker_down.api().get("/health").json == {"status": "ok"}


READS = [
    "/event/%s" % uuid.uuid4(),
    "/events/conversation/c",
    "/analytics/errors?days=3",
    "/analytics/latency",
    "/analytics/sessions/top-errors",
]


@pytest.mark.parametrize("path", READS)
def test_reads_answer_503_when_clickhouse_is_down(clickhouse_down, path):
    started = time.monotonic()
    response = clickhouse_down.api().get(path, timeout=30)
    assert time.monotonic() - started < 12, "took %.1f s" % (time.monotonic() - started)
    assert_unavailable(response, "ClickHouse unavailable: " + CLICKHOUSE_DOWN)


def test_read_validation_comes_before_clickhouse(clickhouse_down):
    response = clickhouse_down.api().get("/analytics/errors?days=0")
    assert response.status == 400, response
    response = clickhouse_down.api().get("/event/nope")
    assert (response.status, response.json) == (400, {"error": "must be a UUID", "field": "id"})


def test_writes_work_while_clickhouse_is_down(api, clickhouse_down):
    conversation = unique("clickhouse-down")
    response = clickhouse_down.api().post("/event/", {"conversation_id": conversation, "event_name": "ch-down"})
    assert response.status == 202, response
    event_id = response.json["event_id"]
    batch = clickhouse_down.api().post("/events/batch", {"events": [{"conversation_id": conversation, "event_name": "ch-down"}]})
    assert batch.status == 207 and batch.json["accepted"] == 1, batch
    # The event went through Kafka: the healthy pipeline stores it.
    assert wait_for_event(api, event_id)["conversation_id"] == conversation


def test_ready_names_clickhouse(clickhouse_down):
    response = clickhouse_down.api().get("/ready", timeout=30)
    assert response.status == 503, response
    body = response.json
    assert set(body) == {"status", "clickhouse", "kafka", "error", "field"}
    assert (body["status"], body["kafka"], body["field"]) == ("unavailable", "ok", None)
    assert body["clickhouse"] == CLICKHOUSE_DOWN
    assert body["error"] == "ClickHouse: " + CLICKHOUSE_DOWN
    assert response.header("Retry-After").isdigit()
