"""UUIDv7 generation and timestamp formatting."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from event_client import ids as ids_module
from event_client import UUIDv7Generator, format_timestamp, new_event_id, uuid7, uuid7_unix_ms
from stubserver import accepted

UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_uuid7_layout():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert UUID7_RE.match(str(value))
    assert before <= uuid7_unix_ms(value) <= after + 1  # +1: a same-ms counter overflow
    text = new_event_id()
    assert UUID7_RE.match(text)
    assert text == text.lower()


def test_uuid7_bits_by_hand():
    generator = UUIDv7Generator(clock_ms=lambda: 0x0123456789AB)
    value = generator().int
    assert value >> 80 == 0x0123456789AB  # 48-bit unix ms
    assert (value >> 76) & 0xF == 0x7  # version
    assert (value >> 62) & 0x3 == 0b10  # variant
    assert str(generator()).startswith("01234567-89ab-7")


def test_uuid7_is_strictly_increasing_and_time_prefix_monotonic():
    values = [uuid7() for _ in range(20_000)]
    assert values == sorted(values, key=lambda u: u.int)
    assert len({v.int for v in values}) == len(values)
    prefixes = [uuid7_unix_ms(v) for v in values]
    assert all(a <= b for a, b in zip(prefixes, prefixes[1:]))
    # Lexicographic order of the strings follows generation order too.
    strings = [str(v) for v in values]
    assert strings == sorted(strings)


def test_uuid7_same_millisecond_and_counter_overflow():
    generator = UUIDv7Generator(clock_ms=lambda: 1_700_000_000_000)
    values = [generator() for _ in range(10_000)]  # more than the 12-bit counter holds
    assert [v.int for v in values] == sorted(v.int for v in values)
    assert len(set(values)) == len(values)
    prefixes = {uuid7_unix_ms(v) for v in values}
    assert min(prefixes) == 1_700_000_000_000
    assert max(prefixes) <= 1_700_000_000_000 + 10  # borrowed a few ms at most


def test_uuid7_clock_going_backwards_keeps_order():
    clock = [1_700_000_000_500]
    generator = UUIDv7Generator(clock_ms=lambda: clock[0])
    first = generator()
    clock[0] -= 1000
    second = generator()
    assert second.int > first.int
    assert uuid7_unix_ms(second) == uuid7_unix_ms(first)
    clock[0] += 5000
    third = generator()
    assert uuid7_unix_ms(third) == 1_700_000_004_500


def test_uuid7_thread_safety():
    generator = UUIDv7Generator()
    out = []
    lock = threading.Lock()

    def work():
        local = [generator() for _ in range(2000)]
        with lock:
            out.extend(local)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 8000


def test_uuid7_unix_ms_rejects_other_versions():
    with pytest.raises(ValueError):
        uuid7_unix_ms(uuid.uuid4())


def test_track_event_id_is_a_fresh_uuid7(stub, client):
    stub.responder = accepted
    before = time.time_ns() // 1_000_000
    event_id = client.track_event("c", "e")
    assert UUID7_RE.match(event_id)
    assert before <= uuid7_unix_ms(event_id) <= time.time_ns() // 1_000_000 + 1
    assert stub.requests[0].json["event_id"] == event_id


@pytest.mark.parametrize(
    "value,expected",
    [
        (datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=timezone.utc), "2026-11-27T10:00:00.123Z"),
        (datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc), "2026-11-27T10:00:00.000Z"),
        (datetime(2026, 11, 27, 10, 0, 0, 999999, tzinfo=timezone.utc), "2026-11-27T10:00:00.999Z"),
        (datetime(2026, 11, 27, 10, 0, 0, 1000), "2026-11-27T10:00:00.001Z"),  # naive = UTC
        (
            datetime(2026, 11, 27, 1, 30, 0, 500000, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-26T23:30:00.500Z",
        ),
        (
            datetime(2026, 12, 31, 20, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2027-01-01T01:00:00.000Z",
        ),
        (datetime(1970, 1, 1, tzinfo=timezone.utc), "1970-01-01T00:00:00.000Z"),
        (datetime(2105, 12, 31, 23, 59, 59, 999999), "2105-12-31T23:59:59.999Z"),
        ("2026-11-27T10:00:00.123Z", "2026-11-27T10:00:00.123Z"),
        ("2026-11-27T10:00:00+01:00", "2026-11-27T10:00:00+01:00"),
        ("2026-11-27t10:00:00.5z", "2026-11-27t10:00:00.5z"),
        # The edges of the stored range as the server reads strings: the offset applied, digits
        # past milliseconds dropped, a leap second as :59.
        ("1970-01-01T01:00:00+01:00", "1970-01-01T01:00:00+01:00"),
        ("2105-12-31T23:59:59.999999Z", "2105-12-31T23:59:59.999999Z"),
        ("2105-12-31T23:59:60Z", "2105-12-31T23:59:60Z"),
        ("2105-12-31T18:59:59-05:00", "2105-12-31T18:59:59-05:00"),
    ],
)
def test_format_timestamp(value, expected):
    assert format_timestamp(value) == expected


@pytest.mark.parametrize(
    "value", ["2026-11-27", "2026-11-27T10:00:00", "2026-13-01T00:00:00Z", "10:00:00Z", "", "2026-11-27T10:00:00.Z"]
)
def test_format_timestamp_rejects_non_rfc3339(value):
    with pytest.raises(ValueError) as info:
        format_timestamp(value)
    assert str(info.value) == "not an RFC 3339 date-time: %r" % value


@pytest.mark.parametrize(
    "value", ["2026-11-27T10:00:00Z\n", "\uff12\uff10\uff12\uff16-11-27T10:00:00Z", "2026-02-30T10:00:00Z", "2025-02-29T00:00:00Z"]
)
def test_format_timestamp_rejects_strings_the_server_refuses(value):
    with pytest.raises(ValueError) as info:
        format_timestamp(value)
    assert str(info.value) == "not an RFC 3339 date-time: %r" % value


@pytest.mark.parametrize(
    "value,shown",
    [
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), "1969-12-31T23:59:59.999999+00:00"),
        (datetime(1970, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), "1970-01-01T00:30:00+01:00"),
        (datetime(2106, 1, 1), "2106-01-01T00:00:00"),
        (datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), "0001-01-01T00:30:00+01:00"),
    ],
)
def test_format_timestamp_rejects_datetimes_out_of_range(value, shown):
    with pytest.raises(ValueError) as info:
        format_timestamp(value)
    assert str(info.value) == "timestamp must be from 1970-01-01 to 2105-12-31 (UTC), got " + shown


@pytest.mark.parametrize(
    "value",
    ["2200-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1970-01-01T00:30:00+01:00", "2105-12-31T23:00:00-05:00",
     "2106-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
)
def test_format_timestamp_rejects_strings_out_of_range(value):
    # Found in review: strings were checked for their form only, so BackgroundSender queued
    # events the server refuses with a 400, and reported them only later.
    with pytest.raises(ValueError) as info:
        format_timestamp(value)
    assert str(info.value) == "timestamp must be from 1970-01-01 to 2105-12-31 (UTC), got " + value


def test_a_forked_child_makes_ids_when_the_generator_was_busy_at_the_fork():
    # Found in review: a thread held the id generator's lock at the fork (os.urandom releases the
    # interpreter's lock inside it), and the child's first id waited for ever.
    generator = ids_module._default_generator
    held, release = threading.Event(), threading.Event()

    def hold():
        with generator._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        pid = os.fork()
        if pid == 0:  # the child: killed by the alarm if it hangs
            signal.alarm(5)
            try:
                os._exit(0 if UUID7_RE.match(new_event_id()) else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.waitstatus_to_exitcode(status) == 0


def test_format_timestamp_rejects_other_types():
    with pytest.raises(TypeError) as info:
        format_timestamp(1_700_000_000)
    assert str(info.value) == "timestamp must be a datetime or an RFC 3339 string, not int"


def test_track_event_sends_formatted_datetime(stub, client):
    stub.responder = accepted
    when = datetime(2026, 11, 27, 11, 0, 0, 123999, tzinfo=timezone(timedelta(hours=1)))
    client.track_event("c", "e", timestamp=when)
    assert stub.requests[0].json["timestamp"] == "2026-11-27T10:00:00.123Z"
