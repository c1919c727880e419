"""The :class:`EventClient`: a synchronous, thread-safe client for event-api."""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import logging
import math
import numbers
import os
import random as _random_module
import select
import ssl
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)
from urllib.parse import quote, urlencode, urlsplit

from ._version import __version__
from .errors import (
    ApiError,
    EventClientError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from .ids import new_event_id, normalize_uuid
from .models import BatchItemResult, BatchResult
from .timestamps import format_timestamp

__all__ = ["EventClient"]

logger = logging.getLogger("event_client")

#: Most items the server accepts in one ``POST /events/batch``.
MAX_BATCH_ITEMS = 1000
#: Largest ``POST /events/batch`` body the server accepts (5 MiB).
MAX_BATCH_BYTES = 5 * 1024 * 1024
#: Largest body of a single-event write the server can take (``API_MAX_BODY_BYTES`` at its maximum).
MAX_EVENT_BYTES = 1024 * 1024
#: Longest ``conversation_id`` / ``event_name`` (in characters, i.e. Unicode code points).
MAX_NAME_CHARS = 256
#: Longest per-attempt ``timeout`` (a day).
MAX_TIMEOUT_SECONDS = 86_400

_UPDATABLE_FIELDS = ("event_name", "input", "output", "latency", "error")
_NOT_UPDATABLE_FIELDS = ("conversation_id", "timestamp", "event_id")
_MAX_EXPONENT = 62  # keeps backoff_base * 2**n finite whatever the number of retries
_BATCH_OVERHEAD = len(b'{"events":[]}')
_SEND_PIECE = 64 * 1024
#: Smallest batch body sent gzip-compressed: below it the header costs about what it saves.
_COMPRESS_FROM = 1024


class _Response:
    """A received HTTP response (internal)."""

    __slots__ = ("status", "headers", "body", "text")

    def __init__(self, status: int, headers: Any, body: Any, text: str = "") -> None:
        self.status = status
        self.headers = headers
        self.body = body  # the decoded JSON, else the text, else None
        self.text = text

    def header(self, name: str) -> Optional[str]:
        value = self.headers.get(name)
        return None if value is None else str(value)


#: Answers that say "not now" rather than "not this request", retried like a failed connection:
#: 503 from event-api (broker or ClickHouse down, queue full); 502 and 504 from a proxy in front of
#: it (no answer from event-api: the same doubt as a refused connection or a timeout, and every
#: write is safe to send again, see the README); 408 and 429 from a server or proxy that timed out
#: the request or limits its rate.
_TRANSIENT_STATUSES = frozenset((408, 429, 502, 503, 504))


def _parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds, or an HTTP date), else ``None``."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = time.time() if now is None else now
        seconds = when.timestamp() - current
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _encode_segment(value: str) -> str:
    """Percent-encode one path segment: everything but RFC 3986 unreserved characters, so ``/``,
    spaces, ``?``, ``#``, ``%`` and non-ASCII (as UTF-8) are escaped. A segment made only of dots
    is escaped too, so no client, proxy or server can mistake it for ``.``/``..``."""
    encoded = quote(value, safe="")
    if encoded and set(encoded) == {"."}:
        encoded = "%2E" * len(encoded)
    return encoded


def _is_visible_ascii(value: str, allow_empty: bool = False) -> bool:
    """Whether ``value`` is made of the characters ``!`` to ``~`` only (what a header token or a
    URL may hold as is: no spaces, control characters, line breaks or non-ASCII)."""
    return (allow_empty or bool(value)) and all("!" <= c <= "~" for c in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_encodable(field: str, value: str) -> None:
    """A lone surrogate (e.g. from a bad decode) has no UTF-8 form, so it cannot be sent."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            "%s has a character with no UTF-8 form at position %d (a lone surrogate)"
            % (field, exc.start),
            field=field,
        ) from None


def _check_name(field: str, value: Any, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise ValidationError(
            "%s must be a string, not %s" % (field, type(value).__name__), field=field
        )
    _check_encodable(field, value)
    if not 1 <= len(value) <= MAX_NAME_CHARS:
        raise ValidationError(
            "%s must be 1..%d characters long (got %d)" % (field, MAX_NAME_CHARS, len(value)),
            field=field,
        )


def _check_text(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ValidationError(
            "%s must be a string, not %s" % (field, type(value).__name__), field=field
        )
    _check_encodable(field, value)


def _check_latency(value: Any, field: str = "latency") -> float:
    if not _is_number(value):
        raise ValidationError(
            "%s must be a number of milliseconds, not %s" % (field, type(value).__name__),
            field=field,
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValidationError("%s must be a finite number >= 0" % field, field=field)
    return value if isinstance(value, int) else number


def _check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValidationError(
            "%s must be a bool, not %s" % (field, type(value).__name__), field=field
        )


def _check_int_range(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(
            "%s must be an integer, not %s" % (field, type(value).__name__), field=field
        )
    if not low <= value <= high:
        raise ValidationError(
            "%s must be in %d..%d (got %d)" % (field, low, high, value), field=field
        )
    return int(value)


def _event_id_arg(value: Any, field: str = "event_id") -> str:
    normalized = normalize_uuid(value)
    if normalized is None:
        raise ValidationError("%s must be a UUID, got %r" % (field, value), field=field)
    return normalized


def _timestamp_arg(value: Any, field: str = "timestamp") -> str:
    try:
        return format_timestamp(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(str(exc), field=field) from None


def _create_body(
    conversation_id: Any,
    event_name: Any,
    input: Any,
    output: Any,
    latency: Any,
    error: Any,
    timestamp: Any,
    event_id: Any,
) -> Dict[str, Any]:
    """A create's JSON body, checked as far as the client can (``ValidationError``), with its id
    assigned here (a UUIDv7 unless ``event_id`` is given) so that every resend carries it."""
    _check_name("conversation_id", conversation_id)
    _check_name("event_name", event_name)
    _check_text("input", input)
    _check_text("output", output)
    latency = _check_latency(latency)
    _check_bool("error", error)
    body: Dict[str, Any] = {
        "event_id": new_event_id() if event_id is None else _event_id_arg(event_id),
        "conversation_id": conversation_id,
        "event_name": event_name,
        "input": input,
        "output": output,
        "latency": latency,
        "error": error,
    }
    if timestamp is not None:
        body["timestamp"] = _timestamp_arg(timestamp)
    return body


def _closed_by_peer(sock: Any) -> bool:
    """Whether an idle kept-alive socket was closed by the server: it is readable (end of stream,
    or bytes no request asked for) while no request is outstanding. poll(), not select(), which
    fails for descriptors above 1023 (a busy process) and would end keep-alive there."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8"
    )


class EventClient:
    """Client for the event-analytics HTTP API (event-api).

    Args:
        base_url: Root of the API, e.g. ``"http://localhost:8080"`` (a path prefix such as
            ``"https://host/analytics"`` is kept in front of every route).
        api_key: Sent as ``Authorization: Bearer <api_key>`` when given.
        timeout: Seconds allowed, per attempt, for connecting, for each read, and for each
            64 KiB of the body to be sent. Longer by default than the server's 10 s wait for the
            broker, so that a write the broker does not take gets the server's 503 (retried)
            rather than a timeout. At most :data:`MAX_TIMEOUT_SECONDS`.
        retries: Retries after the first attempt on 503 answers (and 502, 504, 408, 429, which
            proxies send), connection failures and timeouts (``0`` disables retrying). Other 4xx
            answers are never retried.
        backoff_base: Ceiling of the first retry delay, in seconds; doubled for every retry.
        backoff_max: Upper bound of any single retry delay, in seconds (applies to
            ``Retry-After`` too, see :meth:`retry_delay`).
        total_timeout: When set, seconds after which a call starts no more retries (nor a retry
            delay that would end after them) and raises what it last got. An attempt already
            under way still has its ``timeout``. ``track_events`` counts it over all its requests.
        clock: Monotonic seconds (default :func:`time.monotonic`), for ``total_timeout``.
        sleep: Called with the delay in seconds before each retry (default :func:`time.sleep`).
        random: Returns a float in ``[0, 1)`` for the jitter (default :func:`random.random`).
        ssl_context: TLS settings for ``https://`` base URLs (default: system trust store).
        user_agent: Overrides the ``User-Agent`` header
            (default ``event-client-python/<version>``).
        compress_batches: Send each ``POST /events/batch`` body of 1 KiB or more gzip-compressed
            (``Content-Encoding: gzip``; JSON events shrink several times). The server's limits
            apply to the JSON, so batches are split as without it. When a server shows that it
            does not read gzip (a 415 whose ``Accept-Encoding`` does not list gzip, or the 400
            ``malformed JSON: invalid value at byte 0`` of an event-api from before gzip bodies),
            the body goes again at once uncompressed, and this client stops compressing.

    Each thread keeps one connection alive between its calls (and each process: a connection is
    never used across ``fork()``), so one instance can be shared by threads. :meth:`close` closes
    the calling thread's connection.

    Every method that can send a request raises :class:`~event_client.ValidationError` (with
    ``status is None``) before sending anything when an argument is obviously invalid.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = 15.0,
        retries: int = 3,
        backoff_base: float = 0.1,
        backoff_max: float = 5.0,
        *,
        total_timeout: Optional[float] = None,
        sleep: Optional[Callable[[float], Any]] = None,
        random: Optional[Callable[[], float]] = None,
        clock: Optional[Callable[[], float]] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        user_agent: Optional[str] = None,
        compress_batches: bool = True,
    ) -> None:
        if not isinstance(base_url, str):
            raise ValidationError("base_url must be a string", field="base_url")
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                "base_url must be an http:// or https:// URL with a host, got %r" % base_url,
                field="base_url",
            )
        if parts.query or parts.fragment:
            raise ValidationError("base_url must not have a query or fragment", field="base_url")
        try:
            port = parts.port
        except ValueError:
            raise ValidationError("base_url has an invalid port", field="base_url") from None
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValidationError("api_key must be a non-empty string", field="api_key")
        if api_key is not None and not _is_visible_ascii(api_key):
            raise ValidationError(
                "api_key must be visible ASCII characters (no spaces or line breaks)", field="api_key"
            )
        if user_agent is not None and not _is_visible_ascii(user_agent.replace(" ", "")):
            raise ValidationError(
                "user_agent must be printable ASCII characters", field="user_agent"
            )
        if not _is_visible_ascii(parts.path, allow_empty=True):
            raise ValidationError(
                "base_url's path must be percent-encoded ASCII without spaces, got %r" % parts.path,
                field="base_url",
            )
        # Bounded: the socket layer counts in 64-bit nanoseconds, and an infinite or huge timeout
        # made every request fail with OverflowError.
        if not _is_number(timeout) or not 0 < float(timeout) <= MAX_TIMEOUT_SECONDS:
            raise ValidationError("timeout must be a number of seconds > 0 and at most %d" % MAX_TIMEOUT_SECONDS, field="timeout")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationError("retries must be an integer >= 0", field="retries")
        for name, value in (("backoff_base", backoff_base), ("backoff_max", backoff_max)):
            if not _is_number(value) or not 0 <= float(value) < math.inf:
                raise ValidationError("%s must be a finite number >= 0" % name, field=name)
        if total_timeout is not None and (not _is_number(total_timeout) or not 0 < float(total_timeout) < math.inf):
            raise ValidationError("total_timeout must be a finite number > 0", field="total_timeout")
        if not isinstance(compress_batches, bool):
            raise ValidationError("compress_batches must be True or False", field="compress_batches")

        self.base_url = base_url.strip().rstrip("/")
        self.api_key = api_key
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.total_timeout = None if total_timeout is None else float(total_timeout)
        self.user_agent = user_agent or "event-client-python/%s" % __version__
        self.compress_batches = compress_batches
        self._sleep: Callable[[float], Any] = sleep if sleep is not None else time.sleep
        self._random: Callable[[], float] = random if random is not None else _random_module.random
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        # Explicit even when the URL has none: http.client would read the host "::1" of
        # http://[::1] as host ":" and port 1.
        self._port = port if port is not None else (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._ssl_context = ssl_context
        # One kept-alive connection per thread: a new connection per call would cost a TCP (and
        # TLS) handshake each time and leave a socket in TIME_WAIT, which runs out of local
        # ports at a few hundred calls a second.
        self._connections = threading.local()

    def __repr__(self) -> str:
        return "EventClient(%r, retries=%d, timeout=%g)" % (self.base_url, self.retries, self.timeout)

    def close(self) -> None:
        """Close the calling thread's kept-alive connection (other threads' close when they end)."""
        connection = getattr(self._connections, "connection", None)
        self._connections.connection = None
        if connection is not None:
            connection.close()

    def __enter__(self) -> "EventClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def track_event(
        self,
        conversation_id: str,
        event_name: str,
        input: str = "",
        output: str = "",
        latency: float = 0.0,
        error: bool = False,
        timestamp: Any = None,
        event_id: Any = None,
    ) -> str:
        """Create one event (``POST /event/``) and return its id.

        The id is generated here (a UUIDv7) unless ``event_id`` is given, *before* the first
        attempt, and every retry sends the same body: a create that reached the broker but whose
        answer was lost is not duplicated (the pipeline ignores a second create with the same id).

        Args:
            conversation_id: Session id, 1..256 characters.
            event_name: Event type, 1..256 characters.
            input: Free text (e.g. the prompt).
            output: Free text (e.g. the completion).
            latency: Milliseconds, ``>= 0``, may be fractional.
            error: Whether the event is an error.
            timestamp: ``datetime`` (sent as RFC 3339 UTC with milliseconds; naive = UTC) or an
                RFC 3339 string (sent as is). Default: the time the server receives the event.
            event_id: A UUID (``str`` or :class:`uuid.UUID`) to use instead of a generated one.

        Returns:
            The event id (lower-case hyphenated UUID).

        Raises:
            ValidationError: invalid argument (client side) or 400 from the server.
            Unauthorized, ServiceUnavailable, ApiError: see :mod:`event_client.errors`.
        """
        body = _create_body(conversation_id, event_name, input, output, latency, error, timestamp, event_id)
        eid = body["event_id"]
        response = self._request("POST", "/event/", body=body, max_bytes=MAX_EVENT_BYTES)
        returned = response.body.get("event_id") if isinstance(response.body, dict) else None
        return returned if isinstance(returned, str) and returned else eid

    def track_events(self, events: Iterable[Mapping[str, Any]]) -> BatchResult:
        """Create many events with ``POST /events/batch`` and return per-item results.

        Each item is a mapping with the fields of :meth:`track_event` (``conversation_id``,
        ``event_name``, ``input``, ``output``, ``latency``, ``error``, ``timestamp``,
        ``event_id``). Items without an ``event_id`` (or with ``None``) get a UUIDv7 assigned here,
        before the first attempt, so retries are idempotent; ``datetime`` timestamps are formatted
        as in :meth:`track_event`. The caller's mappings are not modified.

        Field values are validated by the server, item by item: an invalid item is reported in
        the result (``status`` 400, ``error``, ``field``) and does not fail the others. Only what
        cannot be sent at all raises :class:`ValidationError` before any request (an item that is
        not a mapping, a NaN/infinite number, a timestamp of an unsupported type or a ``datetime``
        outside 1970-2105). An item too large for any request gets a 413 result and is not sent.
        Items Kafka did not take (503 in the result) are sent again with the same ids, up to
        ``retries`` times.

        Lists over 1000 items (or over the 5 MiB body limit) are sent as several consecutive
        requests; ``results[i].index`` is always the position in ``events``. An empty list sends
        nothing and returns an empty result.

        If a request fails (after its retries), the exception raised carries
        ``exc.partial_result``: the results of the items answered so far, and ``item_ids`` with
        the id of every item. Re-sending the items that have no result or a 503 result, each with
        its id from ``item_ids``, is safe.

        Returns:
            A :class:`BatchResult`.
        """
        items = list(events)
        encoded: List[bytes] = []
        assigned: List[Optional[str]] = []
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValidationError(
                    "events[%d] must be a mapping, not %s" % (index, type(item).__name__),
                    field="events[%d]" % index,
                )
            body = dict(item)
            raw_id = body.get("event_id")
            if raw_id is None:
                body["event_id"] = new_event_id()
            else:
                # The same forms as track_event (UUID objects, upper case, no hyphens); anything
                # else is sent as given, for the server to refuse as this item's 400.
                body["event_id"] = normalize_uuid(raw_id) or raw_id
            if "timestamp" in body and body["timestamp"] is None:
                del body["timestamp"]
            elif isinstance(body.get("timestamp"), datetime):
                body["timestamp"] = _timestamp_arg(
                    body["timestamp"], field="events[%d].timestamp" % index
                )
            assigned.append(body["event_id"] if isinstance(body["event_id"], str) else None)
            encoded.append(self._encode_batch_item(index, body))

        results: List[Optional[BatchItemResult]] = [None] * len(items)
        for index, item_bytes in enumerate(encoded):
            if len(item_bytes) + _BATCH_OVERHEAD > MAX_BATCH_BYTES:
                # No request can carry it; the others still go.
                results[index] = BatchItemResult(
                    index=index,
                    status=413,
                    event_id=assigned[index],
                    error="the item is %d bytes of JSON, over the %d-byte limit of a batch request"
                    % (len(item_bytes), MAX_BATCH_BYTES - _BATCH_OVERHEAD),
                )
        to_send = [index for index in range(len(items)) if results[index] is None]
        round_number = 0
        started = self._clock()
        while to_send:
            for chunk in self._batch_chunks(to_send, encoded):
                data = b'{"events":[' + b",".join(encoded[i] for i in chunk) + b"]}"
                try:
                    response = self._request(
                        "POST", "/events/batch", data=data, started=started, compress=self.compress_batches
                    )
                    self._merge_batch(results, response, chunk, assigned)
                except EventClientError as exc:
                    exc.partial_result = BatchResult.of(results, assigned)
                    raise
            # Items Kafka did not take (per-item 503) are sent again, with the same ids.
            to_send = [index for index in to_send if results[index].status == 503]  # type: ignore[union-attr]
            if not to_send or round_number >= self.retries:
                break
            # The server's 503 for a single event says Retry-After: 1; a 207 carries no header,
            # so its refused items wait as long, not just the bare jitter.
            delay = self.retry_delay(round_number, retry_after=1.0)
            if self._out_of_time(started, delay):
                break  # the items still refused keep their 503
            logger.debug(
                "POST /events/batch: %d item(s) not taken by Kafka (round %d), resending in %.3fs",
                len(to_send),
                round_number + 1,
                delay,
            )
            self._sleep(delay)
            round_number += 1
        return BatchResult.of(results, assigned)

    def update_event(self, event_id: Any, /, **fields: Any) -> str:
        """Change fields of an event (``PUT /event/{id}``) and return its id.

        Updatable fields: ``event_name``, ``input``, ``output``, ``latency``, ``error``.
        ``conversation_id``, ``timestamp`` and ``event_id`` cannot be updated.

        The server answers 202 once the update is on the broker; it becomes visible to reads a
        little later. Updating an id that was never created is accepted too (the pipeline sends
        it to the dead-letter topic).

        Example:
            ``client.update_event(eid, output="fixed", error=False)``

        Raises:
            ValidationError: invalid id, no fields, a field that cannot be updated or is
                unknown (``field`` names it), an invalid value, or 400 from the server.
        """
        eid = _event_id_arg(event_id)
        if not fields:
            raise ValidationError("no fields to update")
        for name, value in fields.items():
            if name in _NOT_UPDATABLE_FIELDS:
                raise ValidationError("field cannot be updated", field=name)
            if name not in _UPDATABLE_FIELDS:
                raise ValidationError("unknown field", field=name)
            if name == "event_name":
                _check_name(name, value)
            elif name in ("input", "output"):
                _check_text(name, value)
            elif name == "latency":
                fields[name] = _check_latency(value)
            else:
                _check_bool(name, value)
        self._request("PUT", "/event/" + _encode_segment(eid), body=fields, max_bytes=MAX_EVENT_BYTES)
        return eid

    def delete_event(self, event_id: Any) -> str:
        """Soft-delete an event (``DELETE /event/{id}``) and return its id.

        Reads stop returning the event once the pipeline has processed the deletion.
        """
        eid = _event_id_arg(event_id)
        self._request("DELETE", "/event/" + _encode_segment(eid))
        return eid

    # ------------------------------------------------------------------- reads

    def get_event(self, event_id: Any) -> Dict[str, Any]:
        """Return the latest version of an event (``GET /event/{id}``).

        The dict has ``event_id``, ``conversation_id``, ``event_name``, ``input``, ``output``,
        ``latency`` (float, ms), ``error`` (bool) and ``timestamp`` (RFC 3339 UTC string).

        Raises:
            NotFound: unknown or deleted event (or not written to storage yet).
        """
        eid = _event_id_arg(event_id)
        return self._get_json("/event/" + _encode_segment(eid))

    def get_conversation(
        self, conversation_id: str, limit: int = 100, cursor: Optional[str] = None
    ) -> Dict[str, Any]:
        """Return one page of a conversation's events
        (``GET /events/conversation/{conversation_id}``).

        Events are ordered by timestamp, then event id. The result is
        ``{"events": [...], "next_cursor": str | None}``; pass ``next_cursor`` back as ``cursor``
        for the next page (``None`` on the last page). See also :meth:`iter_conversation`.

        Args:
            conversation_id: 1..256 characters; any characters (it is URL-encoded).
            limit: Page size, 1..1000.
            cursor: Opaque cursor from a previous page.
        """
        _check_name("conversation_id", conversation_id)
        limit = _check_int_range("limit", limit, 1, 1000)
        query: List[Tuple[str, str]] = [("limit", str(limit))]
        if cursor is not None:
            if not isinstance(cursor, str) or not cursor:
                raise ValidationError("cursor must be a non-empty string", field="cursor")
            _check_encodable("cursor", cursor)
            query.append(("cursor", cursor))
        return self._get_json(
            "/events/conversation/" + _encode_segment(conversation_id), query=query
        )

    def iter_conversation(self, conversation_id: str, page_size: int = 100) -> Iterator[Dict[str, Any]]:
        """Yield every event of a conversation, in order, fetching pages of ``page_size``
        (1..1000) and following ``next_cursor``. Arguments are validated immediately."""
        _check_name("conversation_id", conversation_id)
        page_size = _check_int_range("page_size", page_size, 1, 1000)

        def pages() -> Iterator[Dict[str, Any]]:
            cursor: Optional[str] = None
            while True:
                page = self.get_conversation(conversation_id, limit=page_size, cursor=cursor)
                events = page.get("events")
                if not isinstance(events, list):
                    raise ApiError("malformed conversation page: no events list", body=page)
                for event in events:
                    yield event
                next_cursor = page.get("next_cursor")
                if next_cursor is None:
                    return
                if not isinstance(next_cursor, str) or not next_cursor or next_cursor == cursor:
                    raise ApiError("malformed conversation page: bad next_cursor %r" % (next_cursor,), body=page)
                cursor = next_cursor

        return pages()

    def get_error_counts(self, event_name: Optional[str] = None, days: int = 7) -> Dict[str, Any]:
        """Daily error counts (``GET /analytics/errors``).

        Returns ``{"event_name": str | None, "days": int, "counts": [{"date": "YYYY-MM-DD",
        "errors": int, "total": int}, ...]}`` with one entry per UTC day that has events,
        ascending.

        Args:
            event_name: Only this event type (all events when ``None``).
            days: Window in days, 1..365.
        """
        _check_name("event_name", event_name, required=False)
        days = _check_int_range("days", days, 1, 365)
        query: List[Tuple[str, str]] = []
        if event_name is not None:
            query.append(("event_name", event_name))
        query.append(("days", str(days)))
        return self._get_json("/analytics/errors", query=query)

    def get_latency(self, limit: int = 100) -> Dict[str, Any]:
        """p95 latency per event type per session, highest first (``GET /analytics/latency``).

        Returns ``{"results": [{"conversation_id", "event_name", "p95_latency", "count"}, ...]}``.

        Args:
            limit: Number of rows, 1..1000.
        """
        limit = _check_int_range("limit", limit, 1, 1000)
        return self._get_json("/analytics/latency", query=[("limit", str(limit))])

    def get_top_error_sessions(self, limit: int = 10) -> Dict[str, Any]:
        """Sessions ranked by error rate, then error count (``GET /analytics/sessions/top-errors``).

        Returns ``{"sessions": [{"conversation_id", "errors", "total", "error_rate"}, ...]}``.

        Args:
            limit: Number of sessions, 1..1000.
        """
        limit = _check_int_range("limit", limit, 1, 1000)
        return self._get_json("/analytics/sessions/top-errors", query=[("limit", str(limit))])

    def metrics(self) -> str:
        """The API's Prometheus metrics (``GET /metrics``), as the exposition text."""
        return self._get_text("/metrics")

    def openapi(self) -> str:
        """The API's OpenAPI 3.1 document (``GET /openapi.yaml``), as YAML text."""
        return self._get_text("/openapi.yaml")

    def health(self) -> Dict[str, Any]:
        """Liveness (``GET /health``): ``{"status": "ok"}``. Never needs an API key."""
        return self._get_json("/health")

    def ready(self) -> Dict[str, Any]:
        """Readiness (``GET /ready``), answered without retrying.

        Returns the server's report both when ready (``{"status": "ready", "clickhouse": "ok",
        "kafka": "ok"}``), when degraded (200, ``"status": "degraded"``: writes are taken but
        ClickHouse does not answer, so reads fail) and when not (the 503 body: ``{"status":
        "unavailable", "clickhouse": ..., "kafka": ..., "error": ...}``), so check
        ``result["status"]``.

        Raises:
            ServiceUnavailable: no answer at all (connection failure, timeout), a 503 without
                a JSON report, or a proxy's 502 or 504 (also 408, 429).
        """
        response = self._request("GET", "/ready", retry=False, accept=(503,))
        if not isinstance(response.body, dict):
            if response.status == 503:
                raise ServiceUnavailable(
                    "service unavailable",
                    status=503,
                    request_id=response.header("X-Request-Id"),
                    body=response.body,
                    retry_after=_parse_retry_after(response.header("Retry-After")),
                )
            raise ApiError(
                "expected a JSON object in the response",
                status=response.status,
                request_id=response.header("X-Request-Id"),
                body=response.body,
            )
        return response.body

    # ---------------------------------------------------------------- retries

    def retry_delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry).

        Exponential backoff with full jitter: ``random() * min(backoff_max, backoff_base * 2**retry)``.
        When the server sent ``Retry-After``, the delay is at least that many seconds
        (``max(retry_after, jittered)``), and in every case at most ``backoff_max``: a
        ``Retry-After`` longer than ``backoff_max`` is cut down so that a call never blocks
        longer than ``retries * backoff_max`` in sleeps (plus the attempts themselves). Raise
        ``backoff_max`` to honour long ``Retry-After`` values in full.
        """
        ceiling = min(self.backoff_max, self.backoff_base * (2.0 ** min(retry, _MAX_EXPONENT)))
        delay = self._random() * ceiling
        if retry_after is not None:
            delay = max(delay, retry_after)
        return max(0.0, min(delay, self.backoff_max))

    # ---------------------------------------------------------------- internals

    @staticmethod
    def _encode_batch_item(index: int, body: Dict[str, Any]) -> bytes:
        try:
            return _json_bytes(body)
        except ValueError:
            for key, value in body.items():
                if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
                    raise ValidationError(
                        "events[%d].%s must be a finite number" % (index, key),
                        field="events[%d].%s" % (index, key),
                    ) from None
            raise ValidationError(
                "events[%d] cannot be encoded as JSON" % index, field="events[%d]" % index
            ) from None
        except TypeError as exc:
            for key, value in body.items():
                try:
                    _json_bytes(value)
                except (TypeError, ValueError):
                    if key == "timestamp":
                        message = "events[%d].timestamp must be a datetime or an RFC 3339 string"
                        raise ValidationError(
                            message % index, field="events[%d].timestamp" % index
                        ) from None
                    raise ValidationError(
                        "events[%d].%s cannot be encoded as JSON: %s" % (index, key, exc),
                        field="events[%d].%s" % (index, key),
                    ) from None
            raise ValidationError(
                "events[%d] cannot be encoded as JSON" % index, field="events[%d]" % index
            ) from None

    @staticmethod
    def _batch_chunks(indices: Sequence[int], encoded: Sequence[bytes]) -> List[List[int]]:
        """Split the items at ``indices`` into requests of at most MAX_BATCH_ITEMS items and
        MAX_BATCH_BYTES bytes of body (every item fits on its own: larger ones are not sent)."""
        chunks: List[List[int]] = []
        chunk: List[int] = []
        size = _BATCH_OVERHEAD
        for index in indices:
            extra = len(encoded[index]) + (1 if chunk else 0)
            if chunk and (len(chunk) >= MAX_BATCH_ITEMS or size + extra > MAX_BATCH_BYTES):
                chunks.append(chunk)
                chunk = []
                size = _BATCH_OVERHEAD
                extra = len(encoded[index])
            chunk.append(index)
            size += extra
        if chunk:
            chunks.append(chunk)
        return chunks

    @staticmethod
    def _merge_batch(
        results: List[Optional[BatchItemResult]],
        response: _Response,
        chunk: Sequence[int],
        assigned: Sequence[Optional[str]],
    ) -> None:
        """Record the answer to one request carrying the items ``chunk`` (input positions)."""
        body = response.body
        items = body.get("results") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != len(chunk):
            raise ApiError(
                "malformed batch response: expected %d results" % len(chunk),
                status=response.status,
                request_id=response.header("X-Request-Id"),
                body=body,
            )
        answered: List[Optional[BatchItemResult]] = [None] * len(chunk)
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise ApiError("malformed batch response item", status=response.status, body=body)
            local = item.get("index", position)
            status = item.get("status")
            if (
                isinstance(local, bool)
                or not isinstance(local, int)
                or not 0 <= local < len(chunk)
                or answered[local] is not None
                or isinstance(status, bool)
                or not isinstance(status, int)
            ):
                raise ApiError("malformed batch response item", status=response.status, body=body)
            index = chunk[local]
            accepted = 200 <= status < 300
            event_id = item.get("event_id")
            if not isinstance(event_id, str):
                event_id = assigned[index]
            answered[local] = BatchItemResult(
                index=index,
                status=status,
                event_id=event_id,
                error=None if accepted else item.get("error"),
                field=None if accepted else item.get("field"),
            )
        for entry in answered:
            assert entry is not None
            results[entry.index] = entry

    def _get_text(self, path: str) -> str:
        return self._request("GET", path).text

    def _get_json(self, path: str, query: Optional[Sequence[Tuple[str, str]]] = None) -> Dict[str, Any]:
        response = self._request("GET", path, query=query)
        if not isinstance(response.body, dict):
            raise ApiError(
                "expected a JSON object in the response",
                status=response.status,
                request_id=response.header("X-Request-Id"),
                body=response.body,
            )
        return response.body

    def _target(self, path: str, query: Optional[Sequence[Tuple[str, str]]]) -> str:
        target = self._prefix + path
        if query:
            target += "?" + urlencode(list(query), quote_via=quote, safe="")
        return target

    def _headers(self, request_id: str, has_body: bool) -> Dict[str, str]:
        headers = {
            "User-Agent": self.user_agent,
            "Accept": "application/json",
            "X-Request-Id": request_id,
        }
        if has_body:
            headers["Content-Type"] = "application/json"
        if self.api_key is not None:
            headers["Authorization"] = "Bearer " + self.api_key
        return headers

    def _connection(self) -> Tuple[http.client.HTTPConnection, bool]:
        """The calling thread's connection, and whether it has served a request before."""
        connection = getattr(self._connections, "connection", None)
        if connection is not None and getattr(self._connections, "pid", None) != os.getpid():
            # Inherited through fork(): the parent uses the same socket, and the two would read
            # each other's answers. Dropped without closing, which would cut the parent's off.
            connection = None
            self._connections.connection = None
        if connection is not None and connection.sock is not None and not _closed_by_peer(connection.sock):
            return connection, True
        if connection is not None:
            connection.close()  # closed by the server (its idle timeout, or Connection: close)
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        self._connections.connection = connection
        self._connections.pid = os.getpid()
        return connection, False

    def _send(self, method: str, target: str, data: Optional[bytes], headers: Dict[str, str]) -> _Response:
        connection, reused = self._connection()
        try:
            try:
                raw = self._exchange(connection, method, target, data, headers)
            except (ConnectionError, http.client.RemoteDisconnected):
                if not reused:
                    raise
                # The server closed the kept-alive connection as this request went out (its
                # idle timeout): send it once more on a new one. Reads are safe to repeat and
                # writes are idempotent (their ids are made before the first attempt).
                self.close()
                connection, _ = self._connection()
                raw = self._exchange(connection, method, target, data, headers)
            payload = raw.read()
        except BaseException:
            self.close()
            raise
        status = raw.status
        response_headers = raw.headers
        if raw.will_close:
            self.close()
        body: Any = None
        if payload:
            text = payload.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        return _Response(status, response_headers, body, text if payload else "")

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection, method: str, target: str, data: Optional[bytes], headers: Dict[str, str]
    ) -> http.client.HTTPResponse:
        """Send one request and return the response, whose body is still to be read."""
        try:
            if data is None:
                connection.request(method, target, headers=headers)
            else:
                # In pieces, so the timeout limits each socket send rather than the whole upload
                # (a 5 MiB batch on a slow link would otherwise time out however steady it is).
                headers = dict(headers, **{"Content-Length": str(len(data))})
                view = memoryview(data)
                pieces = [view[i : i + _SEND_PIECE] for i in range(0, len(data), _SEND_PIECE)]
                connection.request(method, target, body=pieces, headers=headers)
        except ConnectionError as send_error:
            # The server may have answered before taking the whole body (413 for a body over its
            # limit, 401 without a key) and closed: that answer is still readable, and it is
            # the outcome, not a network failure to retry. (Not after a timeout: reading would
            # wait a second `timeout` for what a stalled server will not send.)
            if connection.sock is None:
                raise  # never connected
            try:
                return connection.getresponse()
            except (OSError, http.client.HTTPException):
                raise send_error from None
        return connection.getresponse()

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[Sequence[Tuple[str, str]]] = None,
        body: Any = None,
        data: Optional[bytes] = None,
        retry: bool = True,
        accept: Tuple[int, ...] = (),
        max_bytes: Optional[int] = None,
        started: Optional[float] = None,
        compress: bool = False,
    ) -> _Response:
        """Send a request with retries; return the 2xx (or ``accept``-ed) response, else raise.

        The body is encoded once, so every attempt sends identical bytes (and the same
        ``X-Request-Id``, which makes the attempts easy to correlate in server logs). With
        ``compress``, a body of 1 KiB or more goes gzip-compressed, until a server shows that it
        does not read gzip (:meth:`_refuses_gzip`).
        """
        if body is not None:
            data = _json_bytes(body)
        if max_bytes is not None and data is not None and len(data) > max_bytes:
            # No server takes it (API_MAX_BODY_BYTES is at most this): refused before sending.
            raise ValidationError(
                "the request body is %d bytes of JSON, over the %d-byte limit of a single-event write"
                % (len(data), max_bytes)
            )
        target = self._target(path, query)
        request_id = str(uuid.uuid4())
        headers = self._headers(request_id, data is not None)
        plain = data
        if compress and data is not None and len(data) >= _COMPRESS_FROM:
            # mtime=0: the same bytes for the same JSON (no timestamp in the gzip header).
            data = gzip.compress(data, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        max_retries = self.retries if retry else 0
        started = self._clock() if started is None else started
        attempt = 0  # retries made (the backoff's exponent)
        resent = 0  # uncompressed resends after a refusal of gzip: attempts too, but not retries
        while True:
            try:
                response = self._send(method, target, data, headers)
            except ssl.SSLCertVerificationError as exc:
                raise EventClientError(
                    "TLS certificate verification failed: %s" % exc, request_id=request_id
                ) from exc
            except http.client.InvalidURL as exc:
                # Raised before anything is sent; another attempt would fail the same way.
                raise EventClientError("invalid request URL: %s" % exc, request_id=request_id) from exc
            except (OSError, http.client.HTTPException) as exc:
                if attempt < max_retries:
                    delay = self.retry_delay(attempt)
                    if not self._out_of_time(started, delay):
                        logger.debug(
                            "%s %s: %s (attempt %d), retrying in %.3fs", method, path, exc, attempt + resent + 1, delay
                        )
                        self._sleep(delay)
                        attempt += 1
                        continue
                raise ServiceUnavailable(
                    "%s %s failed after %d attempt(s): %s: %s"
                    % (method, path, attempt + resent + 1, type(exc).__name__, exc),
                    request_id=request_id,
                    attempts=attempt + resent + 1,
                ) from exc

            if 200 <= response.status < 300 or response.status in accept:
                return response
            if "Content-Encoding" in headers and self._refuses_gzip(response):
                # This server (or a proxy) does not read gzip: no more compression from this client,
                # and the same request again at once, uncompressed (unless total_timeout ran out).
                # An attempt, but not a retry: it neither uses one up nor lengthens the backoff.
                logger.warning(
                    "%s %s: %d for a gzip body; sending uncompressed from now on", method, path, response.status
                )
                self.compress_batches = False
                if not self._out_of_time(started, 0):
                    data = plain
                    del headers["Content-Encoding"]
                    resent += 1
                    continue
            if response.status in _TRANSIENT_STATUSES and attempt < max_retries:
                retry_after = _parse_retry_after(response.header("Retry-After"))
                delay = self.retry_delay(attempt, retry_after)
                if not self._out_of_time(started, delay):
                    logger.debug(
                        "%s %s: %d (attempt %d, Retry-After %s), retrying in %.3fs",
                        method,
                        path,
                        response.status,
                        attempt + resent + 1,
                        retry_after,
                        delay,
                    )
                    self._sleep(delay)
                    attempt += 1
                    continue
            raise self._error(response, attempt + resent + 1)

    @staticmethod
    def _refuses_gzip(response: _Response) -> bool:
        """Whether the answer to a gzip body says the server does not read gzip: a 415 that does
        not offer gzip in ``Accept-Encoding``, or the 400 of an event-api from before gzip
        bodies, whose JSON parser met the gzip header's first byte."""
        if response.status == 415:
            offered = (response.header("Accept-Encoding") or "").lower()
            return "gzip" not in [coding.split(";")[0].strip() for coding in offered.split(",")]
        return (
            response.status == 400
            and isinstance(response.body, dict)
            and response.body.get("error") == "malformed JSON: invalid value at byte 0"
        )

    def _out_of_time(self, started: float, delay: float) -> bool:
        """Whether a retry after `delay` more seconds would start past ``total_timeout``."""
        return self.total_timeout is not None and self._clock() + delay - started > self.total_timeout

    @staticmethod
    def _error(response: _Response, attempts: int) -> EventClientError:
        body = response.body
        message: Optional[str] = None
        field: Optional[str] = None
        if isinstance(body, dict):
            if isinstance(body.get("error"), str):
                message = body["error"]
            if isinstance(body.get("field"), str):
                field = body["field"]
        elif isinstance(body, str) and body.strip():
            message = body.strip()[:500]
        if not message:
            message = "HTTP %d %s" % (
                response.status,
                http.client.responses.get(response.status, "error"),
            )
        request_id = response.header("X-Request-Id")
        status = response.status
        if status in _TRANSIENT_STATUSES:
            return ServiceUnavailable(
                message,
                status=status,
                field=field,
                request_id=request_id,
                body=body,
                retry_after=_parse_retry_after(response.header("Retry-After")),
                attempts=attempts,
            )
        cls = {400: ValidationError, 401: Unauthorized, 404: NotFound}.get(status, ApiError)
        return cls(message, status=status, field=field, request_id=request_id, body=body)
