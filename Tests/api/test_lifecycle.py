"""An event's life: create, read, partial update, delete; defaults, timestamps, idempotent creates."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone

from api_support import (POLL_TIMEOUT, TIMESTAMP_RE, UUID_RE, assert_error, poll, unique, wait_for_conversation,
                         wait_for_dead_letters, wait_for_event, wait_until_consumed)

EVENT_KEYS = {"event_id", "conversation_id", "event_name", "input", "output", "latency", "error", "timestamp"}


def test_full_life_cycle(api):
    conversation = unique("life")
    name = unique("life-name")
    created = api.post("/event/", {
        "conversation_id": conversation, "event_name": name, "input": "question", "output": "v1",
        "latency": 12.5, "error": False, "timestamp": "2026-01-02T03:04:05.678Z",
    })
    assert created.status == 202, created
    assert created.header("Content-Type") == "application/json"
    assert set(created.json) == {"event_id", "status"} and created.json["status"] == "accepted"
    event_id = created.json["event_id"]
    assert UUID_RE.match(event_id)
    assert uuid.UUID(event_id).version == 7  # server-generated ids are UUIDv7

    event = wait_for_event(api, event_id)
    assert event == {
        "event_id": event_id, "conversation_id": conversation, "event_name": name, "input": "question",
        "output": "v1", "latency": 12.5, "error": False, "timestamp": "2026-01-02T03:04:05.678Z",
    }

    # Partial update: only output and error change.
    updated = api.put("/event/" + event_id, {"output": "v2", "error": True})
    assert updated.status == 202, updated
    assert updated.json == {"event_id": event_id, "status": "accepted"}
    event = wait_for_event(api, event_id, lambda e: e["output"] == "v2", "the update to be visible")
    assert event == {
        "event_id": event_id, "conversation_id": conversation, "event_name": name, "input": "question",
        "output": "v2", "latency": 12.5, "error": True, "timestamp": "2026-01-02T03:04:05.678Z",
    }

    # A second update of other fields keeps the first one's values.
    api.update(event_id, latency=0.25, event_name=name + "-renamed", input="")
    event = wait_for_event(api, event_id, lambda e: e["latency"] == 0.25, "the second update to be visible")
    assert event == {
        "event_id": event_id, "conversation_id": conversation, "event_name": name + "-renamed", "input": "",
        "output": "v2", "latency": 0.25, "error": True, "timestamp": "2026-01-02T03:04:05.678Z",
    }

    deleted = api.delete("/event/" + event_id)
    assert deleted.status == 202, deleted
    assert deleted.json == {"event_id": event_id, "status": "accepted"}
    gone = poll(lambda: api.get("/event/" + event_id), lambda r: r.status == 404, "the deleted event to disappear")
    assert_error(gone, 404, "event not found", "id")
    assert api.conversation(conversation).json == {"events": [], "next_cursor": None}

    # Updating or deleting a deleted event is accepted (it ends in the dead-letter topic) and
    # does not bring it back.
    api.update(event_id, output="zombie")
    api.remove(event_id)
    wait_until_consumed(api)
    assert_error(api.get("/event/" + event_id), 404, "event not found", "id")


def test_defaults_and_time_received(api):
    conversation = unique("defaults")
    before = datetime.now(timezone.utc)
    event_id = api.create(conversation_id=conversation, event_name="only-required")
    after = datetime.now(timezone.utc)
    event = wait_for_event(api, event_id)
    assert set(event) == EVENT_KEYS
    assert (event["input"], event["output"], event["latency"], event["error"]) == ("", "", 0, False)
    assert isinstance(event["latency"], (int, float)) and not isinstance(event["latency"], bool)
    assert TIMESTAMP_RE.match(event["timestamp"]), event
    stamp = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamp <= after


def test_timestamps_are_normalised_to_utc_milliseconds(api):
    conversation = unique("timestamps")
    cases = {
        "2026-11-27T10:00:00.123456+01:00": "2026-11-27T09:00:00.123Z",
        "2026-11-27T10:00:00Z": "2026-11-27T10:00:00.000Z",
        "2026-11-27 10:00:00.5-02:30": "2026-11-27T12:30:00.500Z",
        "2026-11-27t10:00:00.9999z": "2026-11-27T10:00:00.999Z",
        "1970-01-01T00:00:00Z": "1970-01-01T00:00:00.000Z",
        "2105-12-31T23:59:59.999Z": "2105-12-31T23:59:59.999Z",
        "2024-02-29T23:59:59.001Z": "2024-02-29T23:59:59.001Z",
    }
    ids = {api.create(conversation_id=conversation, event_name="ts", timestamp=sent): expected
           for sent, expected in cases.items()}
    for event_id, expected in ids.items():
        assert wait_for_event(api, event_id)["timestamp"] == expected


def test_strings_round_trip(api):
    conversation = unique("strings") + " / é ☃ ?#%"
    text = 'é 😀 "quoted" back\\slash\nnew line\ttab \u0001 \u0000 end'
    long_name = "n" * 256
    event_id = api.create(conversation_id=conversation, event_name=long_name, input=text, output="x" * 100_000,
                          latency=1e-05)
    event = wait_for_event(api, event_id)
    assert event["conversation_id"] == conversation
    assert event["event_name"] == long_name
    assert event["input"] == text
    assert event["output"] == "x" * 100_000
    assert event["latency"] == 1e-05
    events = wait_for_conversation(api, conversation, 1)
    assert events == [event]


def test_client_event_id_makes_creates_idempotent(api):
    conversation = unique("idempotent")
    event_id = str(uuid.uuid4())
    first = api.post("/event/", {"conversation_id": conversation, "event_name": "once", "output": "first",
                                 "event_id": event_id.upper()})
    assert first.status == 202, first
    assert first.json == {"event_id": event_id, "status": "accepted"}  # answered in lower case
    wait_for_event(api, event_id)
    # The retry (different content) is ignored by the pipeline.
    assert api.create(conversation_id=conversation, event_name="twice", output="second", event_id=event_id) == event_id
    wait_until_consumed(api)  # the retry was applied (or ignored) by now
    event = api.get("/event/" + event_id).json
    assert (event["event_name"], event["output"]) == ("once", "first")
    events = wait_for_conversation(api, conversation, 1)
    assert [e["event_id"] for e in events] == [event_id]


def test_update_and_delete_of_unknown_ids_end_in_the_dead_letter_topic(api):
    unknown = str(uuid.uuid4())
    api.update(unknown, output="nobody")
    api.remove(unknown)
    # An update of a deleted event goes there too.
    deleted = api.create(conversation_id=unique("dead-letters"), event_name="dlq")
    wait_for_event(api, deleted)
    api.remove(deleted)
    poll(lambda: api.get("/event/" + deleted), lambda r: r.status == 404, "the deleted event to disappear")
    api.update(deleted, output="too late")
    letters = wait_for_dead_letters({unknown: "update of unknown event " + unknown})
    letters.update(wait_for_dead_letters({unknown: "delete of unknown event " + unknown}))
    letters.update(wait_for_dead_letters({deleted: "update of deleted event " + deleted}))
    for letter in letters.values():
        assert {"reason", "topic", "partition", "offset", "event_id"} <= set(letter), letter
        assert letter["topic"] == os.environ.get("KAFKA_TOPIC", "events")
    assert_error(api.get("/event/" + unknown), 404, "event not found", "id")
    assert_error(api.get("/event/" + deleted), 404, "event not found", "id")


def test_unknown_event_is_not_found(api):
    for event_id in (str(uuid.uuid4()), str(uuid.uuid4()).upper(), "00000000-0000-0000-0000-000000000000"):
        assert_error(api.get("/event/" + event_id), 404, "event not found", "id")


def test_batch_items_become_events(api):
    conversation = unique("batch")
    client_id = str(uuid.uuid4())
    response = api.post("/events/batch", {"events": [
        {"conversation_id": conversation, "event_name": "b", "latency": 1, "timestamp": "2026-05-01T00:00:00.001Z"},
        {"conversation_id": conversation, "event_name": "b", "latency": 2, "timestamp": "2026-05-01T00:00:00.002Z",
         "event_id": client_id, "error": True, "input": "in", "output": "out"},
    ]})
    assert response.status == 207, response
    body = response.json
    assert (body["accepted"], body["rejected"]) == (2, 0)
    assert [r["index"] for r in body["results"]] == [0, 1]
    assert [r["status"] for r in body["results"]] == [202, 202]
    assert all(set(r) == {"index", "status", "event_id"} for r in body["results"])
    assert body["results"][1]["event_id"] == client_id
    events = wait_for_conversation(api, conversation, 2, timeout=POLL_TIMEOUT)
    assert [e["event_id"] for e in events] == [r["event_id"] for r in body["results"]]
    assert events[1] == {"event_id": client_id, "conversation_id": conversation, "event_name": "b", "input": "in",
                         "output": "out", "latency": 2, "error": True, "timestamp": "2026-05-01T00:00:00.002Z"}
