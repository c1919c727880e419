"""Every kind of bad request: the exact status and `{"error": ..., "field": ...}` body."""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from api_support import api_instance, assert_error, known_bug, post_raw, unique, wait_for_conversation

CONVERSATION = unique("bad-input")
VALID = {"conversation_id": CONVERSATION, "event_name": "bad-input"}


def with_(**changes):
    body = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


# ------------------------------------------------------------------------ malformed bodies

MALFORMED = [
    (b"", "request body is empty"),
    (b"{", "malformed JSON: expected a string key at byte 1"),
    (b'{"conversation_id":"c"', "malformed JSON: unexpected end of JSON at byte 22"),
    (b'{"conversation_id":"c",}', "malformed JSON: expected a string key at byte 23"),
    (b"{'conversation_id':'c'}", "malformed JSON: expected a string key at byte 1"),
    (b'{"conversation_id" "c"}', "malformed JSON: expected ':' at byte 19"),
    (b'{"conversation_id":"c" "event_name":"e"}', "malformed JSON: expected ',' or '}' at byte 23"),
    (b'{"conversation_id":"c","event_name":"e"} x', "malformed JSON: unexpected data after the JSON value at byte 41"),
    (b'{"conversation_id":"c","event_name":"e"}{}', "malformed JSON: unexpected data after the JSON value at byte 40"),
    (b'{"a":1,"a":2}', 'malformed JSON: duplicate key "a" at byte 7'),
    (b'{"conversation_id":"c","event_name":"e","latency":01}', "malformed JSON: leading zero in a number at byte 50"),
    (b'{"conversation_id":"c","event_name":"e","latency":1.}', "malformed JSON: digits expected after '.' at byte 52"),
    (b'{"conversation_id":"c","event_name":"e","latency":1e400}', "malformed JSON: number out of range at byte 50"),
    (b'{"conversation_id":"c","event_name":"e","latency":NaN}', "malformed JSON: invalid value at byte 50"),
    (b'{"conversation_id":"c","event_name":"e","error":tru}', "malformed JSON: invalid literal at byte 48"),
    (b'{"conversation_id":"c\x01","event_name":"e"}', "malformed JSON: control character in a string at byte 21"),
    (b'{"conversation_id":"c\\x","event_name":"e"}', "malformed JSON: invalid escape in a string at byte 21"),
    (b'{"conversation_id":"\\ud800","event_name":"e"}', "malformed JSON: unpaired surrogate in a string at byte 26"),
    (b'{"conversation_id":"\\u12G4","event_name":"e"}', "malformed JSON: invalid \\u escape at byte 24"),
    (b'{"conversation_id":"c', "malformed JSON: unterminated string at byte 21"),
    (b"[" * 100, "malformed JSON: JSON nested too deeply at byte 64"),
    (b"\xef\xbb\xbf" + json.dumps(VALID).encode(), "malformed JSON: invalid value at byte 0"),  # BOM
    # Invalid UTF-8: a lone continuation/start byte, an overlong encoding, a surrogate, a truncated sequence.
    (b'{"conversation_id":"\xff","event_name":"e"}', "malformed JSON: invalid UTF-8 in a string at byte 20"),
    (b'{"conversation_id":"ok","event_name":"e","input":"abc\x80"}', "malformed JSON: invalid UTF-8 in a string at byte 50"),
    (b'{"conversation_id":"\xc0\xaf","event_name":"e"}', "malformed JSON: invalid UTF-8 in a string at byte 20"),
    (b'{"conversation_id":"\xed\xa0\x80","event_name":"e"}', "malformed JSON: invalid UTF-8 in a string at byte 20"),
    (b'{"conversation_id":"\xe2\x82","event_name":"e"}', "malformed JSON: invalid UTF-8 in a string at byte 20"),
    (b'{"\xff":"x","conversation_id":"c","event_name":"e"}', "malformed JSON: invalid UTF-8 in a string at byte 2"),
    (b"\xff", "malformed JSON: invalid value at byte 0"),
]


@pytest.mark.parametrize("body,message", MALFORMED, ids=[repr(b[:30]) for b, _ in MALFORMED])
def test_malformed_create_body(api, body, message):
    assert_error(api.post("/event/", raw=body), 400, message, None)


@pytest.mark.parametrize("body", [b"", b"{", b'{"output":"\xff"}'])
def test_malformed_update_body(api, body):
    response = api.put("/event/" + str(uuid.uuid4()), raw=body)
    assert response.status == 400 and response.json["field"] is None, response
    assert response.json["error"].startswith("request body is empty" if not body else "malformed JSON: ")


@pytest.mark.parametrize("body", [b"[]", b"null", b"1", b'"text"', b"true", b"[{}]"])
def test_body_must_be_an_object(api, body):
    assert_error(api.post("/event/", raw=body), 400, "request body must be a JSON object", None)
    assert_error(api.put("/event/" + str(uuid.uuid4()), raw=body), 400, "request body must be a JSON object", None)


# ------------------------------------------------------------------------- field problems

CREATE_CASES = [
    # missing required fields
    (with_(conversation_id=...), "field is required", "conversation_id"),
    (with_(event_name=...), "field is required", "event_name"),
    ({}, "field is required", "conversation_id"),
    # wrong types
    (with_(conversation_id=5), "must be a string", "conversation_id"),
    (with_(conversation_id=None), "must be a string", "conversation_id"),
    (with_(conversation_id=["c"]), "must be a string", "conversation_id"),
    (with_(event_name={"a": 1}), "must be a string", "event_name"),
    (with_(event_name=True), "must be a string", "event_name"),
    (with_(input=1), "must be a string", "input"),
    (with_(input=None), "must be a string", "input"),
    (with_(output=False), "must be a string", "output"),
    (with_(latency="5"), "must be a number", "latency"),
    (with_(latency=None), "must be a number", "latency"),
    (with_(latency=True), "must be a number", "latency"),
    (with_(error="true"), "must be a boolean", "error"),
    (with_(error=1), "must be a boolean", "error"),
    (with_(error=None), "must be a boolean", "error"),
    (with_(event_id=123), "must be a string", "event_id"),
    (with_(timestamp=1764201600000), "must be a string", "timestamp"),
    # values out of range / unparseable
    (with_(conversation_id=""), "must be 1 to 256 characters", "conversation_id"),
    (with_(conversation_id="c" * 257), "must be 1 to 256 characters", "conversation_id"),
    (with_(event_name=""), "must be 1 to 256 characters", "event_name"),
    (with_(event_name="e" * 257), "must be 1 to 256 characters", "event_name"),
    (with_(latency=-1), "must be a non-negative number", "latency"),
    (with_(latency=-0.001), "must be a non-negative number", "latency"),
    (with_(event_id="not-a-uuid"), "must be a UUID", "event_id"),
    (with_(event_id=""), "must be a UUID", "event_id"),
    (with_(timestamp="yesterday"), "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", "timestamp"),
    (with_(timestamp="2026-11-27"), "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", "timestamp"),
    (with_(timestamp="2026-11-27T10:00:00"), "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", "timestamp"),
    (with_(timestamp="2026-02-30T10:00:00Z"), "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", "timestamp"),
    (with_(timestamp="2026-11-27T24:00:00Z"), "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", "timestamp"),
    (with_(timestamp="2026-11-27T10:00:00.Z"), "must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", "timestamp"),
    (with_(timestamp="1969-12-31T23:59:59.999Z"), "must be from 1970-01-01 to 2105-12-31", "timestamp"),
    (with_(timestamp="2106-01-01T00:00:00Z"), "must be from 1970-01-01 to 2105-12-31", "timestamp"),
    # unknown fields are rejected, naming the field
    (with_(colour="blue"), "unknown field", "colour"),
    (with_(Event_Name="x"), "unknown field", "Event_Name"),
    (with_(status="accepted"), "unknown field", "status"),
    (dict(with_(extra=None)), "unknown field", "extra"),
    ({"colour": "blue"}, "unknown field", "colour"),  # reported before missing fields
]


@pytest.mark.parametrize("body,message,field", CREATE_CASES, ids=["%s-%s" % (f, m) for _, m, f in CREATE_CASES])
def test_invalid_create(api, body, message, field):
    assert_error(api.post("/event/", body), 400, message, field)


def test_boundary_values_are_accepted(api):
    for body in (with_(conversation_id="c" * 256, event_name="e" * 256), with_(latency=0), with_(latency=1.5e300),
                 with_(conversation_id="é" * 256), with_(input="", output=""), with_(timestamp="1970-01-01T00:00:00Z")):
        response = api.post("/event/", body)
        assert response.status == 202, (body, response)


UPDATE_CASES = [
    ({}, "no fields to update", None),
    ({"conversation_id": "other"}, "field cannot be updated", "conversation_id"),
    ({"timestamp": "2026-11-27T10:00:00Z"}, "field cannot be updated", "timestamp"),
    ({"event_id": str(uuid.uuid4())}, "field cannot be updated", "event_id"),
    ({"output": "x", "conversation_id": "other"}, "field cannot be updated", "conversation_id"),
    ({"colour": "blue"}, "unknown field", "colour"),
    ({"output": "x", "colour": "blue"}, "unknown field", "colour"),
    ({"event_name": ""}, "must be 1 to 256 characters", "event_name"),
    ({"event_name": "e" * 257}, "must be 1 to 256 characters", "event_name"),
    ({"event_name": None}, "must be a string", "event_name"),
    ({"input": 5}, "must be a string", "input"),
    ({"output": None}, "must be a string", "output"),
    ({"latency": -1}, "must be a non-negative number", "latency"),
    ({"latency": "1"}, "must be a number", "latency"),
    ({"error": "false"}, "must be a boolean", "error"),
]


@pytest.mark.parametrize("body,message,field", UPDATE_CASES, ids=["%s-%s" % (f, m) for _, m, f in UPDATE_CASES])
def test_invalid_update(api, body, message, field):
    assert_error(api.put("/event/" + str(uuid.uuid4()), body), 400, message, field)


# ---------------------------------------------------------------------------- path and query

@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("bad_id", [
    "not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000G", "00000000000000000000000000000000",
    "{00000000-0000-0000-0000-000000000000}", "00000000-0000-0000-0000-0000000000000",
    "%2000000000-0000-0000-0000-000000000000",
])
def test_invalid_uuid_in_path(api, method, bad_id):
    body = {"output": "x"} if method == "PUT" else None
    assert_error(api.request(method, "/event/" + bad_id, body=body), 400, "must be a UUID", "id")


@pytest.mark.parametrize("segment", ["%E9t%E9", "50%", "a%2", "%FF%FE"])
def test_malformed_conversation_segment(api, segment):
    """Not read as a conversation literally named like the escapes."""
    assert_error(api.get("/events/conversation/" + segment), 400, "invalid percent-encoding (escapes must spell UTF-8)", "conversation_id")


@pytest.mark.parametrize("path", [
    "/", "/nope", "/events", "/events/", "/analytics", "/analytics/sessions", "/analytics/top-errors",
    "/event/%s/extra" % uuid.uuid4(), "/events/conversation", "/events/conversation/", "/events/conversation/a/b",
    "/events/batch/x", "/healthz", "/api/event/", "/EVENT/", "/openapi.json",
])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_route(api, path, method):
    assert_error(api.request(method, path, body={} if method == "POST" else None), 404, "not found", None)


@pytest.mark.parametrize("method,path,allow", [
    ("GET", "/event/", "POST"),
    ("PUT", "/event/", "POST"),
    ("DELETE", "/event/", "POST"),
    ("PATCH", "/event/", "POST"),
    ("POST", "/event/%s" % uuid.uuid4(), "GET, HEAD, PUT, DELETE"),
    ("PATCH", "/event/%s" % uuid.uuid4(), "GET, HEAD, PUT, DELETE"),
    ("GET", "/events/batch", "POST"),
    ("DELETE", "/events/batch", "POST"),
    ("HEAD", "/event/", "POST"),
    ("HEAD", "/events/batch", "POST"),
    ("POST", "/events/conversation/c", "GET, HEAD"),
    ("POST", "/analytics/errors", "GET, HEAD"),
    ("PUT", "/analytics/latency", "GET, HEAD"),
    ("DELETE", "/analytics/sessions/top-errors", "GET, HEAD"),
    ("POST", "/health", "GET, HEAD"),
    ("POST", "/ready", "GET, HEAD"),
    ("POST", "/metrics", "GET, HEAD"),
    ("DELETE", "/openapi.yaml", "GET, HEAD"),
    ("OPTIONS", "/health", "GET, HEAD"),
])
def test_wrong_method(api, method, path, allow):
    response = api.request(method, path)
    assert_error(response, 405, "method %s not allowed" % method, None, head=method == "HEAD")
    assert response.header("Allow") == allow


def test_wrong_method_on_invalid_id_is_405_not_400(api):
    response = api.request("POST", "/event/not-a-uuid")
    assert_error(response, 405, "method POST not allowed", None)
    assert response.header("Allow") == "GET, HEAD, PUT, DELETE"


# ----------------------------------------------------------------------------------- batch


def test_batch_with_mixed_items(api):
    conversation = unique("batch-mixed")
    good = {"conversation_id": conversation, "event_name": "mixed"}
    response = api.post("/events/batch", {"events": [
        good,
        dict(good, latency=-1),
        dict(good, colour="blue"),
        "not an object",
        dict(good, error=True, latency=3.25),
        {"event_name": "mixed"},
        dict(good, timestamp="never"),
        dict(good, event_id="nope"),
        None,
    ]})
    assert response.status == 207, response
    body = response.json
    assert (body["accepted"], body["rejected"]) == (2, 7)
    results = body["results"]
    assert [r["index"] for r in results] == list(range(9))
    assert [r["status"] for r in results] == [202, 400, 400, 400, 202, 400, 400, 400, 400]
    for index in (0, 4):
        assert set(results[index]) == {"index", "status", "event_id"}
        assert len(results[index]["event_id"]) == 36
    assert [(r["error"], r["field"]) for r in results if r["status"] == 400] == [
        ("must be a non-negative number", "latency"),
        ("unknown field", "colour"),
        ("request body must be a JSON object", None),
        ("field is required", "conversation_id"),
        ("must be an RFC 3339 date-time, e.g. 2026-11-27T10:00:00.123Z", "timestamp"),
        ("must be a UUID", "event_id"),
        ("request body must be a JSON object", None),
    ]
    for result in results:
        if result["status"] == 400:
            assert set(result) == {"index", "status", "error", "field"}


def test_batch_item_limits(api):
    conversation = unique("batch-limits")
    item = {"conversation_id": conversation, "event_name": "limit"}
    too_many = api.post("/events/batch", {"events": [item] * 1001})
    assert_error(too_many, 400, "events must hold 1 to 1000 items", "events")
    assert_error(api.post("/events/batch", {"events": []}), 400, "events must hold 1 to 1000 items", "events")
    full = api.post("/events/batch", {"events": [dict(item, input=str(i)) for i in range(1000)]})
    assert full.status == 207, full
    assert (full.json["accepted"], full.json["rejected"], len(full.json["results"])) == (1000, 0, 1000)
    assert len({r["event_id"] for r in full.json["results"]}) == 1000


def test_batch_item_too_large_for_kafka_is_413_alone(api):
    """A batch may hold an item bigger than a Kafka message may be (2 MiB): that item alone is
    rejected with 413, the others are accepted."""
    conversation = unique("batch-huge-item")
    response = api.post("/events/batch", {"events": [
        {"conversation_id": conversation, "event_name": "small"},
        {"conversation_id": conversation, "event_name": "huge", "input": "a" * (5 << 19)},
        {"conversation_id": conversation, "event_name": "small"},
    ]})
    assert response.status == 207, response
    body = response.json
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert [r["status"] for r in body["results"]] == [202, 413, 202]
    rejected = body["results"][1]
    assert set(rejected) == {"index", "status", "error", "field"} and rejected["field"] is None
    assert rejected["error"].startswith("the event is ") and "limit" in rejected["error"], rejected
    events = wait_for_conversation(api, conversation, 2)
    assert [e["event_name"] for e in events] == ["small", "small"]


@pytest.mark.parametrize("body,message,field", [
    ({}, 'request body must be a JSON object with an "events" array', "events"),
    ({"events": {}}, 'request body must be a JSON object with an "events" array', "events"),
    ({"events": None}, 'request body must be a JSON object with an "events" array', "events"),
    ({"events": "x"}, 'request body must be a JSON object with an "events" array', "events"),
    ([{"conversation_id": "c", "event_name": "e"}], 'request body must be a JSON object with an "events" array', "events"),
    ({"events": [{"conversation_id": "c", "event_name": "e"}], "colour": "blue"}, "unknown field", "colour"),
])
def test_batch_whole_body_problems(api, body, message, field):
    assert_error(api.post("/events/batch", body), 400, message, field)


def test_batch_malformed_json(api):
    assert_error(api.post("/events/batch", raw=b'{"events":['), 400, "malformed JSON: unexpected end of JSON at byte 11", None)
    assert_error(api.post("/events/batch", raw=b""), 400, "request body is empty", None)
    assert_error(api.post("/events/batch", raw=b'{"events":[{"conversation_id":"\xff"}]}'), 400,
                 "malformed JSON: invalid UTF-8 in a string at byte 31", None)


# ------------------------------------------------------------------------------ body limits

def big_event(size: int) -> bytes:
    """A valid create body of exactly `size` bytes."""
    head = json.dumps({"conversation_id": unique("big"), "event_name": "big", "input": ""}).encode()[:-2]
    body = head + b"x" * (size - len(head) - 2) + b'"}'
    assert len(body) == size
    return body


@pytest.fixture(scope="module")
def small_limit_api():
    """A second event-api with API_MAX_BODY_BYTES=4096 (same Kafka topic and database)."""
    yield from api_instance("small-limit", {"API_MAX_BODY_BYTES": "4096"})


def test_body_at_the_limit_is_accepted(small_limit_api):
    api = small_limit_api.api()
    for chunked in (False, True):
        status, _, body = post_raw(api, "/event/", big_event(4096), chunked=chunked)
        assert status == 202, body


def test_body_over_the_limit_is_413(small_limit_api):
    api = small_limit_api.api()
    status, headers, body = post_raw(api, "/event/", big_event(4097))
    assert (status, json.loads(body)) == (413, {"error": "request body is larger than 4096 bytes", "field": None})
    assert headers.get("x-request-id")
    response = api.put("/event/%s" % uuid.uuid4(), raw=b'{"output":"' + b"x" * 5000 + b'"}')
    assert_error(response, 413, "request body is larger than 4096 bytes", None)


def test_chunked_body_over_the_limit_is_413(small_limit_api):
    status, _, body = post_raw(small_limit_api.api(), "/event/", big_event(8192), chunked=True)
    assert (status, json.loads(body)) == (413, {"error": "request body is larger than 4096 bytes", "field": None})


def test_batch_limit_is_5_mib_whatever_the_single_event_limit(small_limit_api):
    api = small_limit_api.api()
    conversation = unique("big-batch")
    events = [{"conversation_id": conversation, "event_name": "big", "input": "y" * 5000} for _ in range(20)]
    response = api.post("/events/batch", {"events": events})
    assert response.status == 207, response
    assert response.json["accepted"] == 20


def test_over_one_mib_on_the_default_instance(api):
    status, _, body = post_raw(api, "/event/", big_event((1 << 20) + 1))
    assert (status, json.loads(body)) == (413, {"error": "request body is larger than 1048576 bytes", "field": None})
    status, _, body = post_raw(api, "/event/", big_event(1 << 20))
    assert status == 202, body


def test_batch_over_5_mib(api):
    item = json.dumps({"conversation_id": unique("huge"), "event_name": "huge", "input": "z" * 100_000}).encode()
    body = b'{"events":[' + b",".join([item] * 53) + b"]}"
    assert len(body) > 5 << 20
    status, _, answer = post_raw(api, "/events/batch", body)
    assert (status, json.loads(answer)) == (413, {"error": "request body is larger than 5242880 bytes", "field": None})


def test_early_413_does_not_stall_a_client_that_sends_everything_first(api):
    """A simple client (write the request, then read) with Connection: close and a body far over
    the limit and larger than the socket buffers must get its 413 without waiting for a timeout."""
    body = b'{"events":["' + b"z" * (8 << 20) + b'"]}'
    head = b"POST /events/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    sock = socket.create_connection((api.host, api.port), timeout=3)
    try:
        sock.sendall(head + body)  # times out (socket.timeout) when the server stops reading
        answer = sock.recv(65536)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
