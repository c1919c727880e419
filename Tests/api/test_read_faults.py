"""A read the server refuses is a fault (500, not retried), not "try again" (503)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from api_support import RUN, api_instance

CLICKHOUSE_PORT = os.environ.get("CLICKHOUSE_PORT", "9000")


def clickhouse(query: str) -> None:
    subprocess.run(["clickhouse-client", "--host", "127.0.0.1", "--port", CLICKHOUSE_PORT, "--query", query], check=True)


@pytest.fixture(scope="module")
def broken_schema():
    """event-api over a database whose events table lacks the columns its reads name (a schema
    changed by hand): the migration leaves an existing table alone, so every read is refused."""
    database = "api_broken_%s" % RUN.replace("-", "_")
    clickhouse("CREATE DATABASE IF NOT EXISTS %s" % database)
    clickhouse("CREATE TABLE %s.events (event_id UUID, version UInt64) ENGINE = MergeTree ORDER BY event_id" % database)
    try:
        yield from api_instance("broken-schema", {"CLICKHOUSE_DATABASE": database})
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
