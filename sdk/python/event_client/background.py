"""The :class:`BackgroundSender`: events sent in batches from a thread of their own, so that
tracking never waits on the network (as analytics SDKs send)."""

from __future__ import annotations

import atexit
import collections
import logging
import multiprocessing.util
import os
import threading
import time
import weakref
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .client import MAX_BATCH_ITEMS, EventClient, _create_body
from .errors import EventClientError, ServiceUnavailable
from .timestamps import utc_now_text

__all__ = ["BackgroundSender", "FailedEvent"]

logger = logging.getLogger("event_client")


class FailedEvent:
    """An event the sender could not deliver, as given to ``on_failure``.

    Attributes:
        body: The create's JSON body as it was (or would have been) sent, ``event_id`` included.
        reason: ``"rejected"`` (the server refused the item: ``status`` 400 or 413, or the whole
            request with a 4xx), ``"dropped"`` (the queue was full when it was tracked) or
            ``"abandoned"`` (still queued, or still being sent, when :meth:`BackgroundSender.close`
            ran out of time; one still being sent may have been delivered all the same).
        status: The HTTP-like status of the refusal, else ``None``.
        message: The server's or the sender's explanation.
    """

    __slots__ = ("body", "reason", "status", "message")

    def __init__(self, body: Dict[str, Any], reason: str, status: Optional[int], message: str) -> None:
        self.body = body
        self.reason = reason
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return "FailedEvent(%s, %r, status=%r, message=%r)" % (
            self.body.get("event_id"), self.reason, self.status, self.message)


class _Batch:
    """A batch the thread took from the queue. Each item is settled once: sent, refused, or
    abandoned by :meth:`BackgroundSender.close` while its request was still under way."""

    __slots__ = ("items", "unsettled", "closed_out")

    def __init__(self, items: List[Dict[str, Any]]) -> None:
        self.items = items
        self.unsettled = {id(item) for item in items}
        self.closed_out = False  # abandoned by close(): later outcomes of its request are ignored


class BackgroundSender:
    """Queues creates and sends them with ``POST /events/batch`` from a background thread.

    :meth:`track_event` checks its arguments (raising :class:`~event_client.ValidationError` at
    once, as :meth:`EventClient.track_event` does), assigns the event's id and, unless given, its
    timestamp (the time of the call, not of the delivery), queues the event and returns the id
    without any network I/O. Update or delete such an event only once its create was sent
    (:meth:`flush` first): sent before it, the update or delete reaches the pipeline first and
    ends in its dead-letter topic. The thread sends what is queued in batches of up to
    ``batch_size`` events, as soon as that many wait or ``flush_interval`` seconds after the oldest
    waiting event was queued.

    Delivery: a batch the service cannot take now (503s, refused connections, timeouts, 5xx, each
    after the client's own retries) is sent again, with the same ids, after a capped backoff,
    until it is taken or the sender closes; the pipeline ignores a repeated create, so nothing is
    stored twice. Meanwhile new events queue up to ``max_queue``; past that they are dropped
    (counted, and given to ``on_failure``) rather than holding the application or its memory.
    Items the server refuses (400, 413, or a 4xx for the whole request such as a wrong key) are
    not sent again.

    Args:
        client: The :class:`EventClient` to send with (its key, retries and timeouts apply).
        batch_size: Most events per request (1..1000).
        flush_interval: Seconds an event may wait for companions before its batch goes.
        max_queue: Most events waiting to be sent; more are dropped.
        on_failure: Called with a :class:`FailedEvent` for every event that will not be
            delivered: from the sender's thread, except for a dropped event (from the thread that
            tracked it, inside ``track_event``) and for events abandoned by :meth:`close` (from the
            closing thread). It must not block; exceptions from it are logged.
        max_retry_delay: Longest wait, in seconds, between two sends of a batch the service did not take
            (a ``Retry-After`` in the answer lengthens the wait up to this).
        close_timeout_at_exit: Seconds :meth:`close` may take when the interpreter exits
            (``atexit``); ``None``: do not close at exit.

    Call :meth:`flush` to wait until everything tracked so far is sent, and :meth:`close` (or use
    the sender as a context manager) to send the rest and stop the thread: a sender that is not
    closed keeps its thread until the interpreter exits. After ``fork()`` the child starts with an
    empty queue and zeroed counts; its thread starts with its first event. A child started by
    ``multiprocessing`` with the fork or forkserver method closes the senders it inherited or made
    as it exits (as the interpreter's exit would, which such a child skips); a child of a bare
    ``os.fork()`` must call :meth:`close` itself before ``os._exit``.
    """

    def __init__(
        self,
        client: EventClient,
        *,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue: int = 10000,
        on_failure: Optional[Callable[[FailedEvent], Any]] = None,
        max_retry_delay: float = 30.0,
        close_timeout_at_exit: Optional[float] = 5.0,
    ) -> None:
        if not isinstance(client, EventClient):
            raise TypeError("client must be an EventClient")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_ITEMS:
            raise ValueError("batch_size must be an integer from 1 to %d" % MAX_BATCH_ITEMS)
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise ValueError("max_queue must be an integer >= 1")
        for name, value in (("flush_interval", flush_interval), ("max_retry_delay", max_retry_delay),
                            ("close_timeout_at_exit", 0 if close_timeout_at_exit is None else close_timeout_at_exit)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ValueError("%s must be a finite number >= 0" % name)
        self.client = client
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.max_queue = max_queue
        self.on_failure = on_failure
        self.max_retry_delay = float(max_retry_delay)
        self._reset()
        self._exit_hook: Optional[Callable[[], None]] = None
        if close_timeout_at_exit is not None:
            # Weak references: neither hook keeps a closed sender alive; close() unregisters this one.
            reference = weakref.ref(self)
            timeout = float(close_timeout_at_exit)

            def close_at_exit() -> None:
                sender = reference()
                if sender is not None:
                    sender.close(timeout)

            self._exit_hook = close_at_exit
            atexit.register(close_at_exit)
        child_reference = weakref.ref(self)

        def after_fork_in_child() -> None:
            sender = child_reference()
            if sender is not None:
                sender._reset(keep_closing=True)

        os.register_at_fork(after_in_child=after_fork_in_child)
        if close_timeout_at_exit is not None:
            # A multiprocessing child made by fork or forkserver ends with os._exit, skipping
            # atexit: its finalizers run instead. A sender inherited through fork registers one
            # after the child cleared the parent's (these after-fork callbacks run then); one made
            # in such a child (a Pool initializer, say) registers it now.
            self._close_timeout_at_exit = float(close_timeout_at_exit)
            multiprocessing.util.register_after_fork(self, _close_at_multiprocessing_exit)
            if multiprocessing.parent_process() is not None:
                _close_at_multiprocessing_exit(self)

    def _reset(self, keep_closing: bool = False) -> None:
        """A fresh state: at the start, and in a forked child, where the parent's lock may have been
        held by its thread at the fork, its queue is the parent's to send, and no thread runs."""
        closing = keep_closing and self._closing
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # (time queued, body), oldest first.
        self._queue: Deque[Tuple[float, Dict[str, Any]]] = collections.deque()
        self._send_now = False  # flush() or close() asked for what is queued to go without waiting
        self._tracked = 0  # events queued, ever
        # Events of finished batches (each sent, refused or abandoned), ever. Batches finish in
        # queue order, so the first `_finished` events tracked are done.
        self._finished = 0
        self._closing = closing
        self._deadline: Optional[float] = None
        self._closing_since: Optional[float] = None
        self._in_flight: Optional[_Batch] = None  # the batch the thread is sending
        self.sent = 0
        self.rejected = 0
        self.dropped = 0
        self.abandoned = 0
        self._thread: Optional[threading.Thread] = None  # started with the first event

    # ------------------------------------------------------------------ the application's side

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
        """Queue a create and return its id at once; arguments as :meth:`EventClient.track_event`.

        Raises:
            ValidationError: an argument the server would refuse (nothing is queued).
            EventClientError: the sender is closed.
        """
        body = _create_body(conversation_id, event_name, input, output, latency, error, timestamp, event_id)
        if timestamp is None:
            # When it happened, not when the batch goes out (seconds later, minutes in an outage).
            body["timestamp"] = utc_now_text()
        dropped = False
        with self._lock:
            if self._closing:
                raise EventClientError("the sender is closed")
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="event-client-sender", daemon=True)
                # Kept only once it runs: when it cannot start (the process's thread limit, or
                # interpreter shutdown), the call raises and nothing is queued for a thread that
                # would never send it; the next call tries again.
                thread.start()
                self._thread = thread
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                dropped = True
            else:
                self._queue.append((time.monotonic(), body))
                self._tracked += 1
                if len(self._queue) >= self.batch_size or len(self._queue) == 1:
                    self._changed.notify_all()  # a full batch, or a first event whose interval starts
        if dropped:
            logger.warning("event_client: the send queue is full (%d events); event %s dropped", self.max_queue, body["event_id"])
            self._report(FailedEvent(body, "dropped", None, "the send queue is full (%d events)" % self.max_queue))
        return body["event_id"]

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every event tracked before this call is sent (or refused); ``False`` if
        ``timeout`` seconds passed first. Events tracked meanwhile do not prolong the wait."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() from the sender's own thread (in on_failure) would wait for itself")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._tracked
            self._send_now = True
            self._changed.notify_all()
            while self._finished < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def close(self, timeout: Optional[float] = 10.0) -> bool:
        """Send what is queued (for up to ``timeout`` seconds), then stop the thread. Events still
        queued then, and those of a request still under way, are abandoned (counted, and given to
        ``on_failure``; the latter may have been delivered all the same, and what that request
        brings later changes no count). ``True`` when every event was sent or refused. Later
        calls to :meth:`track_event` raise; closing twice is harmless."""
        if self._exit_hook is not None:
            atexit.unregister(self._exit_hook)
            self._exit_hook = None
        with self._lock:
            if not self._closing:
                self._closing = True
                self._closing_since = time.monotonic()
                self._deadline = None if timeout is None else time.monotonic() + timeout
                self._send_now = True
                self._changed.notify_all()
            deadline = self._deadline
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # A moment past the deadline, for the thread to settle a batch it was only waiting to
            # send again (it abandons it at the deadline); a request under way may take longer.
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()) + 0.2)
        with self._lock:
            # Whatever the thread did not settle in time (it is busy with a request that outlasted
            # the deadline, or it is this thread): abandoned here, so nothing goes unreported. The
            # batch under way too: at interpreter exit its thread dies with it.
            past = deadline is not None and time.monotonic() >= deadline
            left = [body for _, body in self._queue] if past else []
            if left:
                self._queue.clear()
                self.abandoned += len(left)
                self._finished += len(left)
            sending: List[Dict[str, Any]] = []
            batch = self._in_flight
            if past and batch is not None and not batch.closed_out:
                sending = [item for item in batch.items if id(item) in batch.unsettled]
                batch.unsettled.clear()
                batch.closed_out = True
                self.abandoned += len(sending)
                self._finished += len(batch.items)
            self._changed.notify_all()
        if left or sending:
            logger.warning("event_client: %d event(s) not sent before the sender closed", len(left) + len(sending))
        for body in sending:
            self._report(FailedEvent(body, "abandoned", None,
                                     "still being sent when the sender closed (it may have been delivered)"))
        for body in left:
            self._report(FailedEvent(body, "abandoned", None, "not sent before the sender closed"))
        with self._lock:
            return self._finished == self._tracked and self.abandoned == 0

    def __enter__(self) -> "BackgroundSender":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def queued(self) -> int:
        """Events waiting to be sent (the batch being sent included)."""
        with self._lock:
            return self._tracked - self._finished

    def __repr__(self) -> str:
        return "BackgroundSender(queued=%d, sent=%d, rejected=%d, dropped=%d, abandoned=%d)" % (
            self.queued, self.sent, self.rejected, self.dropped, self.abandoned)

    # ------------------------------------------------------------------ the thread's side

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._deliver(batch)
        finally:
            self.client.close()  # this thread's kept-alive connection

    def _next_batch(self) -> Optional[_Batch]:
        """The next batch once it is due (full, old enough, flushed or closing); ``None`` once the
        sender is closing and nothing is left."""
        with self._lock:
            while True:
                if self._queue:
                    waited = time.monotonic() - self._queue[0][0]
                    if len(self._queue) >= self.batch_size or self._send_now or waited >= self.flush_interval:
                        batch = _Batch([self._queue.popleft()[1] for _ in range(min(self.batch_size, len(self._queue)))])
                        if not self._queue:
                            self._send_now = False
                        self._in_flight = batch
                        return batch
                    self._changed.wait(self.flush_interval - waited)
                elif self._closing:
                    return None
                else:
                    self._send_now = False
                    self._changed.wait()

    def _deliver(self, batch: _Batch) -> None:
        """Sends the batch until every item is taken or refused, or the close deadline passes."""
        try:
            self._send(batch)
        except Exception as exc:  # a fault in this process (a clock, an encoding), not the service's answer
            logger.exception("event_client: the sender failed on a batch of %d", len(batch.items))
            self._finish(batch, batch.items, "rejected", None, "%s: %s" % (type(exc).__name__, exc))
        finally:
            with self._lock:
                if not batch.closed_out:  # else close() counted it
                    self._finished += len(batch.items)
                if self._in_flight is batch:
                    self._in_flight = None
                self._changed.notify_all()

    def _send(self, batch: _Batch) -> None:
        if self._past_deadline():
            self._finish(batch, batch.items, "abandoned", None, "not sent before the sender closed")
            return
        pending = batch.items
        failures = 0
        while pending:
            asked = 0.0  # the service's Retry-After, in seconds
            try:
                result = self.client.track_events(pending)
            except EventClientError as exc:
                # A batch over one request's 5 MiB goes as several: what was answered before the
                # failure is settled, the rest is sent again or refused with the failure.
                partial = getattr(exc, "partial_result", None)
                answered = partial.results if partial is not None else []
                unanswered = [item for index, item in enumerate(pending) if index not in {r.index for r in answered}]
                retry = self._settle(batch, pending, answered)
                if not self._transient(exc):
                    self._finish(batch, retry + unanswered, "rejected", exc.status, exc.message)
                    return
                logger.debug("event_client: batch of %d not taken (%s); sending it again", len(pending), exc)
                next_pending = retry + unanswered
                asked = getattr(exc, "retry_after", None) or 0.0
            else:
                next_pending = self._settle(batch, pending, result.results)
                if not next_pending:
                    return
            failures = 1 if len(next_pending) < len(pending) else failures + 1
            pending = next_pending
            # Not sooner than the service asked (a 429 or 503 with Retry-After), nor later than
            # max_retry_delay.
            delay = min(self.max_retry_delay, max(asked, 0.5 * (2 ** min(failures - 1, 16))))
            if not self._wait_before_retry(delay):
                self._finish(batch, pending, "abandoned", None, "not sent before the sender closed")
                return

    def _settle(self, batch: _Batch, pending: List[Dict[str, Any]], results: List[Any]) -> List[Dict[str, Any]]:
        """Counts the accepted items, reports the refused ones; returns those Kafka did not take
        (503 after the client's own retries), to be sent again."""
        retry = []
        taken = []
        for outcome in results:
            item = pending[outcome.index]
            if outcome.accepted:
                taken.append(item)
            elif outcome.status == 503:
                retry.append(item)
            else:
                self._finish(batch, [item], "rejected", outcome.status, outcome.error or "refused")
        self._finish_sent(batch, taken)
        return retry

    @staticmethod
    def _transient(exc: EventClientError) -> bool:
        """Whether another send may succeed: no answer, a 503 or another 5xx, 408 or 429."""
        return isinstance(exc, ServiceUnavailable) or (exc.status is not None and (exc.status >= 500 or exc.status in (408, 429)))

    def _past_deadline(self) -> bool:
        with self._lock:
            return self._closing and self._deadline is not None and time.monotonic() >= self._deadline

    def _wait_before_retry(self, delay: float) -> bool:
        """Waits `delay` seconds; False when the close deadline passes first (or has passed).
        A wait under way when :meth:`close` is called is cut to a moment, so that the batch gets
        one more attempt within close's time instead of waiting out a long backoff; waits after
        that follow the backoff as before."""
        with self._lock:
            started = time.monotonic()
            end = started + delay
            while True:
                now = time.monotonic()
                if self._closing and self._deadline is not None and now >= self._deadline:
                    return False
                if self._closing_since is not None and self._closing_since >= started:
                    end = min(end, self._closing_since + self._closing_retry_delay)
                if now >= end:
                    return True
                limit = end - now
                if self._closing and self._deadline is not None:
                    limit = min(limit, self._deadline - now)
                self._changed.wait(limit)

    _closing_retry_delay = 0.5

    @staticmethod
    def _unsettled(batch: _Batch, items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The items not settled yet, now marked settled (under the lock)."""
        kept = [item for item in items if id(item) in batch.unsettled]
        for item in kept:
            batch.unsettled.discard(id(item))
        return kept

    def _finish_sent(self, batch: _Batch, items: List[Dict[str, Any]]) -> None:
        with self._lock:
            self.sent += len(self._unsettled(batch, items))

    def _finish(self, batch: _Batch, items: List[Dict[str, Any]], reason: str, status: Optional[int], message: str) -> None:
        with self._lock:
            items = self._unsettled(batch, items)  # close() may have abandoned them meanwhile
            if reason == "rejected":
                self.rejected += len(items)
            else:
                self.abandoned += len(items)
        if not items:
            return
        if reason == "abandoned":
            logger.warning("event_client: %d event(s) not sent before the sender closed", len(items))
        else:
            # Also without on_failure: a wrong key or a client-side bug must not lose events unseen.
            logger.warning("event_client: %d event(s) refused%s: %s", len(items),
                           "" if status is None else " (%d)" % status, message)
        for item in items:
            self._report(FailedEvent(item, reason, status, message))

    def _report(self, failure: FailedEvent) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(failure)
        except Exception:  # the application's callback must not stop the sender
            logger.exception("event_client: on_failure raised")


def _close_at_multiprocessing_exit(sender: BackgroundSender) -> None:
    """In a multiprocessing child made by fork: close the sender as the child exits."""
    reference = weakref.ref(sender)

    def close() -> None:
        alive = reference()
        if alive is not None:
            alive.close(alive._close_timeout_at_exit)

    multiprocessing.util.Finalize(sender, close, exitpriority=10)
