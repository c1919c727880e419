"""Live tests of event-api over HTTP, against a running event-api + event-consumer + Kafka +
ClickHouse (scripts/test.d/50-api starts them). Point them elsewhere with EVENT_API_URL.

Every test creates its own conversations and event names (unique per run, see api_support.RUN),
so the suite can run repeatedly against the same database.
"""

from __future__ import annotations

import time

import pytest

from api_support import BASE_URL, Api


@pytest.fixture(scope="session")
def api() -> Api:
    client = Api(BASE_URL)
    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline:
        try:
            last = client.get("/ready")
            if last.status == 200 and last.json.get("status") == "ready":  # not "degraded"
                return client
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    pytest.exit("event-api at %s is not ready: %r" % (BASE_URL, last), returncode=1)
