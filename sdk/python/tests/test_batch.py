"""track_events: id assignment, result mapping, splitting at 1000 items / 5 MiB, failures."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone

import pytest

import event_client.client as client_module
from event_client import ApiError, BatchResult, ServiceUnavailable, ValidationError, uuid7_unix_ms
from stubserver import Reply

OWN_ID = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def batch_responder(request):
    """Answers like event-api: 202 per valid item, 400 for negative latency or bad timestamps."""
    events = request.json["events"]
    results = []
    for i, event in enumerate(events):
        if not isinstance(event.get("latency", 0), (int, float)) or event.get("latency", 0) < 0:
            results.append({"index": i, "status": 400, "error": "latency must be >= 0", "field": "latency"})
        else:
            results.append({"index": i, "status": 202, "event_id": event["event_id"]})
    accepted = sum(1 for r in results if r["status"] == 202)
    return Reply(207, {"accepted": accepted, "rejected": len(results) - accepted, "results": results})


def test_batch_of_three_with_one_invalid(stub, client):
    stub.responder = batch_responder
    items = [
        {"conversation_id": "c", "event_name": "a", "latency": 5},
        {"conversation_id": "c", "event_name": "b", "latency": -1},
        {"conversation_id": "c", "event_name": "c", "event_id": OWN_ID,
         "timestamp": datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=timezone.utc)},
    ]
    before = copy.deepcopy(items)

    result = client.track_events(items)

    assert isinstance(result, BatchResult)
    assert (result.accepted, result.rejected) == (2, 1)
    assert not result.ok
    assert [r.index for r in result.results] == [0, 1, 2]
    assert [r.status for r in result.results] == [202, 400, 202]
    assert result.results[1].field == "latency"
    assert result.results[1].error == "latency must be >= 0"
    assert result.results[1].accepted is False
    assert result.errors == [result.results[1]]

    sent = stub.requests[0].json["events"]
    assert stub.requests[0].target == "/events/batch"
    assert result.results[0].event_id == sent[0]["event_id"]
    assert uuid7_unix_ms(sent[0]["event_id"]) > 0  # assigned a UUIDv7
    assert uuid7_unix_ms(sent[1]["event_id"]) > 0  # the rejected item got one too
    assert sent[2]["event_id"] == OWN_ID  # an item's own id is kept
    assert result.results[2].event_id == OWN_ID
    assert sent[2]["timestamp"] == "2026-11-27T10:00:00.123Z"
    assert items == before, "the caller's dicts must not be modified"
    assert result.to_dict()["results"][1] == {
        "index": 1, "status": 400, "error": "latency must be >= 0", "field": "latency"
    }


def test_uuid_objects_and_none_ids(stub, client):
    stub.responder = batch_responder
    own = uuid.UUID(OWN_ID)
    client.track_events([
        {"conversation_id": "c", "event_name": "a", "event_id": own},
        {"conversation_id": "c", "event_name": "b", "event_id": None, "timestamp": None},
    ])
    sent = stub.requests[0].json["events"]
    assert sent[0]["event_id"] == OWN_ID
    assert uuid.UUID(sent[1]["event_id"]).version == 7
    assert "timestamp" not in sent[1]


def test_empty_batch_sends_nothing(stub, client):
    result = client.track_events([])
    assert (result.accepted, result.rejected, result.results) == (0, 0, [])
    assert stub.requests == []


def test_generator_input(stub, client):
    stub.responder = batch_responder
    result = client.track_events({"conversation_id": "c", "event_name": str(i)} for i in range(3))
    assert result.accepted == 3


def test_splits_over_1000_items(stub, client):
    stub.responder = batch_responder
    items = [
        {"conversation_id": "c", "event_name": "e", "latency": -1 if i % 500 == 7 else i}
        for i in range(2500)
    ]
    result = client.track_events(items)

    sizes = [len(r.json["events"]) for r in stub.requests]
    assert sizes == [1000, 1000, 500]
    assert [r.index for r in result.results] == list(range(2500))
    assert result.rejected == 5 and result.accepted == 2495
    assert [r.index for r in result.errors] == [7, 507, 1007, 1507, 2007]
    sent_ids = [e["event_id"] for r in stub.requests for e in r.json["events"]]
    assert len(set(sent_ids)) == 2500
    accepted_ids = [r.event_id for r in result.results if r.accepted]
    assert accepted_ids == [sid for i, sid in enumerate(sent_ids) if i % 500 != 7]


def test_exactly_1000_items_is_one_request(stub, client):
    stub.responder = batch_responder
    client.track_events([{"conversation_id": "c", "event_name": "e"}] * 1000)
    assert [len(r.json["events"]) for r in stub.requests] == [1000]


def test_splits_by_body_size(stub, client, monkeypatch):
    monkeypatch.setattr(client_module, "MAX_BATCH_BYTES", 1000)
    stub.responder = batch_responder
    items = [{"conversation_id": "c", "event_name": "e", "input": "x" * 300} for _ in range(7)]
    result = client.track_events(items)
    assert result.accepted == 7
    assert all(len(r.data) <= 1000 for r in stub.requests)
    assert sum(len(r.json["events"]) for r in stub.requests) == 7
    assert len(stub.requests) > 1


def test_results_are_mapped_by_index_even_out_of_order(stub, client):
    def respond(request):
        events = request.json["events"]
        return Reply(207, {"accepted": 2, "rejected": 0, "results": [
            {"index": 1, "status": 202, "event_id": events[1]["event_id"]},
            {"index": 0, "status": 202, "event_id": events[0]["event_id"]},
        ]})

    stub.responder = respond
    result = client.track_events([
        {"conversation_id": "c", "event_name": "a"},
        {"conversation_id": "c", "event_name": "b"},
    ])
    sent = stub.requests[0].json["events"]
    assert [r.event_id for r in result.results] == [sent[0]["event_id"], sent[1]["event_id"]]


def test_batch_retry_resends_identical_body(stub, client, sleeps):
    stub.queue(Reply(503, {"error": "queue full", "field": None}, {"Retry-After": "1"}))
    stub.responder = batch_responder
    result = client.track_events([{"conversation_id": "c", "event_name": "e"}] * 3)
    assert result.accepted == 3
    assert stub.requests[0].body == stub.requests[1].body
    assert sleeps.calls == [1.0]


def test_failure_in_a_later_request_carries_partial_result(stub, make_client):
    calls = {"n": 0}

    def respond(request):
        calls["n"] += 1
        if calls["n"] == 2:
            return Reply(503, {"error": "down", "field": None})
        return batch_responder(request)

    stub.responder = respond
    client = make_client(retries=0)
    with pytest.raises(ServiceUnavailable) as info:
        client.track_events([{"conversation_id": "c", "event_name": "e"}] * 1500)
    partial = info.value.partial_result
    assert isinstance(partial, BatchResult)
    assert partial.accepted == 1000
    assert [r.index for r in partial.results] == list(range(1000))


def test_whole_body_400_raises(stub, client):
    stub.queue(Reply(400, {"error": "too many items", "field": "events"}))
    with pytest.raises(ValidationError) as info:
        client.track_events([{"conversation_id": "c", "event_name": "e"}])
    assert info.value.field == "events"
    assert info.value.partial_result is not None and info.value.partial_result.results == []


def test_malformed_batch_response(stub, client):
    stub.queue(Reply(207, {"accepted": 1, "rejected": 0, "results": []}))
    with pytest.raises(ApiError) as info:
        client.track_events([{"conversation_id": "c", "event_name": "e"}])
    assert (info.value.message, info.value.status) == ("malformed batch response: expected 1 results", 207)


@pytest.mark.parametrize(
    "items,field",
    [
        ([{"conversation_id": "c", "event_name": "e"}, "nope"], "events[1]"),
        ([{"conversation_id": "c", "event_name": "e", "latency": float("nan")}], "events[0].latency"),
        ([{"conversation_id": "c", "event_name": "e", "timestamp": object()}], "events[0].timestamp"),
        ([{"conversation_id": "c", "event_name": "e", "input": {1, 2}}], "events[0].input"),
        ([{"conversation_id": "c", "event_name": "e", "timestamp": datetime(1969, 1, 1)}], "events[0].timestamp"),
    ],
)
def test_unsendable_items_raise_before_any_request(stub, client, items, field):
    with pytest.raises(ValidationError) as info:
        client.track_events(items)
    assert info.value.field == field
    assert stub.requests == []


def test_items_kafka_did_not_take_are_resent_with_their_ids(stub, client, sleeps):
    answers = iter([[202, 503, 503], [503, 202], [202]])

    def respond(request):
        statuses = next(answers)
        events = request.json["events"]
        assert len(events) == len(statuses)
        results = []
        for i, (event, status) in enumerate(zip(events, statuses)):
            if status == 202:
                results.append({"index": i, "status": 202, "event_id": event["event_id"]})
            else:
                results.append({"index": i, "status": 503, "error": "Kafka did not accept the event: queue full", "field": None})
        return Reply(207, {"results": results})

    stub.responder = respond
    result = client.track_events([{"conversation_id": "c", "event_name": str(i)} for i in range(3)])

    sent = [[e["event_id"] for e in r.json["events"]] for r in stub.requests]
    assert sent[1] == sent[0][1:] and sent[2] == sent[0][1:2]
    assert [e["event_name"] for e in stub.requests[2].json["events"]] == ["1"]
    assert (result.ok, result.accepted, result.rejected) == (True, 3, 0)
    assert result.event_ids == sent[0] == result.item_ids
    # At least the 1 s that a single event's 503 asks for (Retry-After: 1), not the bare jitter
    # (0.05 and 0.1 here): during an overload, batch items must not give up ten times sooner.
    assert sleeps.calls == [1.0, 1.0]


def test_items_kafka_never_took_keep_their_503_and_ids(stub, make_client, sleeps):
    def respond(request):
        return Reply(207, {"results": [
            {"index": i, "status": 503, "error": "Kafka did not accept the event: timed out", "field": None}
            for i in range(len(request.json["events"]))
        ]})

    stub.responder = respond
    result = make_client(retries=1).track_events([{"conversation_id": "c", "event_name": "e"}] * 2)

    assert len(stub.requests) == 2
    assert [r.status for r in result.results] == [503, 503]
    assert result.results[0].error == "Kafka did not accept the event: timed out"
    assert result.event_ids == [e["event_id"] for e in stub.requests[0].json["events"]]
    assert result.to_dict()["results"][0] == {
        "index": 0, "status": 503, "error": "Kafka did not accept the event: timed out", "field": None
    }


def test_an_item_too_big_for_any_request_is_refused_and_the_others_go(stub, client, monkeypatch):
    monkeypatch.setattr(client_module, "MAX_BATCH_BYTES", 1000)
    stub.responder = batch_responder
    items = [{"conversation_id": "c", "event_name": "e", "input": "x" * (2000 if i == 1 else 10)} for i in range(4)]

    result = client.track_events(items)

    assert [len(r.json["events"]) for r in stub.requests] == [3]
    assert [r.status for r in result.results] == [202, 413, 202, 202]
    big = result.results[1]
    assert big.error == "the item is %d bytes of JSON, over the 987-byte limit of a batch request" % (
        len(client_module._json_bytes(dict(items[1], event_id=big.event_id)))
    )
    assert big.event_id == result.item_ids[1] and uuid.UUID(big.event_id).version == 7


def test_batch_event_ids_are_normalized_like_track_event(stub, client):
    stub.responder = batch_responder
    client.track_events([
        {"conversation_id": "c", "event_name": "e", "event_id": "0193A1B2C3D47E5F8A9B0C1D2E3F4A5B"},
        {"conversation_id": "c", "event_name": "e", "event_id": "not-a-uuid"},
    ])
    assert [e["event_id"] for e in stub.requests[0].json["events"]] == [OWN_ID, "not-a-uuid"]


def test_partial_result_has_the_ids_of_unanswered_items(stub, make_client):
    calls = {"n": 0}

    def respond(request):
        calls["n"] += 1
        return batch_responder(request) if calls["n"] == 1 else Reply(503, {"error": "down", "field": None})

    stub.responder = respond
    with pytest.raises(ServiceUnavailable) as info:
        make_client(retries=0).track_events([{"conversation_id": "c", "event_name": "e"}] * 1200)
    partial = info.value.partial_result
    sent_later = [e["event_id"] for e in stub.requests[1].json["events"]]
    assert len(partial.results) == 1000 and len(partial.item_ids) == 1200
    assert partial.item_ids[1000:] == sent_later


def test_body_upload_timeout_is_per_piece_not_per_request(monkeypatch):
    """A 1.5 MB batch read by the server at about 0.8 MB/s takes about 2 s to upload: with
    timeout=0.5 that must pass, as long as no single 64 KiB piece waits 0.5 s."""
    import socket
    import threading
    import time

    from event_client import EventClient

    original = socket.create_connection

    def small_send_buffer(*args, **kwargs):
        sock = original(*args, **kwargs)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        return sock

    monkeypatch.setattr(socket, "create_connection", small_send_buffer)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received = {}

    def serve():
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            head, body = data.split(b"\r\n\r\n", 1)
            length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
            started = time.monotonic()
            while len(body) < length:
                body += conn.recv(16384)
                time.sleep(0.02)
            received["seconds"] = time.monotonic() - started
            event_id = json.loads(body)["events"][0]["event_id"]
            reply = json.dumps({"results": [{"index": 0, "status": 202, "event_id": event_id}]}).encode()
            conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(reply) + reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    # Uncompressed: the point is a long upload (1.5 MB of "x" would gzip to 2 KB).
    client = EventClient("http://127.0.0.1:%d" % listener.getsockname()[1], timeout=0.5, retries=0, compress_batches=False)
    result = client.track_events([{"conversation_id": "c", "event_name": "e", "input": "x" * 1_500_000}])
    thread.join(5)
    listener.close()
    assert result.ok
    assert received["seconds"] > 1.0, received  # the upload really took longer than the timeout


# ------------------------------------------------------------------------------ compression


def big_items(count, size=200):
    return [{"conversation_id": "c", "event_name": "e", "input": "x" * size} for _ in range(count)]


def test_batches_of_1_kib_or_more_go_gzip_compressed(stub, client):
    stub.responder = batch_responder
    client.track_events(big_items(20))
    client.track_events([{"conversation_id": "c", "event_name": "small"}])
    large, small = stub.requests
    assert large.headers.get("Content-Encoding") == "gzip"
    assert len(large.body) < len(large.data) // 5  # what was sent is the compressed form
    assert [e["input"] for e in large.json["events"]] == ["x" * 200] * 20
    assert int(large.headers["Content-Length"]) == len(large.body)
    assert "Content-Encoding" not in small.headers and small.json["events"][0]["event_name"] == "small"


def test_compression_can_be_turned_off(stub, make_client):
    stub.responder = batch_responder
    make_client(compress_batches=False).track_events(big_items(20))
    assert "Content-Encoding" not in stub.requests[0].headers
    assert len(stub.requests[0].body) > 20 * 200


def test_single_event_writes_are_not_compressed(stub, client):
    stub.responder = lambda r: Reply(202, {"event_id": r.json.get("event_id") or OWN_ID, "status": "accepted"})
    client.track_event("c", "e", input="y" * 5000)
    assert "Content-Encoding" not in stub.requests[0].headers


def test_a_415_sends_the_batch_again_uncompressed_and_stops_compressing(stub, client, sleeps):
    stub.queue(Reply(415, {"error": "unsupported Content-Encoding: gzip (this server accepts none)", "field": None},
                     headers={"Accept-Encoding": "identity"}))
    stub.responder = batch_responder
    result = client.track_events(big_items(20))
    assert result.accepted == 20
    first, second = stub.requests
    assert first.headers.get("Content-Encoding") == "gzip" and "Content-Encoding" not in second.headers
    assert first.data == second.body  # the same JSON, the same ids
    assert first.headers["X-Request-Id"] == second.headers["X-Request-Id"]
    assert sleeps.calls == []  # not a retry: no delay
    assert client.compress_batches is False
    client.track_events(big_items(20))
    assert "Content-Encoding" not in stub.requests[2].headers


def test_an_event_api_from_before_gzip_bodies_gets_the_batch_uncompressed(stub, client):
    # Its JSON parser met the gzip header's first byte: this exact 400.
    stub.queue(Reply(400, {"error": "malformed JSON: invalid value at byte 0", "field": None}))
    stub.responder = batch_responder
    assert client.track_events(big_items(20)).accepted == 20
    first, second = stub.requests
    assert first.headers.get("Content-Encoding") == "gzip" and "Content-Encoding" not in second.headers
    assert first.data == second.body and client.compress_batches is False


def test_other_refusals_of_a_gzip_body_are_errors(stub, make_client):
    # A 415 that offers gzip, and a 400 about the JSON further in, are not about the coding.
    stub.queue(Reply(415, {"error": "unsupported media", "field": None}, headers={"Accept-Encoding": "br, GZIP;q=1"}),
               Reply(400, {"error": "malformed JSON: unexpected end of JSON at byte 10", "field": None}))
    client = make_client()
    for message in ("unsupported media", "malformed JSON: unexpected end of JSON at byte 10"):
        with pytest.raises((ApiError, ValidationError)) as info:
            client.track_events(big_items(20))
        assert info.value.message == message
    assert len(stub.requests) == 2 and client.compress_batches is True


def test_the_uncompressed_resend_counts_as_an_attempt_and_keeps_total_timeout(stub, make_client):
    stub.queue(Reply(415, {"error": "unsupported", "field": None}), Reply(503, {"error": "down", "field": None}))
    with pytest.raises(ServiceUnavailable) as info:
        make_client(retries=0).track_events(big_items(20))
    assert info.value.attempts == 2  # the gzip request, then the plain one: a resend, not a retry
    assert len(stub.requests) == 2
    # The 415 comes after total_timeout ran out (the clock moves while the server answers).
    now = [0.0]
    client = make_client(total_timeout=1.0, clock=lambda: now[0])
    stub.responder = lambda r: (now.__setitem__(0, 5.0), Reply(415, {"error": "unsupported", "field": None}))[1]
    with pytest.raises(ApiError) as info:
        client.track_events(big_items(20))
    assert info.value.status == 415 and len(stub.requests) == 3  # no resend past total_timeout
    assert client.compress_batches is False  # but the next batch goes uncompressed


def test_the_resend_does_not_lengthen_the_backoff(stub, make_client, sleeps):
    stub.queue(Reply(415, {"error": "unsupported", "field": None}), Reply(503, {"error": "down", "field": None}))
    stub.responder = batch_responder
    make_client(retries=1, backoff_base=0.1).track_events(big_items(20))
    assert sleeps.calls == [0.05]  # the first retry's delay: random 0.5 of backoff_base, not of 2 x backoff_base


def test_a_415_for_a_plain_body_is_an_error(stub, make_client):
    stub.queue(Reply(415, {"error": "unsupported", "field": None}))
    with pytest.raises(ApiError) as info:
        make_client(compress_batches=False).track_events(big_items(20))
    assert (info.value.status, info.value.message) == (415, "unsupported")
    assert len(stub.requests) == 1


def test_compress_batches_must_be_a_bool(stub):
    with pytest.raises(ValidationError) as info:
        client_module.EventClient(stub.url, compress_batches="yes")
    assert (info.value.message, info.value.field) == ("compress_batches must be True or False", "compress_batches")
