"""What goes on the wire: paths, URL encoding, query strings, headers, bodies, paging."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

import event_client
from event_client import ApiError, EventClient
from stubserver import ACCEPTED_ID, Reply, accepted

PAGE = {"events": [], "next_cursor": None}


@pytest.mark.parametrize(
    "conversation_id,encoded",
    [
        ("plain-id_1.2~x", "plain-id_1.2~x"),
        ("with space", "with%20space"),
        ("a/b/../c", "a%2Fb%2F..%2Fc"),
        ("q?x=1&y#frag", "q%3Fx%3D1%26y%23frag"),
        ("100%+plus", "100%25%2Bplus"),
        ("café 😀 日本", "caf%C3%A9%20%F0%9F%98%80%20%E6%97%A5%E6%9C%AC"),
        ("..", "%2E%2E"),
        (".", "%2E"),
    ],
)
def test_conversation_id_is_one_encoded_path_segment(stub, client, conversation_id, encoded):
    stub.queue(Reply(200, PAGE))
    assert client.get_conversation(conversation_id) == PAGE
    request = stub.requests[0]
    assert request.path == "/events/conversation/" + encoded
    assert unquote(request.path[len("/events/conversation/"):]) == conversation_id
    assert request.query == [("limit", "100")]


def test_query_parameters_are_encoded(stub, client):
    stub.queue(Reply(200, PAGE))
    client.get_conversation("c", limit=2, cursor="ab+/=?&c d")
    request = stub.requests[0]
    assert request.target == "/events/conversation/c?limit=2&cursor=ab%2B%2F%3D%3F%26c%20d"
    assert request.query == [("limit", "2"), ("cursor", "ab+/=?&c d")]

    stub.queue(Reply(200, {"event_name": "llm call/é", "days": 3, "counts": []}))
    client.get_error_counts(event_name="llm call/é", days=3)
    request = stub.requests[1]
    assert request.target == "/analytics/errors?event_name=llm%20call%2F%C3%A9&days=3"
    assert request.query == [("event_name", "llm call/é"), ("days", "3")]


def test_analytics_routes_and_defaults(stub, client):
    stub.queue(
        Reply(200, {"event_name": None, "days": 7, "counts": []}),
        Reply(200, {"results": []}),
        Reply(200, {"sessions": []}),
        Reply(200, {"status": "ok"}),
    )
    assert client.get_error_counts() == {"event_name": None, "days": 7, "counts": []}
    assert client.get_latency() == {"results": []}
    assert client.get_top_error_sessions() == {"sessions": []}
    assert client.health() == {"status": "ok"}
    assert [r.target for r in stub.requests] == [
        "/analytics/errors?days=7",
        "/analytics/latency?limit=100",
        "/analytics/sessions/top-errors?limit=10",
        "/health",
    ]
    assert all(r.method == "GET" and r.body == b"" for r in stub.requests)


def test_metrics_and_openapi_are_text(stub, make_client):
    metrics = "# HELP http_requests_total HTTP requests\n# TYPE http_requests_total counter\nhttp_requests_total 3\n"
    stub.queue(Reply(200, metrics), Reply(200, "openapi: 3.1.0\ninfo:\n  title: event-api\n"), Reply(200, "1"))
    client = make_client(api_key="k")
    assert client.metrics() == metrics
    assert client.openapi() == "openapi: 3.1.0\ninfo:\n  title: event-api\n"
    assert client.metrics() == "1"  # text that happens to parse as JSON stays as sent
    assert [(r.method, r.target, r.headers.get("Authorization")) for r in stub.requests] == [
        ("GET", "/metrics", "Bearer k"), ("GET", "/openapi.yaml", "Bearer k"), ("GET", "/metrics", "Bearer k")]


def test_headers_without_api_key(stub, client):
    stub.queue(Reply(200, {"status": "ok"}))
    client.health()
    headers = stub.requests[0].headers
    assert "Authorization" not in headers
    assert headers["User-Agent"] == "event-client-python/%s" % event_client.__version__
    assert headers["Accept"] == "application/json"
    assert "Content-Type" not in headers
    assert headers["X-Request-Id"]


def test_headers_with_api_key_and_json_body(stub, make_client):
    stub.responder = accepted
    client = make_client(api_key="s3cret")
    client.track_event("c", "e")
    headers = stub.requests[0].headers
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(stub.requests[0].body)


def test_base_url_path_prefix_is_kept(stub, make_client):
    stub.queue(Reply(200, {"status": "ok"}))
    make_client(base_url=stub.url + "/api/v1/").health()
    assert stub.requests[0].target == "/api/v1/health"


def test_track_event_body(stub, client):
    stub.responder = accepted
    event_id = client.track_event(
        "conv 1",
        "llm_call",
        input="What is 2+2?",
        output="4 ✓",
        latency=123.5,
        error=True,
        timestamp="2026-11-27T10:00:00.123Z",
    )
    request = stub.requests[0]
    assert request.method == "POST" and request.target == "/event/"
    assert request.json == {
        "event_id": event_id,
        "conversation_id": "conv 1",
        "event_name": "llm_call",
        "input": "What is 2+2?",
        "output": "4 ✓",
        "latency": 123.5,
        "error": True,
        "timestamp": "2026-11-27T10:00:00.123Z",
    }
    assert "4 ✓".encode("utf-8") in request.body  # UTF-8, not \u escapes


def test_track_event_defaults_and_given_id(stub, client):
    stub.responder = accepted
    client.track_event("c", "e", event_id=ACCEPTED_ID.upper())
    body = stub.requests[0].json
    assert body["event_id"] == ACCEPTED_ID
    assert body["input"] == "" and body["output"] == ""
    assert body["latency"] == 0 and body["error"] is False
    assert "timestamp" not in body


def test_update_and_delete(stub, client):
    stub.queue(
        Reply(202, {"event_id": ACCEPTED_ID, "status": "accepted"}),
        Reply(202, {"event_id": ACCEPTED_ID, "status": "accepted"}),
    )
    assert client.update_event(ACCEPTED_ID, output="fixed", latency=5, error=False) == ACCEPTED_ID
    assert client.delete_event(ACCEPTED_ID) == ACCEPTED_ID
    put, delete = stub.requests
    assert put.method == "PUT" and put.target == "/event/" + ACCEPTED_ID
    assert put.json == {"output": "fixed", "latency": 5, "error": False}
    assert delete.method == "DELETE" and delete.target == "/event/" + ACCEPTED_ID
    assert delete.body == b""


def _paging_responder(events, page_cursor_prefix="cur-"):
    def respond(request):
        params = dict(request.query)
        limit = int(params["limit"])
        start = int(params["cursor"][len(page_cursor_prefix):]) if "cursor" in params else 0
        page = events[start : start + limit]
        stop = start + len(page)
        next_cursor = page_cursor_prefix + str(stop) if stop < len(events) else None
        return Reply(200, {"events": page, "next_cursor": next_cursor})

    return respond


def test_iter_conversation_follows_next_cursor(stub, client):
    events = [{"event_id": str(i), "timestamp": "2026-11-27T10:00:0%d.000Z" % i} for i in range(5)]
    stub.responder = _paging_responder(events)
    got = list(client.iter_conversation("conv/1", page_size=2))
    assert got == events
    assert [r.query for r in stub.requests] == [
        [("limit", "2")],
        [("limit", "2"), ("cursor", "cur-2")],
        [("limit", "2"), ("cursor", "cur-4")],
    ]
    assert all(r.path == "/events/conversation/conv%2F1" for r in stub.requests)


def test_iter_conversation_is_lazy_and_stops_on_repeated_cursor(stub, client):
    iterator = client.iter_conversation("c", page_size=1)
    assert stub.requests == []
    stub.queue(
        Reply(200, {"events": [{"event_id": "1"}], "next_cursor": "same"}),
        Reply(200, {"events": [{"event_id": "2"}], "next_cursor": "same"}),
    )
    assert next(iterator) == {"event_id": "1"}
    assert next(iterator) == {"event_id": "2"}
    with pytest.raises(ApiError) as raised:
        next(iterator)
    # Refused before asking again: a third request would also fail (the stub has no reply for it),
    # so the request count and the message are what show the repeated cursor was caught.
    assert len(stub.requests) == 2
    assert str(raised.value) == "malformed conversation page: bad next_cursor 'same'"


def test_client_is_usable_from_threads(stub, client):
    import threading

    stub.responder = accepted
    ids = []
    lock = threading.Lock()

    def work():
        for _ in range(10):
            event_id = client.track_event("c", "e")
            with lock:
                ids.append(event_id)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 40
    assert sorted(r.json["event_id"] for r in stub.requests) == sorted(ids)


def test_repr():
    assert "http://h:1" in repr(EventClient("http://h:1"))
