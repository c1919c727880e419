"""How fast the Python SDK's BackgroundSender takes and delivers events, against a running API.

    .venv/bin/python benchmark/sdk_background.py [--url http://localhost:8080] [--events 100000]
        [--threads 4] [--batch-size 100] [--no-gzip]

Prints the application's cost per track_event call (the time a tracking thread spends in it) and
the rate at which events were delivered (from the first call until flush() returned, every event
acknowledged by the broker), then reads a sample of the events back once the consumer stored them.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sdk", "python"))

from event_client import BackgroundSender, EventClient  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("EVENT_API_URL", "http://localhost:8080"))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4, help="application threads calling track_event")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args()

    client = EventClient(args.url, api_key=os.environ.get("EVENT_API_KEY"), compress_batches=not args.no_gzip)
    failures = []
    sender = BackgroundSender(client, batch_size=args.batch_size, flush_interval=0.05, max_queue=args.events,
                              on_failure=failures.append, close_timeout_at_exit=None)
    conversation = "sdk-bench-%08x" % random.getrandbits(32)
    per_thread = args.events // args.threads
    call_seconds = [0.0] * args.threads
    ids = [[] for _ in range(args.threads)]

    def track(worker: int) -> None:
        spent = 0.0
        for n in range(per_thread):
            started = time.perf_counter()
            ids[worker].append(sender.track_event(conversation, "sdk_bench", input="prompt %d/%d" % (worker, n),
                                                  output="answer", latency=12.5))
            spent += time.perf_counter() - started
        call_seconds[worker] = spent

    started = time.monotonic()
    workers = [threading.Thread(target=track, args=(w,)) for w in range(args.threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    tracked = time.monotonic() - started
    delivered = sender.flush(600)
    elapsed = time.monotonic() - started
    total = per_thread * args.threads
    print("BackgroundSender against %s: %d events from %d threads, batches of %d, gzip %s"
          % (args.url, total, args.threads, args.batch_size, "off" if args.no_gzip else "on"))
    print("  track_event: %.1f µs per call (mean over the calls' own time); all calls returned after %.2f s"
          % (sum(call_seconds) / total * 1e6, tracked))
    print("  delivered: %s after %.2f s, %.0f events/s; sent %d, rejected %d, dropped %d"
          % ("all" if delivered else "NOT all", elapsed, total / elapsed, sender.sent, sender.rejected, sender.dropped))
    sender.close(10)
    # A sample read back once stored (the consumer runs behind the API).
    sample = random.sample([i for chunk in ids for i in chunk], min(20, total))
    deadline = time.monotonic() + 60
    missing = list(sample)
    while missing and time.monotonic() < deadline:
        missing = [i for i in missing if not _stored(client, i)]
        if missing:
            time.sleep(0.5)
    print("  read back: %d of %d sampled events stored" % (len(sample) - len(missing), len(sample)))
    return 0 if delivered and not failures and not missing else 1


def _stored(client: EventClient, event_id: str) -> bool:
    try:
        client.get_event(event_id)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())
