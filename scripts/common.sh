# Shared by the scripts in this folder: project paths, configuration defaults, small helpers.
# Sourced, never run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$ROOT/var"
VENV="$ROOT/.venv"
# librdkafka >= 2.2 bundled by PyPI confluent-kafka, used when the system one is older (Debian 12 ships
# 2.0.2, whose ApiVersions handshake fails against the broker).
RDKAFKA_LIB_DIR="$VENV/lib-rdkafka"

: "${CLICKHOUSE_HOST:=127.0.0.1}"
: "${CLICKHOUSE_PORT:=9000}"
: "${CLICKHOUSE_SECURE_PORT:=9440}"
: "${CLICKHOUSE_DATABASE:=event_analytics}"
: "${CLICKHOUSE_USER:=default}"
: "${CLICKHOUSE_PASSWORD:=}"
: "${KAFKA_BROKERS:=localhost:9092}"
: "${KAFKA_TOPIC:=events}"
: "${KAFKA_PARTITIONS:=2}"
export CLICKHOUSE_HOST CLICKHOUSE_PORT CLICKHOUSE_SECURE_PORT CLICKHOUSE_DATABASE CLICKHOUSE_USER \
    CLICKHOUSE_PASSWORD KAFKA_BROKERS KAFKA_TOPIC KAFKA_PARTITIONS

# Puts the bundled librdkafka on LD_LIBRARY_PATH when scripts/setup installed it. Scripts call it
# again after running setup, since on a fresh machine the library appears only then.
use_bundled_rdkafka() {
    [ -f "$RDKAFKA_LIB_DIR/librdkafka.so.1" ] || return 0
    case ":${LD_LIBRARY_PATH:-}:" in
        *":$RDKAFKA_LIB_DIR:"*) ;;
        *) export LD_LIBRARY_PATH="$RDKAFKA_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
}
use_bundled_rdkafka

say() { printf '%s\n' "$*" >&2; }

kafka_admin() { "$VENV/bin/python" "$ROOT/scripts/kafka_admin.py" "$@"; }

# Gives this script a pipeline of its own on the local services: a fresh ClickHouse database
# (PREFIX_ID), Kafka topic and dead-letter topic (PREFIX-ID, PREFIX-ID.dlq) and consumer group,
# exported for the event-api and event-consumer it starts. A new group on a shared topic would
# replay that topic from its start (auto.offset.reset=earliest), and a table grown by earlier runs
# makes ClickHouse merge the old parts with the new ones while the load runs; from empty ones,
# every run starts from the same state. Needs the services up; drop_isolated_pipeline undoes it.
isolate_pipeline() {
    name_isolated_pipeline "$1"
    kafka_admin ensure-topic "$KAFKA_BROKERS" "$KAFKA_TOPIC" "$KAFKA_PARTITIONS" || die "could not create topic $KAFKA_TOPIC"
    kafka_admin ensure-topic "$KAFKA_BROKERS" "$KAFKA_DLQ_TOPIC" 1 || die "could not create topic $KAFKA_DLQ_TOPIC"
}
# Only the names of isolate_pipeline, exported; start_private_broker then creates those topics on
# the broker it starts (the event-api and event-consumer create the database).
name_isolated_pipeline() {
    local prefix="$1" id; id="$(date +%s)_$$"
    export CLICKHOUSE_DATABASE="${prefix}_$id"
    export KAFKA_TOPIC="${prefix//_/-}-${id//_/-}"
    export KAFKA_DLQ_TOPIC="$KAFKA_TOPIC.dlq" KAFKA_GROUP_ID="${prefix//_/-}-${id//_/-}"
}

# Gives the calling script a Kafka broker of its own, started empty on 127.0.0.1:PORT (pid file and
# log under var/NAME/kafka), and exports KAFKA_BROKERS for the programs the script starts; stop it
# with stop_private_broker. Why: Tansu's in-memory storage never forgets an idempotent producer, and
# each produce request rewrites its record of all of them, so a long-lived broker gets slower with
# every event-api or event-consumer start (measured: 85 µs of broker CPU per produce request on a
# fresh broker, 255 µs after 300 more producers had registered). Real Kafka expires producer state
# (producer.id.expiration.ms). A fresh broker makes benchmark runs comparable with each other.
# It gets KAFKA_TOPIC and KAFKA_DLQ_TOPIC (name_isolated_pipeline first, or the defaults).
start_private_broker() {
    local name="$1" port="$2"
    export KAFKA_BROKERS="127.0.0.1:$port" KAFKA_STATE_DIR="$VAR/$name/kafka"
    "$ROOT/scripts/services" restart kafka
}
stop_private_broker() { "$ROOT/scripts/services" stop kafka; }

# Deletes the topics and drops the database that isolate_pipeline made (no error if already gone).
drop_isolated_pipeline() {
    kafka_admin delete-topics "$KAFKA_BROKERS" "$KAFKA_TOPIC" "$KAFKA_DLQ_TOPIC" || say "could not delete topic $KAFKA_TOPIC"
    drop_isolated_database
}
# The database alone: a private broker's topics go when it stops.
drop_isolated_database() {
    clickhouse-client --host "$CLICKHOUSE_HOST" --port "$CLICKHOUSE_PORT" --user "$CLICKHOUSE_USER" \
        ${CLICKHOUSE_PASSWORD:+--password "$CLICKHOUSE_PASSWORD"} --query "DROP DATABASE IF EXISTS $CLICKHOUSE_DATABASE" \
        || say "could not drop database $CLICKHOUSE_DATABASE"
}
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# True when nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits (up to SECONDS) until the event-api with pid API_PID answers /ready on PORT and the
# event-consumer with pid CONSUMER_PID has partitions assigned (its metrics on
# CONSUMER_METRICS_PORT; a new group takes about 3 s to get them, which a short run would otherwise
# count as visibility lag), failing at once when either exits: a leftover API on the same port
# would otherwise answer for it, and a consumer that could not start would go unnoticed.
wait_for_pipeline() {
    local name="$1" port="$2" api_pid="$3" consumer_pid="$4" seconds="$5" logs="$6"
    local deadline=$((SECONDS + seconds))
    while :; do
        kill -0 "$api_pid" 2>/dev/null || die "$name: event-api exited during start (logs in $logs)"
        kill -0 "$consumer_pid" 2>/dev/null || die "$name: event-consumer exited during start (logs in $logs)"
        local metrics
        metrics=$(curl -sf "http://127.0.0.1:$CONSUMER_METRICS_PORT/metrics" || true)
        # "ready", not only 200: a 200 can be "degraded" (ClickHouse not answering yet).
        local ready
        ready=$(curl -sf "http://127.0.0.1:$port/ready" || true)
        if grep -q '"status":"ready"' <<< "$ready" && grep -q -E '^consumer_assigned_partitions [1-9]' <<< "$metrics"; then
            return 0
        fi
        [ $SECONDS -lt $deadline ] || die "$name: event-api not ready, or event-consumer without partitions, within $seconds s (logs in $logs)"
        sleep 0.2
    done
}

# `swift test` that also fails when it ran no test, or skipped one other than those named by the
# regular expression in $1 (Swift Testing exits 0 in both cases, so a renamed suite, a filter that
# matches nothing or a test that disables itself would otherwise pass unnoticed).
swift_test_checked() {
    local allowed_skips="$1"; shift
    local log; log=$(mktemp)
    swift test "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ]; then
        local skipped
        skipped=$(grep -a -E '^[^ ]+ Test .* skipped' "$log" | grep -a -v -E "$allowed_skips" || true)
        if ! grep -a -q -E 'Test run with [1-9][0-9]* tests? ' "$log"; then
            echo "swift test ran no test" >&2; rc=1
        elif [ -n "$skipped" ]; then
            printf 'swift test skipped tests that must run here:\n%s\n' "$skipped" >&2; rc=1
        fi
    fi
    rm -f "$log"
    return "$rc"
}

# Runs a named stage and prints how long it took, so slow CI stages are visible.
stage() {
    local name="$1"; shift
    local start end
    start=$(date +%s.%N)
    say "==> $name"
    "$@"
    local rc=$?
    end=$(date +%s.%N)
    say "$(awk -v n="$name" -v s="$start" -v e="$end" -v r="$rc" 'BEGIN { printf "<== %s: %.1f s (exit %d)", n, e - s, r }')"
    return $rc
}
