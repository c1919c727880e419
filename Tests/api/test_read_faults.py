"""A read ClickHouse refuses for good is a fault (500, not retried), not "try again" (503); a batch
write it refuses for good is still retried by the consumer, but logged as an error that names it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import pytest

from api_support import CONSUMER_BIN, LOG_DIR, RUN, api_instance, free_port

CLICKHOUSE_PORT = os.environ.get("CLICKHOUSE_PORT", "9000")


def clickhouse(query: str) -> None:
    subprocess.run(["clickhouse-client", "--host", "127.0.0.1", "--port", CLICKHOUSE_PORT, "--query", query], check=True)


@pytest.fixture(scope="module")
def broken_schema():
    """event-api over a database whose events table lacks the columns its reads name (a schema
    changed by hand): the migration leaves an existing table alone, so every read is refused."""
    yield from with_broken_schema(lambda database: api_instance("broken-schema", {"CLICKHOUSE_DATABASE": database}))


def with_broken_schema(body):
    database = "api_broken_%s_%s" % (RUN.replace("-", "_"), uuid.uuid4().hex[:6])
    clickhouse("CREATE DATABASE IF NOT EXISTS %s" % database)
    clickhouse("CREATE TABLE %s.events (event_id UUID, version UInt64) ENGINE = MergeTree ORDER BY event_id" % database)
    try:
        yield from body(database)
    finally:
        clickhouse("DROP DATABASE IF EXISTS %s" % database)


def test_a_read_the_server_refuses_is_a_500(broken_schema):
    response = broken_schema.api().get("/event/%s" % uuid.uuid4())
    assert (response.status, response.json) == (
        500, {"error": "ClickHouse read failed: Code: 47. DB::Exception: Unknown identifier: is_deleted", "field": None}), response
    assert response.header("Retry-After") is None  # nothing to wait for
    for path in ["/events/conversation/c", "/analytics/errors?days=3", "/analytics/latency", "/analytics/sessions/top-errors"]:
        response = broken_schema.api().get(path)
        assert response.status == 500 and response.header("Retry-After") is None, (path, response)
        assert response.json["error"].startswith("ClickHouse read failed: Code: "), (path, response)


def test_a_batch_write_clickhouse_refuses_for_good_is_logged_as_an_error(api):
    # Something to consume: the consumer of this group starts at the topic's beginning.
    api.create(conversation_id="broken-schema", event_name="e")

    def consumer(database):
        log_path = LOG_DIR / ("consumer-broken-schema-%s.log" % RUN)
        environment = dict(os.environ, CLICKHOUSE_DATABASE=database, KAFKA_GROUP_ID="broken-schema-%s" % uuid.uuid4().hex[:8],
                           CONSUMER_METRICS_PORT=str(free_port()))
        with open(log_path, "wb") as log:
            process = subprocess.Popen([str(CONSUMER_BIN)], env=environment, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        try:
            yield log_path
        finally:
            process.send_signal(signal.SIGKILL)  # its batch cannot be written: nothing to wait for
            process.wait()

    for log_path in with_broken_schema(consumer):
        deadline = time.monotonic() + 40
        wanted = "batch write refused by ClickHouse, and it will be until the table or the server is fixed; retrying"
        while wanted not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log_path.read_text()
        assert wanted in text, text[-3000:]
        line = next(line for line in text.splitlines() if wanted in line)
        assert " error event-consumer: " in line and "DB::Exception" in line, line
