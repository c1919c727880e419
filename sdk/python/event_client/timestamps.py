"""Timestamp handling: ``datetime`` -> RFC 3339 UTC with milliseconds."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

__all__ = ["format_timestamp", "is_rfc3339"]

# RFC 3339 section 5.6 "date-time" (the separator may be "T", "t" or a space, as RFC 3339 allows).
_RFC3339 = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]"
    r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)


def is_rfc3339(value: str) -> bool:
    """Whether ``value`` is syntactically an RFC 3339 date-time (e.g. ``2026-11-27T10:00:00.123Z``)."""
    return bool(_RFC3339.match(value))


def format_timestamp(value: Any) -> str:
    """Convert a timestamp argument to the string sent to the API.

    * :class:`datetime.datetime`: converted to UTC and formatted as RFC 3339 with exactly three
      fractional digits and a ``Z`` suffix, e.g. ``2026-11-27T10:00:00.123Z``. Sub-millisecond
      digits are truncated (not rounded), matching the server's millisecond storage. A *naive*
      datetime (no ``tzinfo``) is taken to be UTC already.
    * :class:`str`: checked to be an RFC 3339 date-time and sent unchanged.

    Raises:
        ValueError: ``value`` is a string that is not RFC 3339.
        TypeError: ``value`` is neither a ``datetime`` nor a ``str``.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            dt = value.replace(tzinfo=timezone.utc)
        else:
            dt = value.astimezone(timezone.utc)
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
        return value
    raise TypeError("timestamp must be a datetime or an RFC 3339 string, not %s" % type(value).__name__)
