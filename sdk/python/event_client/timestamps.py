"""Timestamp handling: ``datetime`` -> RFC 3339 UTC with milliseconds."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timezone
from typing import Any, Tuple

__all__ = ["format_timestamp", "is_rfc3339"]

# RFC 3339 section 5.6 "date-time" (the separator may be "T", "t" or a space, as RFC 3339 allows).
# ASCII digits only ("\d" would take any Unicode digit) and nothing after the offset ("$" would
# allow a final line break).
_RFC3339 = re.compile(
    r"([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)

#: The event times the API stores (its DateTime column): 1970-01-01 to 2105-12-31, in UTC.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2105, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)


#: The same range in Unix milliseconds, as the server checks a timestamp string.
EARLIEST_MS = 0
LATEST_MS = 4_291_747_199_999


def _unix_ms(value: str) -> int:
    """Unix milliseconds of an RFC 3339 date-time, read as the server reads it: the offset
    applied, digits past the milliseconds dropped, a leap second (``:60``) taken as ``:59``."""
    match = _RFC3339.fullmatch(value)
    assert match is not None
    days = (date(int(match.group(1)), int(match.group(2)), int(match.group(3))) - date(1970, 1, 1)).days
    hour, minute, second = int(value[11:13]), int(value[14:16]), min(int(value[17:19]), 59)
    fraction = (match.group(6) or ".")[1:4]
    milliseconds = int(fraction.ljust(3, "0")) if fraction else 0
    offset = 0
    zone = match.group(7)
    if zone not in ("Z", "z"):
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60 * (-1 if zone[0] == "-" else 1)
    return (days * 86_400 + hour * 3600 + minute * 60 + second - offset) * 1000 + milliseconds


def is_rfc3339(value: str) -> bool:
    """Whether ``value`` is an RFC 3339 date-time (e.g. ``2026-11-27T10:00:00.123Z``) of a day
    that exists (no 30 February)."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    try:
        date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return False
    return True


def format_timestamp(value: Any) -> str:
    """Convert a timestamp argument to the string sent to the API.

    * :class:`datetime.datetime`: converted to UTC and formatted as RFC 3339 with exactly three
      fractional digits and a ``Z`` suffix, e.g. ``2026-11-27T10:00:00.123Z``. Sub-millisecond
      digits are truncated (not rounded), matching the server's millisecond storage. A *naive*
      datetime (no ``tzinfo``) is taken to be UTC already. It must be within 1970-01-01 to
      2105-12-31 (UTC), the range the API stores.
    * :class:`str`: checked to be an RFC 3339 date-time within the same range (the offset
      applied) and sent unchanged.

    Raises:
        ValueError: ``value`` is a string that is not RFC 3339, or a datetime or string out of range.
        TypeError: ``value`` is neither a ``datetime`` nor a ``str``.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            dt = value.replace(tzinfo=timezone.utc)
        else:
            try:
                dt = value.astimezone(timezone.utc)
            except OverflowError:  # e.g. 0001-01-01T00:30+01:00, before year 1 in UTC
                dt = None
        if dt is None or not EARLIEST <= dt <= LATEST:
            raise ValueError(
                "timestamp must be from 1970-01-01 to 2105-12-31 (UTC), got %s" % value.isoformat()
            )
        return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
            dt.year,
            dt.month,
            dt.day,
            dt.hour,
            dt.minute,
            dt.second,
            dt.microsecond // 1000,
        )
    if isinstance(value, str):
        if not is_rfc3339(value):
            raise ValueError("not an RFC 3339 date-time: %r" % value)
        if not EARLIEST_MS <= _unix_ms(value) <= LATEST_MS:
            raise ValueError("timestamp must be from 1970-01-01 to 2105-12-31 (UTC), got %s" % value)
        return value
    raise TypeError("timestamp must be a datetime or an RFC 3339 string, not %s" % type(value).__name__)


_second_text: Tuple[int, str] = (-1, "")  # the last whole second formatted, shared by threads


def utc_now_text() -> str:
    """Now as :func:`format_timestamp` writes it, ``2026-12-07T16:20:00.123Z``, without a datetime:
    the second's text is kept, since a busy tracker asks many times a second."""
    global _second_text
    now = time.time()
    second = int(now)
    cached, text = _second_text
    if cached != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_text = (second, text)  # one tuple rebound: safe between threads
    return "%s.%03dZ" % (text, int((now - second) * 1000))
