"""Mapping of HTTP answers to exceptions, and client-side validation before any request."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from event_client import (
    ApiError,
    EventClient,
    EventClientError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from stubserver import ACCEPTED_ID, Reply


def test_400_maps_to_validation_error_with_field(stub, client):
    stub.queue(
        Reply(
            400,
            {"error": "latency must be >= 0", "field": "latency"},
            {"X-Request-Id": "req-400"},
        )
    )
    # The server is the one rejecting here: send something the client lets through.
    with pytest.raises(ValidationError) as info:
        client.track_event("c", "e", latency=1)
    exc = info.value
    assert exc.status == 400
    assert exc.field == "latency"
    assert exc.message == "latency must be >= 0"
    assert exc.request_id == "req-400"
    assert exc.body == {"error": "latency must be >= 0", "field": "latency"}
    assert isinstance(exc, ValueError) and isinstance(exc, EventClientError)
    assert "latency must be >= 0" in str(exc) and "field=latency" in str(exc)


def test_400_with_null_field(stub, client):
    stub.queue(Reply(400, {"error": "malformed JSON", "field": None}))
    with pytest.raises(ValidationError) as info:
        client.health()
    assert info.value.field is None
    assert info.value.status == 400


def test_404_maps_to_not_found(stub, client):
    stub.queue(Reply(404, {"error": "event not found", "field": "id"}))
    with pytest.raises(NotFound) as info:
        client.get_event(ACCEPTED_ID)
    assert info.value.status == 404
    assert info.value.field == "id"
    assert info.value.message == "event not found"
    assert info.value.request_id == stub.requests[0].headers["X-Request-Id"]


def test_401_maps_to_unauthorized(stub, client):
    stub.queue(
        Reply(401, {"error": "missing or invalid API key", "field": None}, {"WWW-Authenticate": "Bearer"})
    )
    with pytest.raises(Unauthorized) as info:
        client.get_latency()
    assert info.value.status == 401


@pytest.mark.parametrize("status", [405, 413, 409, 500, 501])
def test_other_statuses_map_to_api_error(stub, client, status):
    stub.queue(Reply(status, {"error": "boom %d" % status, "field": None}, {"X-Request-Id": "r-%d" % status}))
    with pytest.raises(ApiError) as info:
        client.track_event("c", "e")
    exc = info.value
    assert type(exc) is ApiError
    assert exc.status == status
    assert exc.message == "boom %d" % status
    assert exc.request_id == "r-%d" % status


def test_non_json_error_body(stub, client):
    stub.queue(Reply(500, "<html>Internal Server Error</html>"))
    with pytest.raises(ApiError) as info:
        client.health()
    assert info.value.status == 500
    assert "Internal Server Error" in info.value.message


def test_empty_error_body(stub, client):
    stub.queue(Reply(500, None))
    with pytest.raises(ApiError) as info:
        client.health()
    assert info.value.message == "HTTP 500 Internal Server Error"


def test_service_unavailable_after_exhausted_retries_is_an_event_client_error(stub, make_client):
    stub.queue(Reply(503, {"error": "down", "field": None}))
    with pytest.raises(EventClientError) as info:
        make_client(retries=0).health()
    assert isinstance(info.value, ServiceUnavailable)


def test_success_with_non_json_body_is_an_api_error(stub, client):
    stub.queue(Reply(200, "ok"))
    with pytest.raises(ApiError) as info:
        client.health()
    assert (info.value.message, info.value.status, info.value.body) == ("expected a JSON object in the response", 200, "ok")


# ----------------------------------------------------------- client-side validation


def _no_request(stub):
    assert stub.requests == [], "client-side validation must fail before sending"


@pytest.mark.parametrize("bad", ["not-a-uuid", "", 42, None, "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5", " %s" % ACCEPTED_ID])
def test_invalid_event_id(stub, client, bad):
    for call in (client.get_event, client.delete_event, lambda e: client.update_event(e, output="x")):
        with pytest.raises(ValidationError) as info:
            call(bad)
        assert info.value.field == "event_id"
        assert info.value.status is None
    with pytest.raises(ValidationError) as info:
        client.track_event("c", "e", event_id=bad if bad is not None else "x")
    assert info.value.field == "event_id"
    _no_request(stub)


def test_event_id_is_normalized(stub, client):
    stub.queue(Reply(200, {"event_id": ACCEPTED_ID}))
    client.get_event(uuid.UUID(ACCEPTED_ID))
    stub.queue(Reply(200, {"event_id": ACCEPTED_ID}))
    client.get_event(ACCEPTED_ID.upper())
    assert [r.path for r in stub.requests] == ["/event/" + ACCEPTED_ID] * 2


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"conversation_id": ""}, "conversation_id"),
        ({"conversation_id": "x" * 257}, "conversation_id"),
        ({"conversation_id": 7}, "conversation_id"),
        ({"event_name": ""}, "event_name"),
        ({"event_name": "é" * 257}, "event_name"),
        ({"input": None}, "input"),
        ({"output": b"bytes"}, "output"),
        ({"latency": -1}, "latency"),
        ({"latency": float("nan")}, "latency"),
        ({"latency": math.inf}, "latency"),
        ({"latency": "12"}, "latency"),
        ({"latency": True}, "latency"),
        ({"error": 1}, "error"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "2026-11-27 10:00"}, "timestamp"),
        ({"timestamp": 1700000000}, "timestamp"),
        ({"timestamp": datetime(1969, 12, 31, 23, 59)}, "timestamp"),
        ({"timestamp": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))}, "timestamp"),
        ({"timestamp": "2026-02-30T10:00:00Z"}, "timestamp"),
        ({"latency": 10**400}, "latency"),
        ({"conversation_id": "conv\ud800"}, "conversation_id"),
        ({"input": "a\udfffb"}, "input"),
    ],
)
def test_track_event_validation(stub, client, kwargs, field):
    args = {"conversation_id": "c", "event_name": "e"}
    args.update(kwargs)
    with pytest.raises(ValidationError) as info:
        client.track_event(**args)
    assert info.value.field == field
    assert info.value.status is None
    _no_request(stub)


def test_track_event_boundaries_are_accepted(stub, client):
    stub.queue(Reply(202, {"event_id": ACCEPTED_ID, "status": "accepted"}))
    client.track_event("x" * 256, "😀" * 256, latency=0)
    body = stub.requests[0].json
    assert body["conversation_id"] == "x" * 256
    assert body["event_name"] == "😀" * 256
    assert body["latency"] == 0


def test_update_event_validation(stub, client):
    with pytest.raises(ValidationError) as info:
        client.update_event(ACCEPTED_ID)
    assert info.value.field is None and "no fields" in info.value.message
    for name in ("conversation_id", "timestamp", "event_id"):
        with pytest.raises(ValidationError) as info:
            client.update_event(ACCEPTED_ID, **{name: "x"})
        assert info.value.field == name
        assert info.value.message == "field cannot be updated"
    with pytest.raises(ValidationError) as info:
        client.update_event(ACCEPTED_ID, colour="blue")
    assert info.value.field == "colour"
    with pytest.raises(ValidationError) as info:
        client.update_event(ACCEPTED_ID, latency=-0.5)
    assert info.value.field == "latency"
    with pytest.raises(ValidationError) as info:
        client.update_event(ACCEPTED_ID, event_name="")
    assert info.value.field == "event_name"
    with pytest.raises(ValidationError) as info:
        client.update_event(ACCEPTED_ID, error="yes")
    assert info.value.field == "error"
    _no_request(stub)


@pytest.mark.parametrize(
    "call,field",
    [
        (lambda c: c.get_error_counts(days=0), "days"),
        (lambda c: c.get_error_counts(days=366), "days"),
        (lambda c: c.get_error_counts(days=True), "days"),
        (lambda c: c.get_error_counts(days=1.5), "days"),
        (lambda c: c.get_error_counts(event_name=""), "event_name"),
        (lambda c: c.get_latency(limit=0), "limit"),
        (lambda c: c.get_latency(limit=1001), "limit"),
        (lambda c: c.get_top_error_sessions(limit=0), "limit"),
        (lambda c: c.get_top_error_sessions(limit=1001), "limit"),
        (lambda c: c.get_conversation("c", limit=0), "limit"),
        (lambda c: c.get_conversation("c", limit=1001), "limit"),
        (lambda c: c.get_conversation("c", cursor=""), "cursor"),
        (lambda c: c.get_conversation(""), "conversation_id"),
        (lambda c: c.iter_conversation("c", page_size=0), "page_size"),
        (lambda c: c.iter_conversation("", page_size=10), "conversation_id"),
    ],
)
def test_read_validation(stub, client, call, field):
    with pytest.raises(ValidationError) as info:
        call(client)
    assert info.value.field == field
    _no_request(stub)


@pytest.mark.parametrize(
    "url", ["localhost:8080", "ftp://host", "http://", "http://host:99999", "http://host/?q=1", 8080]
)
def test_invalid_base_url(url):
    with pytest.raises(ValidationError) as info:
        EventClient(url)
    assert info.value.field == "base_url"


@pytest.mark.parametrize("url", ["http://host/my api", "http://host/\u00e9", "http://host/a\x01b"])
def test_base_url_path_must_be_encoded(url):
    with pytest.raises(ValidationError) as info:
        EventClient(url)
    assert info.value.field == "base_url"
    assert info.value.message == "base_url's path must be percent-encoded ASCII without spaces, got %r" % urlsplit(url).path


@pytest.mark.parametrize("key", ["\u043a\u043b\u044e\u0447", "abc\nX-Evil: 1", "two words"])
def test_api_key_must_be_visible_ascii(key):
    with pytest.raises(ValidationError) as info:
        EventClient("http://localhost:8080", api_key=key)
    assert info.value.field == "api_key"
    assert info.value.message == "api_key must be visible ASCII characters (no spaces or line breaks)"


def test_lone_surrogate_message(stub, client):
    with pytest.raises(ValidationError) as info:
        client.get_conversation("conv\ud800")
    assert (info.value.field, info.value.message) == (
        "conversation_id",
        "conversation_id has a character with no UTF-8 form at position 4 (a lone surrogate)",
    )
    _no_request(stub)


def test_a_cursor_with_a_lone_surrogate_is_refused_before_sending(stub, client):
    # Found in review: it raised UnicodeEncodeError, which is no EventClientError.
    with pytest.raises(ValidationError) as info:
        client.get_conversation("c", cursor="ab\ud800")
    assert (info.value.field, info.value.message) == (
        "cursor", "cursor has a character with no UTF-8 form at position 2 (a lone surrogate)")
    _no_request(stub)


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, float("nan"), 0, -1])
def test_timeout_must_be_a_finite_number_above_zero(timeout):
    # Found in review: an infinite or huge timeout passed, and every request then raised
    # OverflowError (the socket layer counts in 64-bit nanoseconds).
    with pytest.raises(ValidationError) as info:
        EventClient("http://localhost:8080", timeout=timeout)
    assert (info.value.field, info.value.message) == ("timeout", "timeout must be a number of seconds > 0 and at most 86400")
