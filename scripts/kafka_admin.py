"""Small admin helper for the local broker, used by scripts/services.

  kafka_admin.py wait BROKERS TIMEOUT_S        exit 0 once a metadata request is answered
  kafka_admin.py ensure-topic BROKERS NAME N   create topic NAME with N partitions unless it exists
  kafka_admin.py describe BROKERS              one line per topic: name and partition count
  kafka_admin.py delete-topics BROKERS NAME... delete the topics (those already gone are fine)
"""
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic


def client(brokers):
    return AdminClient({"bootstrap.servers": brokers, "socket.timeout.ms": 2000, "log_level": 0})


def wait(brokers, timeout_s):
    deadline = time.monotonic() + float(timeout_s)
    last = None
    while time.monotonic() < deadline:
        try:
            client(brokers).list_topics(timeout=2)
            return 0
        except Exception as exc:  # the broker is not up yet
            last = exc
            time.sleep(0.3)
    print(f"no metadata answer from {brokers} within {timeout_s} s: {last}", file=sys.stderr)
    return 1


def ensure_topic(brokers, name, partitions):
    admin = client(brokers)
    existing = admin.list_topics(timeout=5).topics.get(name)
    if existing is not None:
        # Kept as it is: recreating it would lose its messages (and the offsets the table's versions
        # come from). Say so when the partition count asked for differs.
        if len(existing.partitions) != int(partitions):
            print(f"topic {name} exists with {len(existing.partitions)} partitions, not {partitions}; kept as it is "
                  f"(delete it, or restart the local broker, to change it)", file=sys.stderr)
        return 0
    # The message size limit sits above the API body limit (1 MiB) plus the envelope, as in docker-compose.yml.
    futures = admin.create_topics([NewTopic(name, num_partitions=int(partitions), replication_factor=1,
                                            config={"max.message.bytes": "2097152"})])
    futures[name].result(timeout=10)
    # Metadata may lag the creation by a moment; wait until the topic is visible with its partitions.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        topic = admin.list_topics(timeout=5).topics.get(name)
        if topic is not None and len(topic.partitions) == int(partitions):
            return 0
        time.sleep(0.2)
    print(f"topic {name} was created but is not visible with {partitions} partitions", file=sys.stderr)
    return 1


def describe(brokers):
    for name, topic in sorted(client(brokers).list_topics(timeout=5).topics.items()):
        print(f"{name}\t{len(topic.partitions)}")
    return 0


def delete_topics(brokers, *names):
    status = 0
    admin = client(brokers)  # kept alive until the futures are done
    for name, future in admin.delete_topics(list(names), operation_timeout=10).items():
        try:
            future.result(timeout=15)
        except Exception as exc:
            if "UNKNOWN_TOPIC" not in str(exc):
                print(f"cannot delete topic {name}: {exc}", file=sys.stderr)
                status = 1
    return status


def main(argv):
    commands = {"wait": wait, "ensure-topic": ensure_topic, "describe": describe, "delete-topics": delete_topics}
    if len(argv) < 3 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
