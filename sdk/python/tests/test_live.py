"""End-to-end tests against a running event-api (HTTP API -> Kafka -> consumer -> ClickHouse).

Run with the API's URL in EVENT_API_URL (and its key in EVENT_API_KEY when the server has
API_KEYS set)::

    EVENT_API_URL=http://localhost:8080 pytest tests/test_live.py -v

Writes become visible to reads only after the consumer stored them, so every read-after-write
polls (up to POLL_TIMEOUT seconds). Every test uses fresh, unique conversation ids and event
names, so the tests can run repeatedly against the same database.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

import pytest

from event_client import EventClient, NotFound, Unauthorized, ValidationError, format_timestamp

EVENT_API_URL = os.environ.get("EVENT_API_URL", "").strip()
EVENT_API_KEY = os.environ.get("EVENT_API_KEY", "").strip() or None

if not EVENT_API_URL:
    pytest.skip(
        "live tests need a running event-api: set EVENT_API_URL (e.g. http://localhost:8080) "
        "and, if the server has API_KEYS, EVENT_API_KEY",
        allow_module_level=True,
    )

pytestmark = pytest.mark.live

POLL_TIMEOUT = 20.0
POLL_INTERVAL = 0.25
RUN = uuid.uuid4().hex[:12]
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture(scope="module")
def live() -> EventClient:
    return EventClient(EVENT_API_URL, api_key=EVENT_API_KEY, timeout=10.0, retries=5, backoff_max=2.0)


def unique(kind: str) -> str:
    return "sdk-live-%s-%s-%s" % (RUN, kind, uuid.uuid4().hex[:8])


def now_ms() -> datetime:
    """Current UTC time truncated to milliseconds (what the server stores)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float = POLL_TIMEOUT) -> Any:
    """Call ``fetch`` until ``done(result)``; NotFound counts as "not yet". Fails after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fetch()
        except NotFound as exc:
            last = exc
        else:
            if done(last):
                return last
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.0fs waiting for %s; last result: %r" % (timeout, what, last))
        time.sleep(POLL_INTERVAL)


def poll_not_found(fetch: Callable[[], Any], what: str, timeout: float = POLL_TIMEOUT) -> NotFound:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fetch()
        except NotFound as exc:
            return exc
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.0fs waiting for %s; last result: %r" % (timeout, what, last))
        time.sleep(POLL_INTERVAL)


def assert_event_shape(event: dict) -> None:
    assert set(event) >= {
        "event_id", "conversation_id", "event_name", "input", "output", "latency", "error", "timestamp"
    }, event
    assert isinstance(event["latency"], (int, float)) and not isinstance(event["latency"], bool)
    assert isinstance(event["error"], bool)
    assert TIMESTAMP_RE.match(event["timestamp"]), event["timestamp"]


# ---------------------------------------------------------------------------- operations


def test_health(live):
    assert live.health() == {"status": "ok"}


def test_health_needs_no_key():
    assert EventClient(EVENT_API_URL, retries=2).health() == {"status": "ok"}


def test_metrics_and_openapi(live):
    live.health()
    metrics = live.metrics()
    assert "# TYPE http_requests_total counter" in metrics and 'route="/health"' in metrics, metrics[:500]
    document = live.openapi()
    assert document.startswith("openapi: 3.1.0\n") and "/events/batch:" in document, document[:200]


def test_ready(live):
    report = live.ready()
    assert report["status"] == "ready", report
    assert report.get("clickhouse") == "ok" and report.get("kafka") == "ok", report


@pytest.mark.skipif(EVENT_API_KEY is None, reason="EVENT_API_KEY not set: the server may not require keys")
def test_missing_or_wrong_key_is_unauthorized():
    for key in (None, "definitely-not-a-valid-key-" + RUN):
        with pytest.raises(Unauthorized) as info:
            EventClient(EVENT_API_URL, api_key=key, retries=0).get_latency(limit=1)
        assert info.value.status == 401
        assert info.value.request_id


# ---------------------------------------------------------------------------- events


def test_event_lifecycle(live):
    conversation = unique("life")
    name = "sdk_live_lifecycle"
    when = now_ms()
    event_id = live.track_event(
        conversation, name, input="question é", output="v1", latency=12.5, error=False, timestamp=when
    )
    assert uuid.UUID(event_id).version == 7

    event = poll(lambda: live.get_event(event_id), lambda e: True, "the created event to be readable")
    assert_event_shape(event)
    assert event["event_id"] == event_id
    assert event["conversation_id"] == conversation
    assert event["event_name"] == name
    assert event["input"] == "question é"
    assert event["output"] == "v1"
    assert event["latency"] == pytest.approx(12.5)
    assert event["error"] is False
    assert event["timestamp"] == format_timestamp(when)

    # A retried create with the same id must not produce a second event.
    assert live.track_event(conversation, name, output="duplicate", event_id=event_id) == event_id

    assert live.update_event(event_id, output="v2", latency=20.25, error=True) == event_id
    updated = poll(
        lambda: live.get_event(event_id),
        lambda e: e["output"] == "v2",
        "the update to be visible",
    )
    assert updated["latency"] == pytest.approx(20.25)
    assert updated["error"] is True
    assert updated["input"] == "question é"  # untouched fields keep their values
    assert updated["conversation_id"] == conversation
    assert updated["timestamp"] == format_timestamp(when)

    page = live.get_conversation(conversation)
    assert [e["event_id"] for e in page["events"]] == [event_id], "the duplicate create was stored"

    assert live.delete_event(event_id) == event_id
    gone = poll_not_found(lambda: live.get_event(event_id), "the deleted event to disappear")
    assert gone.status == 404
    assert live.get_conversation(conversation)["events"] == []


def test_get_unknown_event_is_not_found(live):
    with pytest.raises(NotFound) as info:
        live.get_event(uuid.uuid4())
    assert info.value.field == "id"


def test_batch_with_one_invalid_item(live):
    conversation = unique("batch")
    result = live.track_events([
        {"conversation_id": conversation, "event_name": "sdk_live_batch", "latency": 1.5},
        {"conversation_id": conversation, "event_name": "sdk_live_batch", "latency": -1},
        {"conversation_id": conversation, "event_name": "sdk_live_batch", "error": True},
    ])
    assert (result.accepted, result.rejected) == (2, 1)
    assert [r.index for r in result.results] == [0, 1, 2]
    assert [r.status for r in result.results] == [202, 400, 202]
    assert result.results[1].field == "latency"
    assert result.results[1].error
    for item in (result.results[0], result.results[2]):
        assert item.event_id
        event = poll(lambda: live.get_event(item.event_id), lambda e: True, "batch item %d" % item.index)
        assert event["conversation_id"] == conversation
    events = poll(
        lambda: live.get_conversation(conversation)["events"],
        lambda evs: len(evs) >= 2,
        "both accepted batch items in the conversation",
    )
    assert len(events) == 2


def test_large_batch_goes_compressed_and_is_stored_exactly(live):
    conversation = unique("gzip-batch")
    items = [{"conversation_id": conversation, "event_name": "sdk_live_gzip", "input": "é" * 500 + str(n)}
             for n in range(40)]
    assert live.compress_batches  # 40 items of 1 KB: sent gzip-compressed
    result = live.track_events(items)
    assert (result.accepted, result.rejected) == (40, 0)
    events = poll(lambda: live.get_conversation(conversation, limit=1000)["events"], lambda evs: len(evs) == 40,
                  "the 40 compressed batch items")
    assert sorted(e["input"] for e in events) == sorted(item["input"] for item in items)


def test_background_sender_delivers_everything_it_tracked(live):
    from event_client import BackgroundSender

    conversation = unique("background")
    failures = []
    with BackgroundSender(live, batch_size=50, flush_interval=0.1, on_failure=failures.append,
                          close_timeout_at_exit=None) as sender:
        ids = [sender.track_event(conversation, "sdk_live_background", input=str(n)) for n in range(300)]
        assert sender.flush(30)
        assert (sender.sent, failures) == (300, [])
    events = poll(lambda: live.get_conversation(conversation, limit=1000)["events"], lambda evs: len(evs) == 300,
                  "the 300 events of the background sender")
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    assert sorted(int(e["input"]) for e in events) == list(range(300))


def test_batch_unknown_field_is_rejected_per_item(live):
    conversation = unique("unknown")
    result = live.track_events([
        {"conversation_id": conversation, "event_name": "sdk_live_batch", "colour": "blue"},
        {"conversation_id": conversation, "event_name": "sdk_live_batch"},
    ])
    assert [r.status for r in result.results] == [400, 202]
    assert result.results[0].field == "colour"


def test_timestamp_strings_the_sdk_refuses_are_those_the_server_refuses():
    # The SDK checks a string's range before queueing it; this holds its rule to the server's at
    # the edges (offsets, digits past milliseconds, a leap second), sent around the SDK's checks.
    edges = ["1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1970-01-01T01:00:00+01:00",
             "1970-01-01T00:59:59.999+01:00", "2105-12-31T23:59:59.999999Z", "2105-12-31T23:59:60Z",
             "2105-12-31T18:59:59-05:00", "2105-12-31T19:00:00-05:00", "2106-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]
    conversation = unique("edges")
    items = [{"conversation_id": conversation, "event_name": "sdk_live_edges", "timestamp": t} for t in edges]
    headers = {"Content-Type": "application/json"}
    if EVENT_API_KEY:
        headers["Authorization"] = "Bearer " + EVENT_API_KEY
    request = urllib.request.Request(EVENT_API_URL.rstrip("/") + "/events/batch", method="POST",
                                     data=json.dumps({"events": items}).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        results = sorted(json.loads(response.read())["results"], key=lambda r: r["index"])
    server = {t: r["status"] == 202 for t, r in zip(edges, results)}

    def sdk_accepts(text):
        try:
            format_timestamp(text)
            return True
        except ValueError:
            return False

    assert {t: sdk_accepts(t) for t in edges} == server
    assert sorted(server.values()) == [False] * 5 + [True] * 5  # both sides of each edge


def test_conversation_paging(live):
    conversation = unique("page") + " / é"  # exercises path encoding end to end
    base = now_ms() - timedelta(minutes=5)
    order = list(range(5))
    random.shuffle(order)
    ids_by_offset = {}
    for offset in order:  # created out of order; reads must come back in timestamp order
        ids_by_offset[offset] = live.track_event(
            conversation, "sdk_live_page", input=str(offset), timestamp=base + timedelta(seconds=offset)
        )
    expected_ids = [ids_by_offset[i] for i in range(5)]

    poll(
        lambda: live.get_conversation(conversation, limit=1000)["events"],
        lambda evs: len(evs) == 5,
        "the 5 conversation events",
    )

    # Page by hand: 2 + 2 + 1, the last page without a cursor.
    sizes = []
    seen = []
    cursor: Optional[str] = None
    while True:
        page = live.get_conversation(conversation, limit=2, cursor=cursor)
        assert set(page) >= {"events", "next_cursor"}
        sizes.append(len(page["events"]))
        seen.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(sizes) < 10, "paging does not terminate"
    assert sizes == [2, 2, 1]
    assert [e["event_id"] for e in seen] == expected_ids

    events = list(live.iter_conversation(conversation, page_size=2))
    assert [e["event_id"] for e in events] == expected_ids
    assert [e["input"] for e in events] == ["0", "1", "2", "3", "4"]
    assert [e["timestamp"] for e in events] == [
        format_timestamp(base + timedelta(seconds=i)) for i in range(5)
    ]
    for event in events:
        assert_event_shape(event)
        assert event["conversation_id"] == conversation


def test_malformed_cursor_is_rejected(live):
    with pytest.raises(ValidationError) as info:
        live.get_conversation(unique("cursor"), cursor="not-a-cursor-%s" % RUN)
    assert info.value.status == 400


# ---------------------------------------------------------------------------- analytics


def test_analytics(live):
    conversation = unique("analytics")
    name = "sdk_live_errors_" + RUN
    latency = 3_600_000.0  # one hour: ranks this session near the top of the p95 list
    when = now_ms()
    flags = [True, False, True, False, True]
    for flag in flags:
        live.track_event(conversation, name, latency=latency, error=flag, timestamp=when)
    errors = sum(flags)

    counts = poll(
        lambda: live.get_error_counts(event_name=name, days=1),
        lambda r: sum(c["total"] for c in r["counts"]) == len(flags),
        "the error counts of %s" % name,
    )
    assert counts["event_name"] == name
    assert counts["days"] == 1
    assert sum(c["errors"] for c in counts["counts"]) == errors
    for entry in counts["counts"]:
        assert DATE_RE.match(entry["date"])
        assert isinstance(entry["errors"], int) and isinstance(entry["total"], int)
        assert 0 <= entry["errors"] <= entry["total"]

    everything = live.get_error_counts(days=7)
    assert everything["event_name"] is None
    assert everything["days"] == 7
    dates = [c["date"] for c in everything["counts"]]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    assert sum(c["errors"] for c in everything["counts"]) >= errors

    # p95 latency per (session, event type), highest first.
    latencies = live.get_latency(limit=1000)["results"]
    assert isinstance(latencies, list) and len(latencies) <= 1000
    for row in latencies:
        assert set(row) >= {"conversation_id", "event_name", "p95_latency", "count"}
        assert isinstance(row["count"], int) and row["count"] >= 1
        assert not math.isnan(row["p95_latency"])
    p95s = [row["p95_latency"] for row in latencies]
    assert p95s == sorted(p95s, reverse=True)
    ours = [r for r in latencies if r["conversation_id"] == conversation and r["event_name"] == name]
    if ours:
        assert ours[0]["p95_latency"] == pytest.approx(latency, rel=1e-6)
        assert ours[0]["count"] == len(flags)
    else:  # only acceptable when a full page of higher p95 values pushed it out
        assert len(latencies) == 1000 and latencies[-1]["p95_latency"] >= latency
    assert len(live.get_latency(limit=1)["results"]) <= 1

    # Sessions by error rate, then error count.
    sessions = live.get_top_error_sessions(limit=1000)["sessions"]
    assert isinstance(sessions, list) and len(sessions) <= 1000
    for row in sessions:
        assert set(row) >= {"conversation_id", "errors", "total", "error_rate"}
        assert 0 <= row["errors"] <= row["total"]
        assert row["error_rate"] == pytest.approx(row["errors"] / row["total"], abs=1e-9)
    keys = [(row["error_rate"], row["errors"]) for row in sessions]
    assert keys == sorted(keys, reverse=True)
    mine = [s for s in sessions if s["conversation_id"] == conversation]
    rate = errors / len(flags)
    if mine:
        assert mine[0]["errors"] == errors
        assert mine[0]["total"] == len(flags)
        assert mine[0]["error_rate"] == pytest.approx(rate)
    else:
        assert len(sessions) == 1000
        assert (sessions[-1]["error_rate"], sessions[-1]["errors"]) >= (rate, errors)
    assert len(live.get_top_error_sessions()["sessions"]) <= 10
