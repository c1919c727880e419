"""Fault tests of the real event-consumer process against the local Kafka (Tansu) and ClickHouse.

Run by scripts/test.d/40-consumer-faults (with .venv/bin/python and the bundled librdkafka on
LD_LIBRARY_PATH). Every scenario uses a topic, dead-letter topic, consumer group and ClickHouse
database of its own, produces envelopes exactly as EventEnvelope.encoded() writes them (key = event
id text, idempotent producer) and checks the deduplicated table against a model of the planner:

  1 flows      create/update/delete, partial update, 1000 rapid updates, update+delete in one
               batch, dead letters (unknown ids, undecodable messages) while the rest flows
  2 kill9      SIGKILL between an INSERT and its offset commit, restart, no loss, no visible duplicate
  3 chdown     ClickHouse stopped for 10 s under a steady load: retries, nothing lost or duplicated,
               each dead letter of the retried batches written once
  4 sigterm    SIGTERM mid-load: exit 0 within 25 s, restart, every message present exactly once
  5 backlog    pre-loaded topic: batches grow from waiting messages up to CONSUMER_MAX_BATCH_SIZE, exact state
  6 large-rows a backlog of small updates of large stored events: the grown batch is cut to
               CONSUMER_MAX_BATCH_ROWS_MB, exact state
  7 rebalance-retries  INSERTs fail (table detached) while a second consumer joins and dies: every
               partition paused by the retries delivers again once the table is back, exact state
  8 cooperative under the cooperative-sticky protocol and a steady load, two consumers join, one is
               killed and one leaves: only moving partitions are revoked, exact state

  consumer_faults.py [--only 1,3] [--keep]   (--keep: leave the databases and logs for inspection)

Prints one PASS/FAIL line per check and exits 1 when any check failed.
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_admin  # noqa: E402  (the helper scripts/services uses to create topics)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKERS = os.environ.get("KAFKA_BROKERS", "localhost:9092")
CH_HOST = os.environ.get("CLICKHOUSE_HOST", "127.0.0.1")
CH_PORT = os.environ.get("CLICKHOUSE_PORT", "9000")
BINARY = os.environ.get("EVENT_CONSUMER_BIN", os.path.join(ROOT, ".build", "debug", "event-consumer"))
RUN_ID = uuid.uuid4().hex[:8]
PARTITIONS = 3

failures = []
started_processes = []  # every consumer process this run started, to end them on any exit
created_topics = []
created_databases = []


def log(text):
    print(text, flush=True)


def check(scenario, name, ok, detail=""):
    log(f"{'PASS' if ok else 'FAIL'} [{scenario}] {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(f"[{scenario}] {name}: {detail}")
    return ok


# MARK: Envelopes, byte for byte as EventEnvelope.encoded() writes them

def json_string(text):
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20:
            out.append("\\u00%02x" % code)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_number(value):
    value = float(value)
    if value == round(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def json_bool(value):
    return "true" if value else "false"


CREATE_FIELDS = ("conversation_id", "event_name", "input", "output", "latency", "error", "timestamp_ms")
PATCH_FIELDS = ("event_name", "input", "output", "latency", "error")


def encode_fields(fields, order):
    parts = []
    for name in order:
        if name not in fields:
            continue
        value = fields[name]
        if name == "timestamp_ms":
            text = str(int(value))
        elif name == "latency":
            text = json_number(value)
        elif name == "error":
            text = json_bool(value)
        else:
            text = json_string(value)
        parts.append(f'"{name}":{text}')
    return "{" + ",".join(parts) + "}"


class Message:
    """One produced message; partition and offset come from its delivery report."""

    def __init__(self, op, event_id=None, fields=None, value=None, key=None, id_supplied=False):
        self.op = op  # create, update, delete or raw (an arbitrary value)
        self.event_id = event_id
        self.fields = fields or {}
        self.partition = None
        self.offset = None
        if op == "raw":
            self.key = key
            self.value = value
            return
        self.key = event_id.encode()
        received = int(time.time() * 1000)
        text = f'{{"v":1,"op":"{op}","event_id":"{event_id}","received_at_ms":{received}'
        if op == "create":
            text += f',"id_supplied":{json_bool(id_supplied)},"fields":{encode_fields(self.fields, CREATE_FIELDS)}'
        elif op == "update":
            text += f',"fields":{encode_fields(self.fields, PATCH_FIELDS)}'
        text += "}"
        self.value = text.encode()


def new_id():
    # Server-generated ids are UUIDv7 (time-ordered); the consumer treats every id alike.
    ms = int(time.time() * 1000)
    rand = random.getrandbits(74)
    high = (ms << 16) | 0x7000 | (rand >> 62 & 0x0FFF)
    low = 0x8000000000000000 | (rand & 0x3FFFFFFFFFFFFFFF)
    return str(uuid.UUID(int=(high << 64) | low))


WORDS = ["alpha", "beta", "gamma", "tab\there", 'quote " mark', "back\\slash", "line\nbreak", "ünïcødé ✓", "", "x" * 300]


def random_create_fields(rng, timestamp_base):
    return {
        "conversation_id": f"conv-{rng.randrange(200)}",
        "event_name": rng.choice(["llm_call", "tool_call", "retrieval", "user_message"]),
        "input": rng.choice(WORDS) + str(rng.randrange(10**6)),
        "output": rng.choice(WORDS),
        "latency": rng.choice([0, 12.5, rng.randrange(5000), round(rng.uniform(0, 2000), 3)]),
        "error": rng.random() < 0.2,
        "timestamp_ms": timestamp_base - rng.randrange(3_600_000),
    }


def random_patch(rng):
    names = rng.sample(PATCH_FIELDS, rng.randrange(1, len(PATCH_FIELDS) + 1))
    patch = {}
    for name in names:
        if name == "event_name":
            patch[name] = f"renamed-{rng.randrange(1000)}"
        elif name == "latency":
            patch[name] = round(rng.uniform(0, 9000), 2)
        elif name == "error":
            patch[name] = rng.random() < 0.5
        else:
            patch[name] = rng.choice(WORDS) + f"-upd{rng.randrange(10**6)}"
    return patch


def timestamp_base():
    # Well inside the current month, so every row lands in one table partition.
    now = int(time.time() * 1000)
    return now - 60_000


# MARK: The model: what the batch planner must make of the messages, in Kafka order

class Model:
    def __init__(self):
        self.rows = {}  # event id -> dict(fields..., version, deleted)
        self.dead = []  # (message, reason prefix)

    def apply(self, message):
        assert message.offset is not None, "apply after the delivery report"
        if message.op == "raw":
            self.dead.append((message, None))
            return
        row = self.rows.get(message.event_id)
        if message.op == "create":
            if row is None:
                self.rows[message.event_id] = dict(message.fields, version=message.offset, deleted=False)
        elif message.op == "update":
            if row is None:
                self.dead.append((message, f"update of unknown event {message.event_id}"))
            elif row["deleted"]:
                self.dead.append((message, f"update of deleted event {message.event_id}"))
            else:
                row.update(message.fields)
                row["version"] = message.offset
        elif message.op == "delete":
            if row is None:
                self.dead.append((message, f"delete of unknown event {message.event_id}"))
            elif not row["deleted"]:
                row["deleted"] = True
                row["version"] = message.offset

    def live(self):
        return {k: v for k, v in self.rows.items() if not v["deleted"]}


# MARK: Kafka

class Sender:
    """An idempotent producer that records where each message landed."""

    def __init__(self, topic):
        self.topic = topic
        self.producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 5, "log_level": 3})
        self.errors = []
        self.sent = []

    def send(self, message):
        def delivered(err, msg, message=message):
            if err is not None:
                self.errors.append(str(err))
            else:
                message.partition = msg.partition()
                message.offset = msg.offset()
        while True:
            try:
                self.producer.produce(self.topic, key=message.key, value=message.value, on_delivery=delivered)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)
        self.sent.append(message)

    def flush(self):
        remaining = self.producer.flush(30)
        if remaining or self.errors:
            raise RuntimeError(f"produce failed: {remaining} undelivered, errors {self.errors[:3]}")


def create_topic(name, partitions):
    if kafka_admin.ensure_topic(BROKERS, name, partitions) != 0:
        raise RuntimeError(f"cannot create topic {name}")
    created_topics.append(name)


class GroupWatch:
    """Committed offsets of a consumer group, asked of the group coordinator without joining.

    Progress is measured against the offsets of the delivery reports, not the broker's high
    watermarks: Tansu answers ListOffsets(latest) with the last record batch's base offset + 1,
    which is too low whenever a batch holds several records."""

    def __init__(self, group, topic, partitions=PARTITIONS):
        self.topic = topic
        self.partitions = partitions
        self.client = Consumer({"bootstrap.servers": BROKERS, "group.id": group, "enable.auto.commit": False,
                                "log_level": 3})

    def committed(self):
        result = self.client.committed([TopicPartition(self.topic, p) for p in range(self.partitions)], timeout=10)
        return {tp.partition: (tp.offset if tp.offset >= 0 else 0) for tp in result}

    def close(self):
        self.client.close()


def end_offsets(messages):
    """Per partition, the offset after the last delivered message."""
    ends = {}
    for m in messages:
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    return ends


def read_topic(topic, expected, partitions=1):
    """The messages of a topic from the start: until `expected` arrived, then 1 s more for extras."""
    reader = Consumer({"bootstrap.servers": BROKERS, "group.id": f"faults-reader-{uuid.uuid4().hex[:8]}",
                       "enable.auto.commit": False, "log_level": 3})
    reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    messages = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = reader.poll(0.2)
        if msg is not None and not msg.error():
            messages.append(msg)
        if len(messages) >= expected:
            deadline = min(deadline, time.monotonic() + 1)
    reader.close()
    return messages


# MARK: ClickHouse

def ch(sql):
    result = subprocess.run(["clickhouse-client", "--host", CH_HOST, "--port", CH_PORT, "--query", sql],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"clickhouse-client failed ({result.returncode}): {result.stderr.strip()[:500]}\n  query: {sql[:300]}")
    return result.stdout


def ch_int(sql):
    return int(ch(sql).strip() or 0)


LATEST = ("conversation_id", "event_name", "input", "output", "latency", "error", "timestamp_ms", "is_deleted")


def dedup_sql(db, live_only=True):
    """Per event id the columns of its highest version; deleted events dropped. The inner aliases
    differ from the column names, or ClickHouse would nest `argMax(..., version)` in `max(version)`."""
    inner = ", ".join(f"argMax({c}, version) AS latest_{c}" for c in LATEST)
    outer = ", ".join(f"latest_{c} AS {c}" for c in LATEST if c != "is_deleted")
    sql = (f"SELECT event_id, {outer}, latest_version AS version, latest_is_deleted AS is_deleted FROM "
           f"(SELECT event_id, {inner}, max(version) AS latest_version FROM {db}.events GROUP BY event_id)")
    return sql + " WHERE latest_is_deleted = 0" if live_only else sql


def dedup_rows(db):
    rows = {}
    for line in ch(dedup_sql(db) + " FORMAT JSONEachRow").splitlines():
        row = json.loads(line)
        rows[row["event_id"]] = row
    return rows


def wait_clickhouse_up(timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ch("SELECT 1")
            return True
        except Exception:
            time.sleep(0.3)
    return False


def services(*args):
    subprocess.run([os.path.join(ROOT, "scripts", "services"), *args], check=True, timeout=120)


# MARK: The consumer process

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConsumerProcess:
    def __init__(self, name, logdir, topic, dlq, group, database, batch_size=500, flush_ms=200, max_batch_size=None, env=None):
        self.name = name
        self.logdir = logdir
        self.env = dict(os.environ, CLICKHOUSE_HOST=CH_HOST, CLICKHOUSE_PORT=CH_PORT, CLICKHOUSE_DATABASE=database,
                        KAFKA_BROKERS=BROKERS, KAFKA_TOPIC=topic, KAFKA_DLQ_TOPIC=dlq, KAFKA_GROUP_ID=group,
                        CONSUMER_BATCH_SIZE=str(batch_size), CONSUMER_FLUSH_INTERVAL_MS=str(flush_ms), LOG_LEVEL="debug")
        if max_batch_size is not None:
            self.env["CONSUMER_MAX_BATCH_SIZE"] = str(max_batch_size)
        self.env.update(env or {})
        self.process = None

    def start(self):
        self.port = free_port()
        self.env["CONSUMER_METRICS_PORT"] = str(self.port)
        self.log_path = os.path.join(self.logdir, f"{self.name}-{len(started_processes) + 1}.log")
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen([BINARY], env=self.env, stdin=subprocess.DEVNULL, stdout=self.log_file,
                                        stderr=subprocess.STDOUT)
        started_processes.append(self.process)
        return self

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.process.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM, then SIGKILL after 30 s; returns the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            if self.wait_exit(30) is None:
                self.signal(signal.SIGKILL)
                self.process.wait()
        self.log_file.close()
        return self.process.returncode

    def metrics(self, timeout=2):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=timeout).read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    values[name] = float(value)
                except ValueError:
                    pass
        return values

    def metric(self, name, default=0.0):
        try:
            return self.metrics().get(name, default)
        except Exception:
            return default

    def log_text(self):
        if not self.log_file.closed:
            self.log_file.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def count_lines(self, needle):
        return sum(1 for line in self.log_text().splitlines() if needle in line)

    def tail(self, lines=25):
        return "\n".join(self.log_text().splitlines()[-lines:])


def stop_checked(s, consumer, who="consumer"):
    """Stops a scenario's consumer with SIGTERM and checks that it exits 0."""
    rc = consumer.stop()
    check(s.key, f"{who} exits 0 on SIGTERM", rc == 0, f"exit {rc}")


def wait_consumed(scenario, s, consumers, timeout):
    """Until the group committed every message delivered to the scenario's topic."""
    ends = end_offsets(s.sender.sent)
    deadline = time.monotonic() + timeout
    behind = None
    while time.monotonic() < deadline:
        for c in consumers:
            if not c.alive():
                check(scenario, f"consumer {c.name} stays up", False,
                      f"exited with {c.process.returncode}; log tail:\n{c.tail()}")
                return False
        committed = s.watch.committed()
        behind = sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
        if behind == 0:
            return True
        time.sleep(0.3)
    check(scenario, "all messages consumed", False, f"{behind} messages still uncommitted after {timeout} s")
    for c in consumers:
        log(f"--- {c.name} log tail:\n{c.tail()}")
    return False


def freeze_merges(db, timeout=30):
    """Stops background merges of the consumer's table as soon as it exists, so that every written
    row stays visible until verify() (replayed writes, one row per batch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ch_int(f"SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'events'"):
            ch(f"SYSTEM STOP MERGES {db}.events")
            return
        time.sleep(0.05)
    raise RuntimeError(f"the consumer did not create {db}.events within {timeout} s")


# MARK: Verification

def verify(scenario, db, model):
    """The deduplicated table equals the model: same live ids, every field at its final value,
    versions = offsets of the last applied message, no visible duplicate, collapses under FINAL."""
    live = model.live()
    actual = dedup_rows(db)
    missing = [k for k in live if k not in actual]
    extra = [k for k in actual if k not in live]
    check(scenario, "live events", len(actual) == len(live) and not missing and not extra,
          f"{len(actual)} visible, {len(live)} expected, {len(missing)} missing, {len(extra)} unexpected"
          + (f" (e.g. missing {missing[:2]}, unexpected {extra[:2]})" if missing or extra else ""))
    wrong = []
    for event_id, want in live.items():
        got = actual.get(event_id)
        if got is None:
            continue
        for name in ("conversation_id", "event_name", "input", "output", "timestamp_ms"):
            if str(got[name]) != str(want[name]):
                wrong.append(f"{event_id} {name}: {got[name]!r} != {want[name]!r}")
        if not math.isclose(float(got["latency"]), float(want["latency"]), rel_tol=1e-12, abs_tol=1e-12):
            wrong.append(f"{event_id} latency: {got['latency']!r} != {want['latency']!r}")
        if int(got["error"]) != int(bool(want["error"])):
            wrong.append(f"{event_id} error: {got['error']!r} != {want['error']!r}")
        if int(got["version"]) != want["version"]:
            wrong.append(f"{event_id} version: {got['version']} != {want['version']}")
    check(scenario, "every field at its final value (and version = offset of the last message)", not wrong,
          f"{len(live) - len(set(w.split()[0] for w in wrong))}/{len(live)} events exact"
          + (f"; e.g. {wrong[:3]}" if wrong else ""))
    table = f"{db}.events"
    all_versions = ch_int(f"SELECT count() FROM ({dedup_sql(db, live_only=False)})")
    distinct_ids = ch_int(f"SELECT uniqExact(event_id) FROM {table}")
    check(scenario, "no visible duplicate (dedup rows == distinct ids)",
          all_versions == distinct_ids == len(model.rows), f"{all_versions} == {distinct_ids} == {len(model.rows)} ids")
    raw_rows = ch_int(f"SELECT count() FROM {table}")
    rewritten = ch_int(f"SELECT count() FROM (SELECT event_id, version, count() AS c FROM {table} GROUP BY event_id, version HAVING c > 1)")
    differing = ch_int(f"SELECT count() FROM (SELECT event_id, version, uniqExact(conversation_id, event_name, input, output, "
                       f"latency, error, timestamp_ms, received_at, is_deleted) AS variants FROM {table} "
                       f"GROUP BY event_id, version HAVING variants > 1)")
    check(scenario, "rows of one (event_id, version) are identical", differing == 0,
          f"{differing} (event_id, version) with differing rows; {rewritten} written more than once")
    ch(f"SYSTEM START MERGES {table}")
    ch(f"OPTIMIZE TABLE {table} FINAL")
    final_rows = ch_int(f"SELECT count() FROM {table} FINAL")
    final_live = ch_int(f"SELECT countIf(is_deleted = 0) FROM {table} FINAL")
    check(scenario, "after OPTIMIZE FINAL: count() FINAL == ids, live == expected",
          final_rows == len(model.rows) and final_live == len(live),
          f"{final_rows} rows ({len(model.rows)} ids), {final_live} live ({len(live)} expected); "
          f"before: {raw_rows} raw rows, {rewritten} (event_id, version) written more than once")
    return rewritten


def verify_dead_letters(scenario, dlq, topic, model):
    letters = [json.loads(m.value()) for m in read_topic(dlq, len(model.dead))]
    by_position = {(l["partition"], l["offset"]): l for l in letters}
    problems = []
    for message, reason in model.dead:
        letter = by_position.get((message.partition, message.offset))
        if letter is None:
            problems.append(f"no dead letter for {message.op} at {message.partition}/{message.offset}")
            continue
        if reason is not None and letter["reason"] != reason:
            problems.append(f"reason {letter['reason']!r} != {reason!r}")
        if letter["topic"] != topic:
            problems.append(f"topic {letter['topic']!r}")
        try:
            original = message.value.decode()
        except UnicodeDecodeError:
            original = None
        if original is not None and letter["message_truncated"]:
            original = message.value[:64 << 10].decode(errors="ignore")  # cut to 64 KiB (on a byte boundary)
        if original is not None and letter["message"] != original:
            problems.append(f"message {letter['message'][:60]!r} is not the original")
    check(scenario, "dead letters: one per unusable message, with reason, position and original",
          len(letters) == len(model.dead) and not problems,
          f"{len(letters)} letters, {len(model.dead)} expected" + (f"; {problems[:4]}" if problems else ""))
    return letters


# MARK: Scenarios

class Scenario:
    def __init__(self, number, title, logdir):
        self.name = f"s{number}-{title}"
        self.key = f"s{number}"
        suffix = f"{RUN_ID}_{number}"
        self.topic = f"faults-{suffix}"
        self.dlq = f"faults-{suffix}.dlq"
        self.group = f"faults-{suffix}"
        self.db = f"faults_{suffix}"
        self.logdir = logdir
        create_topic(self.topic, PARTITIONS)
        create_topic(self.dlq, 1)
        created_databases.append(self.db)
        self.sender = Sender(self.topic)
        self.model = Model()
        self.watch = GroupWatch(self.group, self.topic)

    def consumer(self, **options):
        return ConsumerProcess(self.key, self.logdir, self.topic, self.dlq, self.group, self.db, **options)

    def send_all(self, messages):
        for m in messages:
            self.sender.send(m)
        self.sender.flush()
        for m in messages:
            self.model.apply(m)

    def close(self):
        self.watch.close()


def scenario_flows(logdir):
    s = Scenario(1, "flows", logdir)
    rng = random.Random(1)
    base = timestamp_base()
    consumer = s.consumer(batch_size=100, flush_ms=500).start()
    freeze_merges(s.db)
    try:
        # Phase A: creates.
        ids = [new_id() for _ in range(12)]
        creates = {i: random_create_fields(rng, base) for i in ids}
        creates[ids[8]]["input"] = 'special: "quoted" \\ tab\t newline\n control\x01 ünïcødé ✓'
        s.send_all([Message("create", i, creates[i]) for i in ids])
        supplied = new_id()
        s.send_all([Message("create", supplied, random_create_fields(rng, base), id_supplied=True)])
        if not wait_consumed(s.key, s, [consumer], 40):
            return
        e_full, e_partial, e_delete, e_pair, _, e_twice, e_rapid, e_dlq_after_delete = ids[:8]
        untouched = dict(creates[e_partial])
        # Phase B: everything in one burst (one batch: 100 messages, 500 ms).
        fresh_triple, fresh_pair, unknown_u, unknown_d = new_id(), new_id(), new_id(), new_id()
        burst = [
            Message("update", e_full, {"event_name": "full", "input": "in2", "output": "out2", "latency": 42.25, "error": True}),
            Message("update", e_partial, {"output": "only the output changed"}),
            Message("delete", e_delete),
            Message("update", e_pair, {"output": "updated then deleted in one batch"}),
            Message("delete", e_pair),
            Message("create", fresh_triple, random_create_fields(rng, base)),
            Message("update", fresh_triple, {"latency": 7}),
            Message("delete", fresh_triple),
            Message("create", fresh_pair, random_create_fields(rng, base)),
            Message("update", fresh_pair, {"error": True, "input": "patched in the create's batch"}),
            Message("delete", e_twice),
            Message("delete", e_twice),
            Message("update", unknown_u, {"output": "nobody created me"}),
            Message("delete", unknown_d),
            Message("delete", e_dlq_after_delete),
            Message("update", e_dlq_after_delete, {"output": "too late"}),
            Message("create", supplied, random_create_fields(rng, base), id_supplied=True),  # retried create: ignored
            Message("raw", key=b"garbage", value=b"not json {"),
            Message("raw", key=b"binary", value=b"\xff\xfe\x00\x01"),
            Message("raw", key=unknown_u.encode(), value=json.dumps({"v": 2, "op": "delete", "event_id": unknown_u,
                                                                    "received_at_ms": 1}).encode()),
            Message("raw", key=b"bad-update", value=(
                f'{{"v":1,"op":"update","event_id":"{e_full}","received_at_ms":1,"fields":{{"conversation_id":"x"}}}}').encode()),
            # Foreign writers (review findings): a huge op that the reason quotes, with a huge key
            # (the dead letter must stay within the broker's limit), and a create accepted "at"
            # Int64.min (it trapped the consumer after its INSERT, before the commit).
            Message("raw", key=b"k" * 200_000, value=(
                f'{{"v":1,"op":"{"x" * 600_000}","event_id":"{new_id()}","received_at_ms":1}}').encode()),
            Message("raw", key=b"min-received", value=(
                f'{{"v":1,"op":"create","id_supplied":false,"event_id":"{new_id()}","received_at_ms":-9223372036854775808,'
                f'"fields":{{"conversation_id":"c","event_name":"e","timestamp_ms":{base}}}}}').encode()),
        ]
        s.send_all(burst)
        after = [Message("create", new_id(), random_create_fields(rng, base)) for _ in range(5)]
        s.send_all(after)  # the flow goes on after the dead letters
        if not wait_consumed(s.key, s, [consumer], 40):
            return
        # Phase C: 1000 rapid updates of one event (batches of 100: the cache path, many batches).
        rapid = [Message("update", e_rapid, {"output": f"value {n}", "latency": n + 0.5}) for n in range(1000)]
        s.send_all(rapid)
        if not wait_consumed(s.key, s, [consumer], 60):
            return

        live = dedup_rows(s.db)
        got = live.get(e_full, {})
        check(s.key, "full update", got.get("event_name") == "full" and got.get("output") == "out2"
              and float(got.get("latency", -1)) == 42.25 and int(got.get("error", 0)) == 1, f"{got.get('event_name')!r} {got.get('output')!r}")
        got = live.get(e_partial, {})
        unchanged = all(str(got.get(k)) == str(untouched[k]) for k in ("conversation_id", "event_name", "input", "timestamp_ms"))
        check(s.key, "partial update changes only the given field",
              got.get("output") == "only the output changed" and unchanged
              and math.isclose(float(got.get("latency", -1)), float(untouched["latency"])),
              f"output {got.get('output')!r}, others {'unchanged' if unchanged else 'CHANGED'}")
        check(s.key, "special characters survive", live.get(ids[8], {}).get("input") == creates[ids[8]]["input"])
        check(s.key, "deleted events are gone", all(i not in live for i in (e_delete, e_pair, fresh_triple, e_twice, e_dlq_after_delete)))
        pair_versions = sorted(int(v) for v in ch(f"SELECT version FROM {s.db}.events WHERE event_id = toUUID('{e_pair}')").split())
        pair_offsets = [m.offset for m in burst[3:5]]
        check(s.key, "update + delete of one event in one batch: one deleted row, no separate update row",
              len(pair_versions) == 2 and pair_versions[1] == pair_offsets[1] and pair_offsets[0] not in pair_versions,
              f"stored versions {pair_versions}, update/delete offsets {pair_offsets}")
        got = live.get(fresh_pair, {})
        check(s.key, "create + update in one batch", int(got.get("error", 0)) == 1 and got.get("input") == "patched in the create's batch")
        got = live.get(e_rapid, {})
        rapid_rows = ch_int(f"SELECT count() FROM {s.db}.events WHERE event_id = toUUID('{e_rapid}')")
        check(s.key, "1000 rapid updates end in the last value",
              got.get("output") == "value 999" and float(got.get("latency", -1)) == 999.5 and int(got.get("version", -1)) == rapid[-1].offset,
              f"output {got.get('output')!r}, version {got.get('version')} (last offset {rapid[-1].offset}), {rapid_rows} stored rows")
        check(s.key, "retried create with a client id is ignored", consumer.metric("consumer_duplicate_creates_total") == 1,
              f"consumer_duplicate_creates_total {consumer.metric('consumer_duplicate_creates_total')}")
        letters = verify_dead_letters(s.key, s.dlq, s.topic, s.model)
        log(f"      dead-letter reasons: {[l['reason'][:70] for l in letters]}")
        raw_reasons = [l["reason"] for l in letters if l["event_id"] is None]
        check(s.key, "undecodable messages: reasons name the problem",
              sum(r.startswith("not JSON") for r in raw_reasons) == 2 and any(r.startswith("unsupported envelope version") for r in raw_reasons),
              f"{[r[:70] for r in raw_reasons]}")
        check(s.key, "invalid update is a dead letter with its reason",
              any(l["reason"].startswith("invalid update") and "conversation_id" in l["reason"] for l in letters))
        def letter_of(message):
            return next((l for l in letters if l["offset"] == message.offset and l["partition"] == message.partition), None)
        huge = letter_of(burst[21])
        check(s.key, "a message quoted in its reason still makes a dead letter within the broker's limit",
              huge is not None and huge["reason"] == "unknown op " + "x" * (4096 - 11) + f"… ({600_000 - 4096 + 11} more bytes cut)"
              and huge["message_truncated"] is True,
              f"reason {huge['reason'][-40:]!r}" if huge else "no letter")
        earliest = letter_of(burst[22])
        check(s.key, "a create accepted before 1970 is a dead letter, not a crash",
              earliest is not None and earliest["reason"] == "received_at_ms -9223372036854775808 is outside 1970-01-01 to 2105-12-31",
              f"{earliest['reason'] if earliest else None!r}")
        binary = [l for l in letters if l["offset"] == burst[18].offset and l["partition"] == burst[18].partition]
        check(s.key, "non-UTF-8 message kept as base64", bool(binary) and binary[0]["message"] == "//4AAQ==",
              f"{binary[0]['message'] if binary else None!r}")
        verify(s.key, s.db, s.model)
    finally:
        stop_checked(s, consumer)
        s.close()


def load_sequence(rng, count, creates_first, delete_share=0.2, update_share=0.4):
    """Creates, then a mix: updates and deletes of earlier created, live events."""
    base = timestamp_base()
    messages, live = [], []
    for n in range(count):
        if n < creates_first or not live or rng.random() > update_share + delete_share * 0.5:
            event_id = new_id()
            messages.append(Message("create", event_id, random_create_fields(rng, base)))
            live.append(event_id)
        elif rng.random() < delete_share:
            index = rng.randrange(len(live))
            live[index], live[-1] = live[-1], live[index]
            messages.append(Message("delete", live.pop()))
        else:
            messages.append(Message("update", rng.choice(live), random_patch(rng)))
    return messages


def written_uncommitted(s):
    """(rows whose version is at or past their partition's committed offset, committed offsets)."""
    committed = s.watch.committed()
    partition_of = {m.event_id: m.partition for m in s.sender.sent}
    count = 0
    for line in ch(f"SELECT event_id, max(version) FROM {s.db}.events GROUP BY event_id FORMAT TabSeparated").splitlines():
        event_id, version = line.split("\t")
        if int(version) >= committed[partition_of[event_id]]:
            count += 1
    return count, committed


def scenario_kill9(logdir):
    s = Scenario(2, "kill9", logdir)
    rng = random.Random(2)
    total = 20000
    s.send_all(load_sequence(rng, total, creates_first=3000))
    log(f"      preloaded {total} messages: {sum(m.op == 'create' for m in s.sender.sent)} creates, "
        f"{sum(m.op == 'update' for m in s.sender.sent)} updates, {sum(m.op == 'delete' for m in s.sender.sent)} deletes")
    first = s.consumer(batch_size=500, flush_ms=200).start()
    freeze_merges(s.db)
    second = None
    try:
        # Watch rows_inserted (incremented right after the INSERT, before the commit); stop the
        # process at once and kill it only when ClickHouse holds rows whose offsets are not committed.
        attempts, hit, last = 0, None, 0.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.alive():
            try:
                inserted = first.metrics(timeout=1).get("consumer_rows_inserted_total", 0.0)
            except Exception:
                time.sleep(0.05)
                continue
            if inserted == last:
                time.sleep(0.001)
                continue
            last = inserted
            first.signal(signal.SIGSTOP)
            attempts += 1
            # A commit already on the wire when the process stopped still lands: give it time.
            time.sleep(0.3)
            uncommitted, committed = written_uncommitted(s)
            if uncommitted > 0 or attempts >= 40 or sum(committed.values()) > total * 0.6:
                hit = (uncommitted, sum(committed.values()))
                first.signal(signal.SIGKILL)
                break
            first.signal(signal.SIGCONT)
        first.wait_exit(10)
        first.log_file.close()
        if hit is None:
            check(s.key, "consumer killed mid-stream", False, "no batch was written within 60 s")
            return
        raw_at_kill = ch_int(f"SELECT count() FROM {s.db}.events")
        # The scenario's point is a kill between INSERT and commit: a run that missed that window
        # would pass without showing the redelivery, so it fails instead (in CI runs so far the
        # first or second stop hit it).
        check(s.key, "SIGKILL between INSERT and commit",
              hit[0] > 0 and hit[1] < total and first.process.returncode == -signal.SIGKILL,
              f"after {attempts} stop(s): {raw_at_kill} rows written, {hit[1]}/{total} offsets committed, "
              f"{hit[0]} events written past the committed offsets"
              + ("" if hit[0] else " (the window between INSERT and commit was not hit)"))
        second = s.consumer(batch_size=500, flush_ms=200).start()
        if not wait_consumed(s.key, s, [second], 90):
            return
        replays = second.metric("consumer_replayed_messages_total")
        consumed = second.metric("consumer_messages_consumed_total")
        check(s.key, "the restarted consumer resumed at the committed offsets", consumed == total - hit[1],
              f"{int(consumed)} messages consumed after the restart, {total - hit[1]} uncommitted at the kill")
        rewritten = verify(s.key, s.db, s.model)
        log(f"      restart: {int(replays)} messages skipped as already applied, {rewritten} rows written twice "
            f"(identical replays), {first.count_lines('batch written')} + {second.count_lines('batch written')} batches")
        check(s.key, "the written-but-uncommitted batch was consumed again", replays > 0 or rewritten > 0,
              f"replays {int(replays)}, rewritten rows {rewritten}")
    finally:
        for c in (first, second):
            if c is not None:
                if c.alive():
                    c.signal(signal.SIGCONT)
                c.stop()
        s.close()


class SteadyProducer(threading.Thread):
    """Sends messages at a steady rate from a thread of its own."""

    def __init__(self, scenario, messages, rate):
        super().__init__(daemon=True)
        self.s = scenario
        self.messages = messages
        self.rate = rate
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            start = time.monotonic()
            step = max(1, self.rate // 20)
            for n in range(0, len(self.messages), step):
                for m in self.messages[n:n + step]:
                    self.s.sender.send(m)
                pause = start + (n + step) / self.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            self.s.sender.flush()
        except Exception as exc:  # reported by the scenario
            self.error = exc
        finally:
            self.done.set()


def finish_steady_load(s, producer, messages, consumers, timeout):
    """Once the steady load is sent: checks it went out, applies it to the model and waits until
    the group committed all of it; False when the wait failed (already reported)."""
    producer.done.wait(60)
    check(s.key, "steady load produced", producer.error is None and producer.done.is_set(),
          f"{len(s.sender.sent)} messages, error {producer.error}")
    for m in messages:
        s.model.apply(m)
    return wait_consumed(s.key, s, consumers, timeout)


def scenario_clickhouse_down(logdir):
    s = Scenario(3, "chdown", logdir)
    rng = random.Random(3)
    total = 20000
    messages = load_sequence(rng, total, creates_first=2000, delete_share=0.15, update_share=0.35)
    # An undecodable message in every 50, so that the batches retried through the outage hold
    # dead letters: each must reach the dead-letter topic once, not once per attempt.
    for n in range(len(messages) - 1, 0, -50):
        messages.insert(n, Message("raw", key=f"raw-{n}".encode(), value=b"not json {"))
    consumer = s.consumer(batch_size=500, flush_ms=200).start()
    freeze_merges(s.db)
    # 25 s of load: it goes on through the stop (~7 s on 18.16), the 10 s down and the restart.
    producer = SteadyProducer(s, messages, rate=800)
    clickhouse_stopped = False
    try:
        # Start the load once the consumer has its partitions.
        deadline = time.monotonic() + 30
        while consumer.metric("consumer_assigned_partitions") < PARTITIONS and time.monotonic() < deadline:
            time.sleep(0.2)
        producer.start()
        time.sleep(3)
        before = ch_int(f"SELECT count() FROM {s.db}.events")
        t0 = time.monotonic()
        clickhouse_stopped = True
        services("stop", "clickhouse")
        stopped_after = time.monotonic() - t0
        time.sleep(10)
        t1 = time.monotonic()
        services("start", "clickhouse")
        clickhouse_stopped = False
        log(f"      ClickHouse: {before} rows before the stop; stop took {stopped_after:.1f} s, down 10 s, "
            f"start took {time.monotonic() - t1:.1f} s; {len(s.sender.sent)}/{len(messages)} messages produced so far")
        if not finish_steady_load(s, producer, messages, [consumer], 90):
            return
        retries = consumer.metric("consumer_insert_retries_total")
        failed_lines = consumer.count_lines("batch write failed; retrying")
        check(s.key, "the consumer retried while ClickHouse was down", retries > 0,
              f"consumer_insert_retries_total {int(retries)}, {failed_lines} 'batch write failed; retrying' lines, "
              f"{consumer.count_lines('batch not written before the deadline')} given up")
        verify(s.key, s.db, s.model)
        verify_dead_letters(s.key, s.dlq, s.topic, s.model)
    finally:
        if clickhouse_stopped or not wait_clickhouse_up(5):
            services("start", "clickhouse")
        producer.done.wait(60)
        stop_checked(s, consumer)
        s.close()


def scenario_sigterm(logdir):
    s = Scenario(4, "sigterm", logdir)
    rng = random.Random(4)
    total = 20000
    messages = load_sequence(rng, total, creates_first=2000)
    preload, streamed = messages[:10000], messages[10000:]
    s.send_all(preload)
    first = s.consumer(batch_size=500, flush_ms=200).start()
    freeze_merges(s.db)
    second = None
    producer = SteadyProducer(s, streamed, rate=1500)
    try:
        producer.start()
        deadline = time.monotonic() + 40
        while raw_rows(s.db) == 0 and first.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        committed_before = sum(s.watch.committed().values())
        t0 = time.monotonic()
        first.signal(signal.SIGTERM)
        rc = first.wait_exit(30)
        took = time.monotonic() - t0
        first.log_file.close()
        check(s.key, "SIGTERM mid-load: exit 0 within 25 s", rc == 0 and took <= 25,
              f"exit {rc} after {took:.1f} s; {committed_before}/{total} committed at the signal, "
              f"{len(s.sender.sent)} produced; 'consumer stopped' logged: {first.count_lines('consumer stopped') > 0}")
        text = first.log_text()
        tail = text[text.find("shutting down"):] if "shutting down" in text else ""
        final = [int(part.split("=")[1]) for part in tail.split() if part.startswith("messages=")]
        log(f"      final flush after the signal: {len(final)} batch(es), {sum(final)} messages")
        if rc is None:
            first.signal(signal.SIGKILL)
            first.process.wait()
        committed_after = sum(s.watch.committed().values())
        check(s.key, "stopped mid-load", committed_after < total, f"{committed_after}/{total} committed at exit")
        second = s.consumer(batch_size=500, flush_ms=200).start()
        if not finish_steady_load(s, producer, streamed, [second], 90):
            return
        rewritten = verify(s.key, s.db, s.model)
        replays = second.metric("consumer_replayed_messages_total")
        check(s.key, "graceful stop committed what it wrote (nothing consumed twice)", rewritten == 0 and replays == 0,
              f"{rewritten} rows written twice, {int(replays)} replayed messages after the restart")
    finally:
        producer.done.wait(60)
        for c in (first, second):
            if c is not None:
                c.stop()
        s.close()


def raw_rows(db):
    """Rows of the events table, 0 while the consumer has not created it yet."""
    if ch_int(f"SELECT count() FROM system.tables WHERE database = '{db}' AND name = 'events'") == 0:
        return 0
    return ch_int(f"SELECT count() FROM {db}.events")


def scenario_backlog(logdir):
    """A pre-loaded topic: batches grow past CONSUMER_BATCH_SIZE from waiting messages, never past
    CONSUMER_MAX_BATCH_SIZE, and the final state is exact."""
    s = Scenario(5, "backlog", logdir)
    rng = random.Random(5)
    s.send_all(load_sequence(rng, 12000, creates_first=3000))
    consumer = s.consumer(batch_size=200, flush_ms=200, max_batch_size=1000).start()
    try:
        if not wait_consumed(s.key, s, [consumer], 90):
            return
        metrics = consumer.metrics()
        batches = metrics.get("consumer_batch_size_count", 0)
        average = metrics.get("consumer_batch_size_sum", 0) / max(1, batches)
        over_1000 = batches - metrics.get('consumer_batch_size_bucket{le="1000.0"}', 0)
        check(s.key, "batches grew from the waiting messages", average > 400,
              f"{int(batches)} batches, {average:.0f} messages on average (CONSUMER_BATCH_SIZE 200)")
        check(s.key, "no batch exceeded CONSUMER_MAX_BATCH_SIZE", batches > 0 and over_1000 == 0, f"{int(over_1000)} batches over 1000")
        verify(s.key, s.db, s.model)
    finally:
        stop_checked(s, consumer)
        s.close()


def scenario_large_rows(logdir):
    """A backlog of small updates of large stored events: a grown batch would read and rewrite
    every whole row at once; it is cut to CONSUMER_MAX_BATCH_ROWS_MB (4 here), and the final
    state is exact (the updates land, the large outputs stay)."""
    s = Scenario(6, "large-rows", logdir)
    rng = random.Random(6)
    base = timestamp_base()
    options = dict(batch_size=10, flush_ms=200, max_batch_size=1000, env={"CONSUMER_MAX_BATCH_ROWS_MB": "4"})
    ids = [new_id() for _ in range(60)]
    creates = []
    for index, event_id in enumerate(ids):
        fields = random_create_fields(rng, base)
        fields["output"] = f"large-{index}-" + "o" * 200_000
        creates.append(Message("create", event_id, fields))
    s.send_all(creates)
    first = s.consumer(**options).start()
    try:
        if not wait_consumed(s.key, s, [first], 90):
            return
    finally:
        stop_checked(s, first, "first consumer")  # its cache goes with it: the updates below need the stored rows
    s.send_all([Message("update", event_id, {"error": True, "latency": 7.5}) for event_id in ids])
    second = s.consumer(**options).start()
    try:
        if not wait_consumed(s.key, s, [second], 90):
            return
        cut = second.metric("consumer_batches_cut_total")
        check(s.key, "the grown batch of updates was cut to the row budget", cut >= 1,
              f"{int(cut)} batches cut; 60 rows of about 200 KB against 4 MiB")
        verify(s.key, s.db, s.model)
    finally:
        stop_checked(s, second, "second consumer")
        s.close()


def scenario_rebalance_during_retries(logdir):
    """INSERTs fail (the table is detached) while the group rebalances twice: a second consumer
    joins, then dies. Partitions the first consumer paused before the rebalances come back to it
    during its retries; once the table is back, every partition must deliver again (librdkafka
    keeps a partition's pause across a revoke and a new assignment)."""
    s = Scenario(7, "rebalance-retries", logdir)
    rng = random.Random(7)
    base = timestamp_base()
    first = s.consumer(batch_size=100, flush_ms=200).start()
    second = None
    detached = False
    try:
        deadline = time.monotonic() + 30
        while first.metric("consumer_assigned_partitions") < PARTITIONS and time.monotonic() < deadline:
            time.sleep(0.2)
        ids = [new_id() for _ in range(300)]
        s.send_all([Message("create", i, random_create_fields(rng, base)) for i in ids])
        if not wait_consumed(s.key, s, [first], 40):
            return
        ch(f"DETACH TABLE {s.db}.events")
        detached = True
        s.send_all([Message("update", i, random_patch(rng)) for i in ids[:150]])
        deadline = time.monotonic() + 20
        while first.metric("consumer_insert_retries_total") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        second = s.consumer(batch_size=100, flush_ms=200).start()
        deadline = time.monotonic() + 40
        while second.metric("consumer_assigned_partitions") < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        shared = (first.metric("consumer_assigned_partitions"), second.metric("consumer_assigned_partitions"))
        second.signal(signal.SIGKILL)
        second.wait_exit(10)
        deadline = time.monotonic() + 40
        while first.metric("consumer_assigned_partitions") < PARTITIONS and time.monotonic() < deadline:
            time.sleep(0.1)
        back = first.metric("consumer_assigned_partitions")
        ch(f"ATTACH TABLE {s.db}.events")
        detached = False
        log(f"      partitions while both ran {shared}, back to the first {back}; "
            f"{int(first.metric('consumer_insert_retries_total'))} retries")
        check(s.key, "the group rebalanced during the retries", shared[1] >= 1 and back == PARTITIONS, f"{shared}, then {back}")
        s.send_all([Message("create", new_id(), random_create_fields(rng, base)) for _ in range(300)])
        s.send_all([Message("update", i, random_patch(rng)) for i in ids[150:]])
        if not wait_consumed(s.key, s, [first], 60):
            return
        verify(s.key, s.db, s.model)
    finally:
        if detached:
            ch(f"ATTACH TABLE {s.db}.events")
        for c in (first, second):
            if c is not None and c.alive():
                c.stop()
        s.close()


def rebalances_logged(consumer, topic):
    """A consumer's "partitions assigned" / "partitions revoked" log lines, in order, as
    (kind, partitions, lost); lost: revoked because the group went on without this member."""
    pattern = re.compile(re.escape(topic) + r"\[(\d+)\]")
    events = []
    for line in consumer.log_text().splitlines():
        for kind in ("assigned", "revoked"):
            if f"partitions {kind}" in line:
                events.append((kind, sorted(int(p) for p in pattern.findall(line)), "lost=true" in line))
    return events


def wait_assigned(consumers, want, timeout):
    """Until each consumer reports at least its wanted partition count; returns the counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [c.metric("consumer_assigned_partitions") for c in consumers]
        if all(n >= w for n, w in zip(counts, want)) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def scenario_cooperative(logdir):
    """The cooperative rebalance protocol (KAFKA_PROPERTY_partition.assignment.strategy=
    cooperative-sticky) under a steady load: a second and a third consumer join, each join moving
    only the partitions that change owner while the others keep delivering; the second is then
    killed (its partitions move after the session timeout) and the third leaves with SIGTERM,
    handing its partitions over incrementally. Nothing may be lost, doubled or applied out of order."""
    s = Scenario(8, "cooperative", logdir)
    rng = random.Random(8)
    cooperative = {"KAFKA_PROPERTY_partition.assignment.strategy": "cooperative-sticky"}
    total = 30000
    messages = load_sequence(rng, total, creates_first=2000, delete_share=0.15, update_share=0.35)
    first = s.consumer(batch_size=200, flush_ms=200, env=cooperative).start()
    second = third = None
    producer = SteadyProducer(s, messages, rate=800)
    try:
        alone_at_start = wait_assigned([first], [PARTITIONS], 30)
        producer.start()
        time.sleep(2)
        second = s.consumer(batch_size=200, flush_ms=200, env=cooperative).start()
        two = wait_assigned([first, second], [1, 1], 40)
        third = s.consumer(batch_size=200, flush_ms=200, env=cooperative).start()
        three = wait_assigned([first, second, third], [1, 1, 1], 40)
        sent_at_kill = len(s.sender.sent)
        second.signal(signal.SIGKILL)
        second.wait_exit(10)
        after_kill = wait_assigned([first, third], [1, 1], 40)
        deadline = time.monotonic() + 40
        while sum(after_kill) < PARTITIONS and time.monotonic() < deadline:
            time.sleep(0.2)
            after_kill = [first.metric("consumer_assigned_partitions"), third.metric("consumer_assigned_partitions")]
        sent_at_leave = len(s.sender.sent)
        stop_checked(s, third, "the third consumer")
        alone = wait_assigned([first], [PARTITIONS], 40)
        log(f"      partitions: {[int(n) for n in two]} with two consumers, {[int(n) for n in three]} with three, "
            f"{[int(n) for n in after_kill]} after the kill ({sent_at_kill} messages sent), "
            f"{int(alone[0])} after the third left ({sent_at_leave} sent)")
        check(s.key, "the partitions moved between the consumers",
              two[1] >= 1 and three[2] >= 1 and sum(after_kill) == PARTITIONS and alone[0] == PARTITIONS,
              f"{two}, {three}, {after_kill}, {alone}")
        if not finish_steady_load(s, producer, messages, [first], 90):
            return
        # Under the eager protocol every rebalance revokes all of a consumer's partitions and
        # assigns them all again; under the cooperative one the first consumer gives up only those
        # that move (to a joining member), keeps the rest without a break, and is assigned only
        # partitions it does not hold. (A revoke of partitions "lost" after a missed session
        # timeout takes them all under either protocol: reported, not counted.)
        events = rebalances_logged(first, s.topic)
        protocols = {m for line in first.log_text().splitlines() if "partitions assigned" in line
                     for m in re.findall(r"protocol=(\w+)", line)}
        check(s.key, "the group used the cooperative protocol", protocols == {"cooperative"}, f"logged protocols {protocols}")
        held, reassigned_while_held = set(), []
        for kind, partitions, _ in events:
            if kind == "assigned":
                reassigned_while_held += sorted(held & set(partitions))
                held |= set(partitions)
            else:
                held -= set(partitions)
        moved = [partitions for kind, partitions, lost in events if kind == "revoked" and not lost]
        lost = [partitions for kind, partitions, lost in events if kind == "revoked" and lost]
        joiners = {p for c in (second, third) for kind, partitions, _ in rebalances_logged(c, s.topic)
                   if kind == "assigned" for p in partitions}
        check(s.key, "each revoke took only the partitions that moved, to a joining member",
              alone_at_start == [PARTITIONS] and moved and all(0 < len(r) < PARTITIONS for r in moved)
              and {p for r in moved for p in r} <= joiners and not reassigned_while_held,
              f"the first consumer: {events}; it held {alone_at_start} at the start; the joiners were assigned "
              f"{sorted(joiners)}; assigned again while held: {reassigned_while_held}"
              + (f"; lost (not counted): {lost}" if lost else ""))
        verify(s.key, s.db, s.model)
    finally:
        producer.done.wait(60)
        for c in (second, third):
            if c is not None and c.alive():
                c.stop()
        stop_checked(s, first, "the first consumer")
        s.close()


SCENARIOS = {"1": scenario_flows, "2": scenario_kill9, "3": scenario_clickhouse_down, "4": scenario_sigterm, "5": scenario_backlog,
             "6": scenario_large_rows, "7": scenario_rebalance_during_retries, "8": scenario_cooperative}


def cleanup(keep):
    for process in started_processes:
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGCONT)
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)
            except Exception:
                pass
    if not wait_clickhouse_up(5):
        try:
            services("start", "clickhouse")
        except Exception as exc:
            log(f"warning: could not start ClickHouse again: {exc}")
    if keep:
        return
    for db in created_databases:
        try:
            ch(f"DROP DATABASE IF EXISTS {db}")
        except Exception as exc:
            log(f"warning: could not drop {db}: {exc}")
    if created_topics and kafka_admin.delete_topics(BROKERS, *created_topics) != 0:
        log("warning: could not delete every topic of this run")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="comma-separated scenario numbers")
    parser.add_argument("--keep", action="store_true", help="keep databases, topics and logs")
    args = parser.parse_args()
    if not os.access(BINARY, os.X_OK):
        log(f"FAIL: the consumer binary {BINARY} is missing (swift build)")
        return 1
    logdir = tempfile.mkdtemp(prefix=f"consumer-faults-{RUN_ID}-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    timings = []
    start = time.monotonic()
    try:
        for number in args.only.split(","):
            scenario = SCENARIOS[number.strip()]
            t0 = time.monotonic()
            log(f"--- scenario {number}: {scenario.__name__}")
            failed_before = len(failures)
            try:
                scenario(logdir)
            except Exception as exc:
                check(f"s{number}", "scenario ran", False, f"{type(exc).__name__}: {exc}")
            timings.append((number, scenario.__name__, time.monotonic() - t0, len(failures) == failed_before))
    finally:
        cleanup(args.keep)
    for number, name, seconds, ok in timings:
        log(f"scenario {number} {name}: {'PASS' if ok else 'FAIL'} in {seconds:.1f} s")
    log(f"consumer faults: {len(failures)} failed check(s) in {time.monotonic() - start:.1f} s (run {RUN_ID})")
    if failures or args.keep:
        log(f"consumer logs: {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
