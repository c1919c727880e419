"""GET /events/conversation/{id}: timestamp order, event id as tie-breaker, cursor paging."""

from __future__ import annotations

import base64
import uuid

import pytest

from api_support import assert_error, known_bug, unique, wait_for_conversation


def uuid_pair():
    """Two fresh UUIDs a < b in text (RFC byte) order whose last 8 bytes compare the other way
    round, so an order by anything but the UUID's bytes shows."""
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    highs = sorted([one[:18], two[:18]])
    lows = sorted([one[18:], two[18:]])
    return highs[0] + lows[1], highs[1] + lows[0]


@pytest.fixture(scope="module")
def five_events(api):
    """Five events created out of timestamp order; two share a timestamp (ordered by event id)."""
    conversation = unique("paging")
    tie_low, tie_high = uuid_pair()
    # (creation order) -> timestamp; the expected read order is by timestamp, then event id.
    plan = [
        ("2026-03-01T10:00:04.000Z", None, "fifth"),
        ("2026-03-01T10:00:01.500Z", None, "second"),
        ("2026-03-01T10:00:02.000Z", tie_high, "fourth"),  # same instant as "third", larger id
        ("2026-03-01T09:59:59.999Z", None, "first"),
        ("2026-03-01T11:00:02+01:00", tie_low, "third"),   # = 10:00:02.000Z
    ]
    ids = {}
    for timestamp, event_id, label in plan:
        fields = {"conversation_id": conversation, "event_name": "page", "input": label, "timestamp": timestamp}
        if event_id:
            fields["event_id"] = event_id
        ids[label] = api.create(**fields)
    # Another conversation whose id extends this one must not leak in (it is stored before the
    # five are read).
    api.create(conversation_id=conversation + "x", event_name="page", timestamp="2026-03-01T10:00:03Z")
    wait_for_conversation(api, conversation + "x", 1)
    events = wait_for_conversation(api, conversation, 5)
    expected = [ids[label] for label in ("first", "second", "third", "fourth", "fifth")]
    return conversation, expected, events


def test_events_come_in_timestamp_order(five_events):
    _, expected, events = five_events
    assert [e["timestamp"] for e in events] == [
        "2026-03-01T09:59:59.999Z", "2026-03-01T10:00:01.500Z", "2026-03-01T10:00:02.000Z",
        "2026-03-01T10:00:02.000Z", "2026-03-01T10:00:04.000Z",
    ]
    assert [e["input"] for e in events[:2]] == ["first", "second"]
    assert [e["event_id"] for e in events[:2]] == expected[:2]
    assert sorted(e["input"] for e in events[2:4]) == ["fourth", "third"]
    assert events[4]["event_id"] == expected[4]


def test_same_timestamp_is_ordered_by_event_id(five_events):
    _, expected, events = five_events
    assert [e["event_id"] for e in events] == expected
    assert [e["input"] for e in events] == ["first", "second", "third", "fourth", "fifth"]


def test_paging_with_limit_2(api, five_events):
    conversation, _, everything = five_events
    expected = [e["event_id"] for e in everything]  # the listing's order (tie order: see above)
    pages = []
    cursor = None
    while True:
        query = {"limit": 2}
        if cursor is not None:
            query["cursor"] = cursor
        response = api.conversation(conversation, **query)
        assert response.status == 200, response
        body = response.json
        assert set(body) == {"events", "next_cursor"}
        pages.append(body["events"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 5, "paging does not end"
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [e for page in pages for e in page] == everything
    assert [e["event_id"] for page in pages for e in page] == expected


def test_exact_page_size_has_no_next_cursor(api, five_events):
    conversation, _, everything = five_events
    expected = [e["event_id"] for e in everything]
    body = api.conversation(conversation, limit=5).json
    assert [e["event_id"] for e in body["events"]] == expected
    assert body["next_cursor"] is None
    body = api.conversation(conversation).json  # default limit 100
    assert len(body["events"]) == 5 and body["next_cursor"] is None
    body = api.conversation(conversation, limit=4).json
    assert len(body["events"]) == 4 and body["next_cursor"] is not None
    last = api.conversation(conversation, limit=4, cursor=body["next_cursor"]).json
    assert [e["event_id"] for e in last["events"]] == expected[4:] and last["next_cursor"] is None


def test_cursor_is_bound_to_position_not_to_page_size(api, five_events):
    conversation, _, everything = five_events
    expected = [e["event_id"] for e in everything]
    first = api.conversation(conversation, limit=1).json
    rest = api.conversation(conversation, limit=1000, cursor=first["next_cursor"]).json
    assert [e["event_id"] for e in first["events"] + rest["events"]] == expected
    assert rest["next_cursor"] is None


def test_unknown_conversation_is_empty(api):
    assert api.conversation(unique("nobody")).json == {"events": [], "next_cursor": None}


@pytest.mark.parametrize("cursor", [
    "not-a-cursor",
    "!!!",
    base64.urlsafe_b64encode(b"12345").decode().rstrip("="),              # no ':' and no id
    base64.urlsafe_b64encode(b"abc:" + str(uuid.uuid4()).encode()).decode(),  # time not a number
    base64.urlsafe_b64encode(b"12:not-a-uuid").decode(),
    "A" * 200,                                                           # too long
    "",
])
def test_invalid_cursor(api, cursor):
    assert_error(api.conversation(unique("cursor"), cursor=cursor), 400, "invalid cursor", "cursor")


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", "", "99999999999999999999"])
def test_limit_out_of_range(api, limit):
    assert_error(api.conversation(unique("limit"), limit=limit), 400, "limit must be an integer from 1 to 1000", "limit")


def test_conversation_id_too_long(api):
    assert_error(api.conversation("c" * 257), 400, "must be 1 to 256 characters", "conversation_id")
    assert api.conversation("c" * 256).status == 200
