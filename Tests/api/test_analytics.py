"""Analytics against expectations computed here from a seeded dataset, before and after a forced
redelivery of the whole topic to the consumer.

The dataset: 60 events over 3 fresh conversations and 2 fresh event names, with known latencies,
error flags and timestamps spread over the last 3 UTC days (plus two 4 days back, one tomorrow and
one years ahead: a client's clock or a typo can date an event in the future), then a few
updates (latency, error flag, event name), deletions and an ignored duplicate create. The
expectations are computed from the final state of the events as this module knows it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import quote, quote_plus

import pytest

from api_support import CONSUMER_BIN, RUN, Api, poll, process_alive, unique

DAY_MS = 86_400_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def utc_date(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%d")


def today_days() -> int:
    return int(time.time() * 1000) // DAY_MS


class Dataset:
    """The seeded events as this module expects them to be stored (final state)."""

    def __init__(self):
        self.conversations = [unique("analytics-%s" % c) for c in "abc"]
        # The event name of the error counts is unique to this run; it travels percent-encoded.
        self.names = [unique("errors") + " é&+=", unique("latency")]
        self.events: Dict[str, dict] = {}   # event_id -> event object as GET returns it
        self.deleted: List[str] = []

    def live(self) -> List[dict]:
        return [e for i, e in self.events.items() if i not in self.deleted]

    def error_counts(self, name: Optional[str], days: int) -> List[dict]:
        first_day = today_days() - (days - 1)
        per_day: Dict[str, List[int]] = {}
        for event in self.live():
            if name is not None and event["event_name"] != name:
                continue
            ms = event["_ms"]
            if not first_day <= ms // DAY_MS <= today_days():  # "the last N days", nothing ahead of today
                continue
            entry = per_day.setdefault(utc_date(ms), [0, 0])
            entry[0] += int(event["error"])
            entry[1] += 1
        return [{"date": d, "errors": e, "total": t} for d, (e, t) in sorted(per_day.items())]

    def p95(self) -> List[dict]:
        """ClickHouse quantileExact(0.95): the element at index floor(0.95 * n) (at most n - 1) of
        the ascending latencies; highest first, then by conversation id and event name."""
        groups: Dict[tuple, List[float]] = {}
        for event in self.live():
            groups.setdefault((event["conversation_id"], event["event_name"]), []).append(event["latency"])
        rows = []
        for (conversation, name), latencies in groups.items():
            latencies.sort()
            n = len(latencies)
            index = min(int(0.95 * n), n - 1)
            rows.append({"conversation_id": conversation, "event_name": name, "p95_latency": latencies[index], "count": n})
        rows.sort(key=lambda r: (-r["p95_latency"], r["conversation_id"], r["event_name"]))
        return rows

    def top_errors(self) -> List[dict]:
        sessions: Dict[str, List[int]] = {}
        for event in self.live():
            entry = sessions.setdefault(event["conversation_id"], [0, 0])
            entry[0] += int(event["error"])
            entry[1] += 1
        rows = [{"conversation_id": c, "errors": e, "total": t, "error_rate": e / t}
                for c, (e, t) in sessions.items() if e > 0]
        rows.sort(key=lambda r: (-r["error_rate"], -r["errors"], r["conversation_id"]))
        return rows

    def stored(self, conversation: str) -> List[dict]:
        """The conversation as GET /events/conversation returns it."""
        events = [e for e in self.live() if e["conversation_id"] == conversation]
        events.sort(key=lambda e: (e["_ms"], e["event_id"]))
        return [{k: v for k, v in e.items() if not k.startswith("_")} for e in events]


def seed(api: Api) -> Dataset:
    data = Dataset()
    rng = random.Random(RUN)
    now_ms = int(time.time() * 1000)
    today = now_ms // DAY_MS
    elapsed_today = now_ms - today * DAY_MS
    if elapsed_today < 120_000:  # keep "today" events in the past without crowding them at midnight
        time.sleep((120_000 - elapsed_today) / 1000)
        now_ms = int(time.time() * 1000)
        elapsed_today = now_ms - today * DAY_MS

    used = set()

    def timestamp(offset: int, position: int, name: int) -> int:
        # Distinct within the run: the order of equal timestamps is not what this module tests.
        start = (today - offset) * DAY_MS
        if offset > 0 and position == 0:
            ms = start + 500 + name           # first second of the UTC day
        elif offset > 0 and position == 1:
            ms = start + DAY_MS - 500 - name  # last second of the UTC day
        else:
            ms = start + rng.randrange(0, DAY_MS if offset else elapsed_today - 60_000)
        if ms in used:
            return timestamp(offset, 2, name)
        used.add(ms)
        return ms

    # (conversation index, name index) -> number of events; error probability per conversation.
    counts = {(0, 0): 11, (0, 1): 9, (1, 0): 12, (1, 1): 8, (2, 0): 10, (2, 1): 10}
    error_rate = [0.6, 0.25, 0.0]
    creates = []
    for (c, n), count in counts.items():
        for position in range(count):
            offset = [0, 1, 2][position % 3]
            if (c, n) == (1, 0) and position in (3, 4):
                offset = 4                # outside days=3, inside days=7
            if (c, n) == (0, 0) and position in (5, 6):
                offset = [-1, -1500][position - 5]  # tomorrow, and about four years ahead
            ms = timestamp(offset, position // 3, n)
            creates.append({
                "conversation_id": data.conversations[c], "event_name": data.names[n],
                "input": "in-%d-%d-%d" % (c, n, position), "output": "",
                "latency": round(rng.uniform(1_000_000, 2_000_000), 3),
                "error": rng.random() < error_rate[c], "timestamp": iso(ms), "_ms": ms,
            })
    rng.shuffle(creates)
    assert len(creates) == 60

    def body(fields: dict) -> dict:
        return {k: v for k, v in fields.items() if not k.startswith("_")}

    # 40 in one batch, 10 one by one, 10 one by one with client-chosen ids.
    result = api.batch([body(f) for f in creates[:40]])
    for fields, item in zip(creates[:40], result["results"]):
        data.events[item["event_id"]] = dict(fields, event_id=item["event_id"])
    for fields in creates[40:50]:
        event_id = api.create(**body(fields))
        data.events[event_id] = dict(fields, event_id=event_id)
    client_ids = []
    for fields in creates[50:]:
        event_id = str(uuid.uuid4())
        assert api.create(event_id=event_id, **body(fields)) == event_id
        data.events[event_id] = dict(fields, event_id=event_id)
        client_ids.append(event_id)

    # Changes after the creates (same partition per event id, so they apply in this order).
    ids = list(data.events)
    rng.shuffle(ids)
    for event_id in ids[:3]:                       # new latency
        latency = round(rng.uniform(2_000_000, 3_000_000), 3)
        api.update(event_id, latency=latency)
        data.events[event_id]["latency"] = latency
    flippable = [i for i in ids[3:] if data.events[i]["conversation_id"] != data.conversations[2]]
    for event_id in flippable[:3]:                 # error flag flipped (the third conversation stays error-free)
        flag = not data.events[event_id]["error"]
        api.update(event_id, error=flag)
        data.events[event_id]["error"] = flag
    moved = next(i for i in ids[3:] if i not in flippable[:3])  # moves to the other event name
    other = data.names[1 - data.names.index(data.events[moved]["event_name"])]
    api.update(moved, event_name=other, output="moved")
    data.events[moved].update(event_name=other, output="moved")
    # The future-dated events stay live, so that the error counts must leave them out.
    future = {i for i, e in data.events.items() if e["_ms"] // DAY_MS > today}
    assert len(future) == 2
    untouched = [i for i in ids[3:] if i not in flippable[:3] and i != moved and i not in future]
    deleted_errors = [i for i in untouched if data.events[i]["error"]][:2]
    deleted_plain = [i for i in untouched if not data.events[i]["error"]][:2]
    for event_id in deleted_errors + deleted_plain:
        api.remove(event_id)
        data.deleted.append(event_id)
    updated_then_deleted = next(i for i in ids[:3] if i not in future)  # updated above, deleted now
    api.remove(updated_then_deleted)
    data.deleted.append(updated_then_deleted)
    # A retried create of a client-chosen id with other content: ignored.
    retried = next(i for i in client_ids if i not in data.deleted)
    assert api.create(conversation_id=data.conversations[2], event_name=data.names[0], latency=9e9, error=True,
                      event_id=retried) == retried
    return data


def wait_until_stored(api: Api, data: Dataset, timeout: float = 30.0) -> None:
    for conversation in data.conversations:
        expected = data.stored(conversation)
        poll(lambda: api.conversation(conversation, limit=1000),
             lambda r: r.status == 200 and r.json == {"events": expected, "next_cursor": None},
             "conversation %s to hold the %d expected events" % (conversation, len(expected)), timeout)


@pytest.fixture(scope="module")
def dataset(api) -> Dataset:
    data = seed(api)
    wait_until_stored(api, data)
    return data


def error_counts(api: Api, name: Optional[str], days: int) -> dict:
    path = "/analytics/errors?days=%d" % days
    if name is not None:
        path += "&event_name=" + quote(name, safe="")
    response = api.get(path)
    assert response.status == 200, response
    return response.json


def check_error_counts(api: Api, data: Dataset) -> None:
    for name in data.names:
        for days in (1, 3, 7):
            assert error_counts(api, name, days) == {"event_name": name, "days": days,
                                                     "counts": data.error_counts(name, days)}
    # Without a name: every event of the last 3 days, ours included.
    everything = error_counts(api, None, 3)
    assert everything["event_name"] is None and everything["days"] == 3
    dates = [c["date"] for c in everything["counts"]]
    assert dates == sorted(set(dates))
    ours = {c["date"]: c for c in data.error_counts(None, 3)}
    for entry in everything["counts"]:
        if entry["date"] in ours:
            assert entry["total"] >= ours[entry["date"]]["total"]
            assert entry["errors"] >= ours[entry["date"]]["errors"]
    assert set(ours) <= set(dates)


def check_latency(api: Api, data: Dataset) -> None:
    response = api.get("/analytics/latency?limit=1000")
    assert response.status == 200, response
    results = response.json["results"]
    keys = [(-r["p95_latency"], r["conversation_id"], r["event_name"]) for r in results]
    assert keys == sorted(keys), "not ordered by p95 desc, conversation, event name"
    ours = [r for r in results if r["conversation_id"] in data.conversations]
    expected = data.p95()
    if len(results) == 1000:  # a full page (long-lived database): ours may be cut after the last row
        last = keys[-1]
        expected = [r for r in expected if (-r["p95_latency"], r["conversation_id"], r["event_name"]) <= last]
    assert ours == expected
    assert len(api.get("/analytics/latency?limit=2").json["results"]) == 2
    assert api.get("/analytics/latency?limit=2").json["results"] == results[:2]


def check_top_errors(api: Api, data: Dataset) -> None:
    response = api.get("/analytics/sessions/top-errors?limit=1000")
    assert response.status == 200, response
    sessions = response.json["sessions"]
    keys = [(-s["error_rate"], -s["errors"], s["conversation_id"]) for s in sessions]
    assert keys == sorted(keys), "not ordered by error rate, then errors"
    for session in sessions:
        assert 0 < session["errors"] <= session["total"]
        assert session["error_rate"] == session["errors"] / session["total"]
    ours = [s for s in sessions if s["conversation_id"] in data.conversations]
    expected = data.top_errors()
    assert len(expected) == 2  # the third conversation has no errors and must not be listed
    if len(sessions) == 1000:  # a full page (long-lived database): ours may be cut after the last row
        expected = [r for r in expected if (-r["error_rate"], -r["errors"], r["conversation_id"]) <= keys[-1]]
    assert ours == expected
    default = api.get("/analytics/sessions/top-errors").json["sessions"]
    assert default == sessions[:10]


def check_deleted_stay_deleted(api: Api, data: Dataset) -> None:
    for event_id in data.deleted:
        response = api.get("/event/" + event_id)
        assert (response.status, response.json) == (404, {"error": "event not found", "field": "id"})
    for event_id, event in data.events.items():
        if event_id not in data.deleted:
            stored = api.get("/event/" + event_id)
            assert stored.status == 200, stored
            assert stored.json == {k: v for k, v in event.items() if not k.startswith("_")}
            break


def test_error_counts_per_day(api, dataset):
    check_error_counts(api, dataset)


def test_p95_latency_per_session_and_event(api, dataset):
    check_latency(api, dataset)


def test_top_error_sessions(api, dataset):
    check_top_errors(api, dataset)


def test_deleted_events_are_excluded(api, dataset):
    check_deleted_stay_deleted(api, dataset)


@pytest.mark.parametrize("days", ["0", "366", "-1", "x", "", "7.0"])
def test_days_out_of_range(api, days):
    response = api.get("/analytics/errors?days=" + days)
    assert (response.status, response.json) == (400, {"error": "days must be an integer from 1 to 365", "field": "days"})


@pytest.mark.parametrize("path", ["/analytics/latency", "/analytics/sessions/top-errors"])
@pytest.mark.parametrize("limit", ["0", "1001", "-5", "ten", ""])
def test_analytics_limit_out_of_range(api, path, limit):
    response = api.get("%s?limit=%s" % (path, limit))
    assert (response.status, response.json) == (400, {"error": "limit must be an integer from 1 to 1000", "field": "limit"})


def test_query_values_decode_as_forms_encode_them(api, dataset):
    """`+` is a space and `%2B` a plus, as curl --data-urlencode, urlencode and URLSearchParams
    send them (the name has both, and an é)."""
    name = dataset.names[0]
    encoded = quote_plus(name)
    assert "+" in encoded and "%2B" in encoded
    response = api.get("/analytics/errors?days=7&event_name=" + encoded)
    assert (response.status, response.json) == (200, {"event_name": name, "days": 7, "counts": dataset.error_counts(name, 7)})


@pytest.mark.parametrize("query,field", [("event_name=%E9t%E9", "event_name"), ("event_name=100%", "event_name"),
                                         ("event_name=a%zzb", "event_name"), ("days=%3", "days")])
def test_malformed_query_escapes_are_refused(api, query, field):
    response = api.get("/analytics/errors?" + query)
    assert (response.status, response.json) == (400, {"error": "invalid percent-encoding (escapes must spell UTF-8)", "field": field})


def test_event_name_filter_bounds(api):
    response = api.get("/analytics/errors?event_name=")
    assert (response.status, response.json) == (400, {"error": "must be 1 to 256 characters", "field": "event_name"})
    response = api.get("/analytics/errors?event_name=" + "n" * 257)
    assert (response.status, response.json) == (400, {"error": "must be 1 to 256 characters", "field": "event_name"})
    unknown = unique("no-such-name")
    assert error_counts(api, unknown, 365) == {"event_name": unknown, "days": 365, "counts": []}
    assert error_counts(api, None, 7)["days"] == 7
    assert api.get("/analytics/errors").json["days"] == 7  # default


# ------------------------------------------------------------------------------ redelivery


def metrics(port: str) -> Dict[str, float]:
    values = {}
    response = Api("http://127.0.0.1:%s" % port, timeout=5).get("/metrics")
    for line in response.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_redelivery_changes_nothing(api, dataset):
    """Stop the consumer, commit offset 0 for every partition of its group, start it again: it
    consumes the whole topic a second time, and every read must stay as it was."""
    pidfile = os.environ.get("API_TEST_CONSUMER_PIDFILE")
    topic, group = os.environ.get("KAFKA_TOPIC"), os.environ.get("KAFKA_GROUP_ID")
    brokers = os.environ.get("KAFKA_BROKERS", "localhost:9092")
    metrics_port = os.environ.get("CONSUMER_METRICS_PORT", "9464")
    if not (pidfile and topic and group and Path(pidfile).exists()):
        pytest.skip("needs the consumer's pid file and configuration (API_TEST_CONSUMER_PIDFILE, KAFKA_TOPIC, KAFKA_GROUP_ID)")
    kafka = pytest.importorskip("confluent_kafka")

    pid = int(Path(pidfile).read_text().strip())
    assert process_alive(pid), "the consumer (pid %d) is not running" % pid
    os.kill(pid, signal.SIGTERM)
    poll(lambda: process_alive(pid), lambda alive: not alive, "the consumer to stop after SIGTERM", timeout=40)

    log = open(os.environ.get("API_TEST_CONSUMER_LOG", "/tmp/api-test-consumer-%s.log" % RUN), "ab")
    try:
        client = kafka.Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False,
                                 "log_level": 0})
        try:
            partitions = sorted(client.list_topics(topic, timeout=10).topics[topic].partitions)
            assert partitions, "topic %s has no partitions" % topic
            high = {p: client.get_watermark_offsets(kafka.TopicPartition(topic, p), timeout=10)[1] for p in partitions}
            committed = client.commit(offsets=[kafka.TopicPartition(topic, p, 0) for p in partitions], asynchronous=False)
            assert all(tp.error is None for tp in committed), committed
            reread = client.committed([kafka.TopicPartition(topic, p) for p in partitions], timeout=10)
            assert [tp.offset for tp in reread] == [0] * len(partitions)
        finally:
            client.close()
    finally:
        process = subprocess.Popen([str(CONSUMER_BIN)], env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        Path(pidfile).write_text("%d\n" % process.pid)
        log.close()

    total = sum(high.values())
    assert total >= 60

    def caught_up():
        if process.poll() is not None:
            pytest.fail("the restarted consumer exited with %s" % process.returncode)
        checker = kafka.Consumer({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False,
                                  "log_level": 0})
        try:
            offsets = checker.committed([kafka.TopicPartition(topic, p) for p in partitions], timeout=10)
        finally:
            checker.close()
        try:
            consumed = metrics(metrics_port).get("consumer_messages_consumed_total", 0)
        except OSError:
            consumed = 0
        return {tp.partition: tp.offset for tp in offsets}, consumed

    # Lag 0: every partition committed up to (at least) the end it had before the restart, and
    # the new process consumed at least as many messages as the topic held.
    def done(state):
        offsets, consumed = state
        return all(offsets[p] >= high[p] for p in partitions) and consumed >= total
    poll(caught_up, done, "the restarted consumer to consume the topic again (%d messages)" % total, timeout=90)

    wait_until_stored(api, dataset, timeout=5)
    check_error_counts(api, dataset)
    check_latency(api, dataset)
    check_top_errors(api, dataset)
    check_deleted_stay_deleted(api, dataset)
    # The pipeline still works after the restart.
    event_id = api.create(conversation_id=unique("after-redelivery"), event_name="after")
    poll(lambda: api.get("/event/" + event_id), lambda r: r.status == 200, "an event created after the redelivery")
