"""Result types returned by :class:`event_client.EventClient`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

__all__ = ["BatchItemResult", "BatchResult"]


@dataclass(frozen=True)
class BatchItemResult:
    """Outcome of one item of :meth:`EventClient.track_events`.

    Attributes:
        index: Position of the item in the list passed to ``track_events`` (across all the
            requests a long list was split into).
        status: Per-item HTTP-like status from the server: 202 accepted, 400 invalid, 413 too
            large, 503 not taken by Kafka (after the client's own retries of that item).
        event_id: The id the item was sent with (the one the client assigned, or the item's
            own), accepted or not; ``None`` only for an item whose ``event_id`` was not a string.
        error: The server's message for a rejected item, else ``None``.
        field: The field at fault for a rejected item (e.g. ``"latency"``), else ``None``.
    """

    index: int
    status: int
    event_id: Optional[str] = None
    error: Optional[str] = None
    field: Optional[str] = None

    @property
    def accepted(self) -> bool:
        """Whether the server accepted this item (2xx status)."""
        return 200 <= self.status < 300


@dataclass
class BatchResult:
    """Outcome of :meth:`EventClient.track_events`.

    Attributes:
        accepted: Number of accepted items.
        rejected: Number of rejected items.
        results: One :class:`BatchItemResult` per item, in input order (``results[i].index == i``);
            in an exception's ``partial_result``, only the items answered before it (an item
            waiting to be sent again keeps its 503 result).
        item_ids: The id of every input item, in input order, answered or not (``None`` where an
            item's own ``event_id`` was not a string): resending an unanswered item with its id
            here is safe.
    """

    accepted: int = 0
    rejected: int = 0
    results: List[BatchItemResult] = field(default_factory=list)
    item_ids: List[Optional[str]] = field(default_factory=list)

    @classmethod
    def of(
        cls, results: List[Optional[BatchItemResult]], item_ids: List[Optional[str]]
    ) -> "BatchResult":
        """The answered entries of ``results`` (indexed by input position), counted."""
        answered = [r for r in results if r is not None]
        accepted = sum(1 for r in answered if r.accepted)
        return cls(
            accepted=accepted,
            rejected=len(answered) - accepted,
            results=answered,
            item_ids=list(item_ids),
        )

    @property
    def ok(self) -> bool:
        """``True`` when every item was accepted."""
        return self.rejected == 0 and all(r.accepted for r in self.results)

    @property
    def event_ids(self) -> List[Optional[str]]:
        """The event id of every answered item, in input order."""
        return [r.event_id for r in self.results]

    @property
    def errors(self) -> List[BatchItemResult]:
        """The rejected items."""
        return [r for r in self.results if not r.accepted]

    def to_dict(self) -> Dict[str, Any]:
        """The result in the server's JSON shape (``accepted``, ``rejected``, ``results``)."""
        items = []
        for r in self.results:
            d: Dict[str, Any] = {"index": r.index, "status": r.status}
            if r.accepted:
                if r.event_id is not None:
                    d["event_id"] = r.event_id
            else:
                d["error"] = r.error
                d["field"] = r.field
            items.append(d)
        return {"accepted": self.accepted, "rejected": self.rejected, "results": items}
