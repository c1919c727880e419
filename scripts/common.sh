# Shared by the scripts in this folder: project paths, configuration defaults, small helpers.
# Sourced, never run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$ROOT/var"
VENV="$ROOT/.venv"
# librdkafka >= 2.1 bundled by PyPI confluent-kafka, used when the system one is older (Debian 12 ships
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
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

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
