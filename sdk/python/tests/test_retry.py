"""Retry logic: 503s, connection failures and timeouts, backoff and Retry-After."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from event_client import ApiError, EventClient, NotFound, ServiceUnavailable, Unauthorized, ValidationError
from event_client.client import _parse_retry_after
from stubserver import ACCEPTED_ID, Reply, accepted, free_port

UNAVAILABLE = {"error": "broker unavailable", "field": None}


def test_503_twice_then_202_resends_the_same_event(stub, client, sleeps):
    stub.queue(
        Reply(503, UNAVAILABLE, {"Retry-After": "2"}),
        Reply(503, UNAVAILABLE),
    )
    stub.responder = accepted

    event_id = client.track_event("conv-1", "llm_call", input="2+2?", output="4", latency=12.5)

    assert len(stub.requests) == 3
    bodies = [r.body for r in stub.requests]
    assert bodies[0] == bodies[1] == bodies[2], "every attempt must send identical bytes"
    assert stub.requests[0].json["event_id"] == event_id
    assert all(r.method == "POST" and r.path == "/event/" for r in stub.requests)
    # One X-Request-Id per logical call, repeated on every attempt.
    assert len({r.headers["X-Request-Id"] for r in stub.requests}) == 1
    # random() == 0.5, backoff_base 0.1: jitter 0.05 then 0.1; Retry-After 2 wins the first time.
    assert sleeps.calls == [2.0, pytest.approx(0.1)]


def test_backoff_doubles_with_full_jitter_without_retry_after(stub, make_client, sleeps):
    stub.queue(Reply(503, UNAVAILABLE), Reply(503, UNAVAILABLE), Reply(503, UNAVAILABLE))
    stub.responder = accepted
    client = make_client(backoff_base=0.2, random=lambda: 0.25)
    client.track_event("c", "e")
    # random * min(backoff_max, base * 2**n) = 0.25 * (0.2, 0.4, 0.8)
    assert sleeps.calls == pytest.approx([0.05, 0.1, 0.2])


def test_retry_after_is_capped_by_backoff_max(stub, make_client, sleeps):
    stub.queue(Reply(503, UNAVAILABLE, {"Retry-After": "30"}))
    stub.responder = accepted
    client = make_client(backoff_max=5.0)
    client.track_event("c", "e")
    assert sleeps.calls == [5.0]


def test_retry_after_shorter_than_jitter_uses_the_jitter(stub, make_client, sleeps):
    stub.queue(Reply(503, UNAVAILABLE, {"Retry-After": "0"}))
    stub.responder = accepted
    client = make_client(backoff_base=1.0, random=lambda: 0.5)
    client.track_event("c", "e")
    assert sleeps.calls == [0.5]


def test_503_on_every_attempt_raises_service_unavailable(stub, make_client, sleeps):
    for _ in range(4):
        stub.queue(Reply(503, UNAVAILABLE, {"Retry-After": "1", "X-Request-Id": "req-42"}))
    client = make_client(retries=3)
    with pytest.raises(ServiceUnavailable) as info:
        client.track_event("c", "e")
    exc = info.value
    assert exc.status == 503
    assert exc.retry_after == 1.0
    assert exc.attempts == 4
    assert exc.request_id == "req-42"
    assert exc.message == "broker unavailable"
    assert len(stub.requests) == 4  # 1 attempt + 3 retries
    assert sleeps.calls == [1.0, 1.0, 1.0]


def test_retries_zero_means_a_single_attempt(stub, make_client, sleeps):
    stub.queue(Reply(503, UNAVAILABLE))
    client = make_client(retries=0)
    with pytest.raises(ServiceUnavailable) as info:
        client.get_event(ACCEPTED_ID)
    assert info.value.attempts == 1
    assert len(stub.requests) == 1
    assert sleeps.calls == []


def test_connection_refused_raises_service_unavailable_after_retries(sleeps):
    client = EventClient(
        "http://127.0.0.1:%d" % free_port(),
        retries=3,
        timeout=2.0,
        sleep=sleeps,
        random=lambda: 0.5,
    )
    with pytest.raises(ServiceUnavailable) as info:
        client.track_event("c", "e")
    exc = info.value
    assert exc.status is None
    assert exc.retry_after is None
    assert exc.attempts == 4
    assert exc.request_id  # the X-Request-Id the client sent
    assert isinstance(exc.__cause__, ConnectionRefusedError)
    assert sleeps.calls == pytest.approx([0.05, 0.1, 0.2])


def test_timeout_is_retried_with_the_same_event(stub, make_client, sleeps):
    stub.queue(Reply(202, {"event_id": ACCEPTED_ID, "status": "accepted"}, delay=1.5))
    stub.responder = accepted
    client = make_client(timeout=0.3)
    event_id = client.track_event("c", "e")
    assert len(stub.requests) == 2
    assert stub.requests[0].body == stub.requests[1].body
    assert stub.requests[1].json["event_id"] == event_id
    assert sleeps.calls == pytest.approx([0.05])


def test_dropped_connection_is_retried(stub, client, sleeps):
    stub.queue(Reply(drop=True))
    stub.queue(Reply(200, {"status": "ok"}))
    assert client.health() == {"status": "ok"}
    assert len(stub.requests) == 2
    assert len(sleeps.calls) == 1


def test_reads_are_retried_on_503(stub, client, sleeps):
    event = {"event_id": ACCEPTED_ID, "conversation_id": "c", "event_name": "e"}
    stub.queue(Reply(503, {"error": "clickhouse unavailable", "field": None}), Reply(200, event))
    assert client.get_event(ACCEPTED_ID) == event
    assert len(stub.requests) == 2


@pytest.mark.parametrize("status", [502, 504, 429, 408])
def test_proxy_answers_that_mean_not_now_are_retried_with_the_same_event(stub, client, sleeps, status):
    # A proxy or load balancer in front of the API: 502/504 when it got no answer from event-api,
    # 429 when it limits the rate, 408 when it timed the request out.
    stub.queue(Reply(status, "<html>gateway</html>", {"Retry-After": "1"}))
    stub.responder = accepted
    event_id = client.track_event("c", "e")
    assert len(stub.requests) == 2
    assert stub.requests[0].body == stub.requests[1].body
    assert stub.requests[1].json["event_id"] == event_id
    assert sleeps.calls == [1.0]


@pytest.mark.parametrize("status", [502, 504, 429, 408])
def test_proxy_answers_on_every_attempt_raise_service_unavailable_with_their_status(stub, make_client, sleeps, status):
    for _ in range(3):
        stub.queue(Reply(status, "<html>Bad Gateway</html>", {"X-Request-Id": "req-7"}))
    client = make_client(retries=2)
    with pytest.raises(ServiceUnavailable) as info:
        client.delete_event(ACCEPTED_ID)
    assert (info.value.status, info.value.attempts, info.value.request_id) == (status, 3, "req-7")
    assert info.value.message == "<html>Bad Gateway</html>"
    assert len(stub.requests) == 3
    assert [r.method for r in stub.requests] == ["DELETE"] * 3


@pytest.mark.parametrize(
    "status,error_class",
    [(400, ValidationError), (401, Unauthorized), (404, NotFound), (405, ApiError), (413, ApiError), (500, ApiError),
     (501, ApiError)],
)
def test_other_statuses_are_not_retried(stub, client, sleeps, status, error_class):
    stub.queue(Reply(status, {"error": "nope", "field": None}))
    with pytest.raises(error_class) as info:
        client.track_event("c", "e")
    assert type(info.value) is error_class
    assert (info.value.status, info.value.message, info.value.field) == (status, "nope", None)
    assert len(stub.requests) == 1
    assert sleeps.calls == []


def test_ready_is_not_retried_and_returns_the_503_report(stub, client, sleeps):
    report = {
        "status": "unavailable",
        "clickhouse": "ok",
        "kafka": "connection refused",
        "error": "kafka unavailable",
        "field": None,
    }
    stub.queue(Reply(503, report, {"Retry-After": "3"}))
    assert client.ready() == report
    assert len(stub.requests) == 1
    assert sleeps.calls == []


def test_ready_when_ready(stub, client):
    stub.queue(Reply(200, {"status": "ready", "clickhouse": "ok", "kafka": "ok"}))
    assert client.ready()["status"] == "ready"
    assert stub.requests[0].path == "/ready"


def test_retry_delay_bounds(stub):
    client = EventClient(stub.url, backoff_base=0.1, backoff_max=2.0, random=lambda: 0.999999)
    delays = [client.retry_delay(n) for n in range(12)]
    assert delays[0] == pytest.approx(0.1, rel=1e-4)
    assert delays[3] == pytest.approx(0.8, rel=1e-4)
    assert max(delays) <= 2.0
    assert delays[-1] == pytest.approx(2.0, rel=1e-4)
    assert client.retry_delay(10_000) <= 2.0  # no overflow with huge retry counts
    zero = EventClient(stub.url, random=lambda: 0.0)
    assert zero.retry_delay(5) == 0.0
    assert zero.retry_delay(5, retry_after=1.5) == 1.5


def test_parse_retry_after():
    assert _parse_retry_after("5") == 5.0
    assert _parse_retry_after(" 2.5 ") == 2.5
    assert _parse_retry_after("-3") == 0.0
    assert _parse_retry_after(None) is None
    assert _parse_retry_after("soon") is None
    assert _parse_retry_after("") is None
    now = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert _parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert _parse_retry_after(earlier, now=now.timestamp()) == 0.0


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"backoff_base": -0.1}, "backoff_base"),
        ({"backoff_max": float("inf")}, "backoff_max"),
        ({"api_key": ""}, "api_key"),
        ({"total_timeout": 0}, "total_timeout"),
        ({"total_timeout": float("inf")}, "total_timeout"),
    ],
)
def test_constructor_validation(stub, kwargs, field):
    with pytest.raises(ValidationError) as info:
        EventClient(stub.url, **kwargs)
    assert info.value.field == field


class FakeClock:
    """Monotonic seconds that only the recorded sleeps advance."""

    def __init__(self, sleeps):
        self.sleeps = sleeps

    def __call__(self) -> float:
        return sum(self.sleeps.calls)


def test_total_timeout_stops_the_retries_that_would_start_after_it(stub, make_client, sleeps):
    # Retry-After: 1 on every answer: retries at 1 s and 2 s; a third would start at 3 s > 2.5 s.
    stub.responder = lambda request: Reply(503, UNAVAILABLE, headers={"Retry-After": "1"})
    client = make_client(retries=10, total_timeout=2.5, clock=FakeClock(sleeps))
    with pytest.raises(ServiceUnavailable) as info:
        client.track_event("c", "e")
    assert (info.value.status, info.value.attempts) == (503, 3)
    assert sleeps.calls == [1.0, 1.0] and len(stub.requests) == 3


def test_total_timeout_also_bounds_connection_failures(sleeps):
    client = EventClient("http://127.0.0.1:%d" % free_port(), retries=10, backoff_base=1.0, backoff_max=1.0,
                         total_timeout=2.5, sleep=sleeps, random=lambda: 1.0, clock=FakeClock(sleeps))
    with pytest.raises(ServiceUnavailable) as info:
        client.get_event("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    assert info.value.attempts == 3 and info.value.status is None
    assert sleeps.calls == [1.0, 1.0]


def test_total_timeout_spans_the_requests_of_a_batch(stub, make_client, sleeps):
    # Kafka takes nothing: each round resends after at least 1 s (retries 10), until 2.5 s are used up.
    def refuse_all(request):
        events = request.json["events"]
        return Reply(207, {"accepted": 0, "rejected": len(events), "results": [
            {"index": i, "status": 503, "event_id": e["event_id"], "error": "Kafka did not accept the event: Local: Queue full",
             "field": None} for i, e in enumerate(events)]})
    stub.responder = refuse_all
    client = make_client(retries=10, total_timeout=2.5, clock=FakeClock(sleeps))
    result = client.track_events([{"conversation_id": "c", "event_name": "e"}])
    assert [item.status for item in result.results] == [503]
    assert sleeps.calls == [1.0, 1.0] and len(stub.requests) == 3
