#!/usr/bin/env python3
"""What the local Kafka broker (Tansu, in-memory) costs in CPU, measured on a broker of its own.

The pipeline benchmark shares two cores between the load generator, the API, the broker, the
consumer and ClickHouse, so broker CPU that grows over a run shows up as slower phases. This tool
isolates the two growths README's benchmark section describes:

  producers  broker CPU per produce request (one request per flush), on a fresh broker and again
             after --extra more idempotent producers have registered (Tansu keeps every one and
             rewrites that record on each produce).
  fetch      broker CPU while a producer writes --rate messages/s (envelopes of creates, keyed by
             event id over 2 partitions, librdkafka with linger.ms=2 and lz4, as event-api
             writes), first alone, then with a consumer using event-consumer's fetch
             settings; run it with a small and a large --stored to see the consumer's fetches
             cost more as the partitions hold more batches.

Run with the project's virtualenv (scripts/setup makes it; confluent-kafka brings librdkafka 2.16):
  .venv/bin/python benchmark/broker_cost.py fetch --stored 15000
Each run starts Tansu on --port (default 19096) through scripts/services and stops it afterwards.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# event-consumer's defaults (Sources/Kafka/KafkaConsumer.swift) that shape its fetches.
CONSUMER_FETCH_SETTINGS = {
    "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
    "queued.max.messages.kbytes": 32768, "queued.min.messages": 1,
    "fetch.queue.backoff.ms": 500, "max.partition.fetch.bytes": 16777216,
}
PAYLOAD = b"x" * 250  # for `producers`: about the size of an event envelope


def envelope():
    """(key, value) of a create as event-api writes it: the event id as key, the JSON envelope of
    event-bench's body as value (so that lz4 compresses it as much as it does the real ones)."""
    event_id = str(uuid.uuid4())
    now = int(time.time() * 1000)
    value = (f'{{"v":1,"op":"create","event_id":"{event_id}","received_at_ms":{now},"id_supplied":false,'
             f'"fields":{{"conversation_id":"bench-{event_id[:8]}","event_name":"llm_call",'
             f'"input":"What is the capital of France?","output":"Paris is the capital of France.",'
             f'"latency":12.5,"error":false,"timestamp_ms":{now}}}}}')
    return event_id.encode(), value.encode()


class Broker:
    """A Tansu broker started empty for one measurement, by `scripts/services` as scripts/bench's
    own broker is (state under var/broker-cost/), with the topic `cost` (2 partitions) made."""

    TOPIC = "cost"

    def __init__(self, port):
        self.address = f"127.0.0.1:{port}"
        self.environment = {**os.environ, "KAFKA_BROKERS": self.address, "KAFKA_TOPIC": self.TOPIC, "KAFKA_PARTITIONS": "2",
                            "KAFKA_STATE_DIR": os.path.join(ROOT, "var", "broker-cost", "kafka")}
        self.services("restart")  # fails when another program holds the port
        with open(os.path.join(self.environment["KAFKA_STATE_DIR"], "tansu.pid")) as f:
            self.pid = int(f.read())

    def services(self, verb):
        done = subprocess.run([os.path.join(ROOT, "scripts", "services"), verb, "kafka"], env=self.environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"error: scripts/services {verb} kafka failed:\n{done.stderr}")

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.services("stop")


def idempotent_producer(broker, **extra):
    return Producer({"bootstrap.servers": broker.address, "enable.idempotence": True, "acks": "all", **extra})


def measure_producers(broker, args):
    def per_request(label):
        producer = idempotent_producer(broker, **{"linger.ms": 0})
        producer.produce(broker.TOPIC, b"warm")
        producer.flush()
        cpu, start = broker.cpu_seconds(), time.time()
        for _ in range(args.requests):
            producer.produce(broker.TOPIC, PAYLOAD)
            producer.flush()  # one produce request each
        wall, used = time.time() - start, broker.cpu_seconds() - cpu
        print(f"{label}: {args.requests} produce requests, {1e6 * wall / args.requests:.0f} µs each,"
              f" broker CPU {1e6 * used / args.requests:.0f} µs each", flush=True)

    per_request("fresh broker")
    for _ in range(args.extra):
        producer = idempotent_producer(broker)
        producer.produce(broker.TOPIC, b"y")
        producer.flush()
    per_request(f"after {args.extra} more idempotent producers registered")


def measure_fetch(broker, args):
    topic = broker.TOPIC
    filler = idempotent_producer(broker, **{"linger.ms": 0, "compression.codec": args.compression})
    for _ in range(args.stored):
        for _ in range(24):  # keyed over both partitions: one batch per partition per request
            key, value = envelope()
            filler.produce(topic, value, key=key)
        filler.flush()

    stop = threading.Event()

    def write():
        producer = idempotent_producer(broker, **{"linger.ms": 2, "compression.codec": args.compression})
        start, sent = time.time(), 0
        while not stop.is_set():
            due = int((time.time() - start) * args.rate)
            while sent < due:
                key, value = envelope()
                try:
                    producer.produce(topic, value, key=key)
                    sent += 1
                except BufferError:
                    producer.poll(0.001)
            producer.poll(0)
            time.sleep(0.001)
        producer.flush()

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(2)
    cpu, start = broker.cpu_seconds(), time.time()
    time.sleep(args.seconds)
    alone = (broker.cpu_seconds() - cpu) / (time.time() - start)

    fetches = {"count": 0}

    def on_stats(text):
        stats = json.loads(text)
        fetches["count"] = sum(b.get("req", {}).get("Fetch", 0) for b in stats["brokers"].values())
        fetches["client"] = stats["client_id"]  # as the consumer's handle has it: proof of its settings

    consumer = Consumer({"bootstrap.servers": broker.address, "statistics.interval.ms": 500, "stats_cb": on_stats,
                         **consumer_settings(args)})
    consumer.subscribe([topic])
    joined = time.time()
    while time.time() - joined < 6:  # group join, first assignment, catching up with the writer
        consumer.consume(10000, 0.1)
    cpu, start, fetched, received = broker.cpu_seconds(), time.time(), fetches["count"], 0
    while time.time() - start < args.seconds:
        received += len(consumer.consume(10000, 0.1))
    elapsed = time.time() - start
    with_consumer = (broker.cpu_seconds() - cpu) / elapsed
    fetch_rate = (fetches["count"] - fetched) / elapsed
    stop.set()
    writer.join()
    consumer.close()
    if received == 0 or fetch_rate == 0:
        sys.exit(f"error: the consumer read {received} messages in {fetch_rate * elapsed:.0f} fetches; nothing to measure")
    print(f"{args.stored} produce requests stored before ({2 * args.stored} batches), writer at {args.rate} messages/s ({args.compression}):"
          f" broker {alone:.2f} core with the writer alone, {with_consumer:.2f} with the consumer too"
          f" ({received / elapsed:.0f} messages/s read, {fetch_rate:.2f} fetches/s,"
          f" {1000 * (with_consumer - alone) / max(fetch_rate, 0.01):.0f} ms of broker CPU per fetch)"
          f"; consumer {fetches['client']}" + "".join(f" {name}={value}" for name, value in args.consumer_property), flush=True)


def consumer_settings(args):
    """The measured consumer's librdkafka settings: event-consumer's fetch settings, then each
    --consumer-property on top."""
    return {"group.id": "cost", "client.id": "broker-cost", "enable.auto.commit": False, "auto.offset.reset": "latest",
            **CONSUMER_FETCH_SETTINGS, **dict(args.consumer_property)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=19096)
    commands = parser.add_subparsers(dest="command", required=True)
    producers = commands.add_parser("producers", help="broker CPU per produce request vs registered producers")
    producers.add_argument("--requests", type=int, default=2000)
    producers.add_argument("--extra", type=int, default=300)
    fetch = commands.add_parser("fetch", help="broker CPU of the consumer's fetches vs stored batches")
    fetch.add_argument("--stored", type=int, default=15000, help="produce requests stored before measuring")
    fetch.add_argument("--rate", type=int, default=25000, help="messages/s written while measuring")
    fetch.add_argument("--seconds", type=float, default=12)
    fetch.add_argument("--compression", default="lz4", help="the writers' compression.codec (event-api: lz4)")
    fetch.add_argument("--consumer-property", metavar="NAME=VALUE", action="append", default=[],
                       type=lambda text: tuple(text.split("=", 1)), help="a librdkafka property for the consumer")
    args = parser.parse_args()
    if args.command == "fetch":
        # librdkafka checks the settings when a client is made: refuse bad ones before the broker
        # starts and the batches are stored, not after.
        try:
            Consumer(consumer_settings(args)).close()
        except KafkaException as error:
            sys.exit(f"error: the consumer's settings: {error.args[0].str()}")
    broker = Broker(args.port)
    try:
        # The measurement's clients are freed when it returns, before the broker stops, so
        # librdkafka has no lost connection to report.
        {"producers": measure_producers, "fetch": measure_fetch}[args.command](broker, args)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
