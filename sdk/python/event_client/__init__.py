"""Zero-dependency Python client for the event-analytics HTTP API (event-api).

Quick start::

    from event_client import EventClient

    client = EventClient("http://localhost:8080", api_key="...")
    event_id = client.track_event("conv-1", "llm_call", input="2+2?", output="4", latency=123.5)
    print(client.get_event(event_id))
"""

from ._version import __version__
from .background import BackgroundSender, FailedEvent
from .client import MAX_BATCH_BYTES, MAX_BATCH_ITEMS, EventClient
from .errors import (
    ApiError,
    EventClientError,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from .ids import UUIDv7Generator, new_event_id, uuid7, uuid7_unix_ms
from .models import BatchItemResult, BatchResult
from .timestamps import format_timestamp

__all__ = [
    "__version__",
    "EventClient",
    "BackgroundSender",
    "FailedEvent",
    "BatchResult",
    "BatchItemResult",
    "EventClientError",
    "ApiError",
    "ValidationError",
    "Unauthorized",
    "NotFound",
    "ServiceUnavailable",
    "new_event_id",
    "UUIDv7Generator",
    "uuid7",
    "uuid7_unix_ms",
    "format_timestamp",
    "MAX_BATCH_ITEMS",
    "MAX_BATCH_BYTES",
]
