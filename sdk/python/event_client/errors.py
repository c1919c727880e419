"""Exceptions raised by :class:`event_client.EventClient`.

Every exception derives from :class:`EventClientError` and carries the same attributes, so a
single ``except EventClientError as exc`` can inspect ``exc.status``, ``exc.field`` and
``exc.request_id`` whatever went wrong:

========================  ==========================================================
exception                 raised when
========================  ==========================================================
``ValidationError``       the server answered 400, or the client rejected an argument
                          before sending anything (then ``status`` is ``None``)
``Unauthorized``          the server answered 401 (missing or wrong API key)
``NotFound``              the server answered 404 (unknown or deleted event, unknown route)
``ServiceUnavailable``    the server answered 503 (or a proxy 502/504, or 408/429), or the
                          connection failed / timed out, on every attempt (after all retries)
``ApiError``              any other non-success status (405, 413, 500, ...)
========================  ==========================================================
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "EventClientError",
    "ApiError",
    "ValidationError",
    "Unauthorized",
    "NotFound",
    "ServiceUnavailable",
]


class EventClientError(Exception):
    """Base class of every error raised by the client.

    Attributes:
        message: Human-readable message (the server's ``error`` text when there was a response).
        status: HTTP status of the response, or ``None`` when no response was received
            (client-side validation, connection failure).
        field: The request field or path parameter at fault, as reported by the server
            (or the offending argument name for client-side validation), else ``None``.
        request_id: The response's ``X-Request-Id`` header, when there was a response.
        body: The decoded response body (a ``dict`` for JSON, else ``str``), or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        field: Optional[str] = None,
        request_id: Optional[str] = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.request_id = request_id
        self.body = body
        #: Set by :meth:`EventClient.track_events` when a later request of a split batch failed:
        #: a :class:`~event_client.models.BatchResult` with the items answered before the failure.
        self.partial_result: Any = None

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append("status=%d" % self.status)
        if self.field is not None:
            parts.append("field=%s" % self.field)
        if self.request_id is not None:
            parts.append("request_id=%s" % self.request_id)
        return parts[0] if len(parts) == 1 else "%s (%s)" % (parts[0], ", ".join(parts[1:]))

    def __repr__(self) -> str:
        return "%s(%r, status=%r, field=%r, request_id=%r)" % (
            type(self).__name__,
            self.message,
            self.status,
            self.field,
            self.request_id,
        )


class ApiError(EventClientError):
    """The server answered with an error status not covered by a more specific class
    (for example 405, 413 or 500)."""


class ValidationError(EventClientError, ValueError):
    """The request was invalid.

    Raised for a 400 answer (``status == 400``, ``field`` as reported by the server) and by
    client-side checks made before any request is sent (``status is None``, ``field`` = the
    argument at fault, e.g. ``"event_id"``, ``"limit"``, ``"latency"``).

    It is also a :class:`ValueError`.
    """


class Unauthorized(EventClientError):
    """The server answered 401: the API key is missing or not accepted."""


class NotFound(EventClientError):
    """The server answered 404: the event does not exist (or was deleted), or the route is unknown."""


class ServiceUnavailable(EventClientError):
    """The service could not be reached, after all retries.

    Raised when the last attempt answered 503 (``status == 503``; ``retry_after`` holds the
    server's ``Retry-After`` in seconds when it sent one), 502 or 504 (from a proxy that got no
    answer from the service), 408 or 429 (the same, with that ``status``), or failed without a
    response (connection refused or reset, timeout: ``status is None``, ``retry_after is None``).

    Attributes:
        retry_after: Seconds the server asked to wait (``Retry-After``), or ``None``.
        attempts: Number of attempts made (1 + retries).
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        field: Optional[str] = None,
        request_id: Optional[str] = None,
        body: Any = None,
        retry_after: Optional[float] = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, status=status, field=field, request_id=request_id, body=body)
        self.retry_after = retry_after
        self.attempts = attempts
