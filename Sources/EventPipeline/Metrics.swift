import Hummingbird
import Prometheus
import Synchronization
import ServiceLifecycle

/// The consumer's Prometheus metrics.
public struct ConsumerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let messagesConsumed: Counter
    let rowsInserted: Counter
    let batchSize: ValueHistogram
    let insertDuration: DurationHistogram
    let insertRetries: Counter
    let deadLetters: Counter
    let replays: Counter
    let duplicateCreates: Counter
    let lookups: Counter
    let batchesCut: Counter
    let lag: Gauge
    let commitFailures: Counter
    let assignedPartitions: Gauge
    let eventDelay: ValueHistogram

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        messagesConsumed = registry.makeCounter(descriptor: metric("consumer_messages_consumed_total", help: "Kafka messages consumed"))
        rowsInserted = registry.makeCounter(descriptor: metric("consumer_rows_inserted_total", help: "Rows inserted into ClickHouse"))
        batchSize = registry.makeValueHistogram(descriptor: metric("consumer_batch_size", help: "Messages per written batch"),
                                                buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000])
        insertDuration = registry.makeDurationHistogram(
            descriptor: metric("consumer_insert_duration_seconds", help: "Duration of one batch INSERT"),
            buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(10), .seconds(30)])
        insertRetries = registry.makeCounter(descriptor: metric("consumer_insert_retries_total", help: "Failed batch writes that were retried"))
        deadLetters = registry.makeCounter(descriptor: metric("consumer_dead_letters_total", help: "Messages sent to the dead-letter topic"))
        replays = registry.makeCounter(descriptor: metric("consumer_replayed_messages_total", help: "Redelivered messages that were already applied"))
        duplicateCreates = registry.makeCounter(descriptor: metric("consumer_duplicate_creates_total", help: "Creates of existing event ids, ignored"))
        lookups = registry.makeCounter(descriptor: metric("consumer_row_lookups_total", help: "Current rows fetched from ClickHouse for updates and deletes"))
        batchesCut = registry.makeCounter(descriptor: metric(
            "consumer_batches_cut_total", help: "Batches grown behind a backlog that were cut to keep their rows within CONSUMER_MAX_BATCH_ROWS_MB"))
        lag = registry.makeGauge(descriptor: metric("consumer_lag_messages", help: "Messages in assigned partitions not yet consumed"))
        commitFailures = registry.makeCounter(descriptor: metric(
            "consumer_commit_failures_total", help: "Offset commits the broker refused (their messages come again, without effect)"))
        assignedPartitions = registry.makeGauge(descriptor: metric("consumer_assigned_partitions", help: "Partitions assigned to this consumer"))
        eventDelay = registry.makeValueHistogram(
            descriptor: metric("consumer_event_delay_seconds",
                               help: "Seconds from the API accepting a write to the consumer applying it in ClickHouse (by the two hosts' clocks)"),
            buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600])
    }
}

/// `GET /metrics` (Prometheus text) and `GET /health` on a port of their own.
public func makeMetricsServer(registry: PrometheusCollectorRegistry, host: String = "0.0.0.0", port: Int) -> some Service {
    let router = Router()
    router.get("metrics") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
    router.get("health") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
    }
    return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "event-consumer"))
}

/// The API's Prometheus metrics: requests by route, method and status, latency per route,
/// Kafka produce errors and ClickHouse read latency.
public final class APIMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let produceErrors: Counter
    let clickHouseErrors: Counter
    let clickHouseQueryDuration: DurationHistogram
    /// From handing a single event's envelope to the Kafka producer until the broker acknowledged
    /// it (or it failed): how much of a write's answer time is the broker's.
    let kafkaEventSendDuration: DurationHistogram
    /// The same for a `POST /events/batch` request's envelopes together, one observation per request.
    let kafkaBatchSendDuration: DurationHistogram
    private let series = Mutex<[String: (Counter, DurationHistogram?)]>([:])
    /// Up to the longest waits there are: a Kafka send times out after 10 s (`message.timeout.ms`)
    /// and a ClickHouse read after 30 s, and those must not all fall into +Inf.
    static let buckets: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                      .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                                      .seconds(1), .seconds(5), .seconds(10), .seconds(30)]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        produceErrors = registry.makeCounter(descriptor: metric("kafka_produce_errors_total", help: "Events the broker did not acknowledge, refused at once while no broker answers included"))
        clickHouseErrors = registry.makeCounter(descriptor: metric("clickhouse_query_errors_total", help: "Failed ClickHouse reads"))
        clickHouseQueryDuration = registry.makeDurationHistogram(
            descriptor: metric("clickhouse_query_duration_seconds", help: "Duration of ClickHouse reads"), buckets: Self.buckets)
        let sendDuration = metric("kafka_send_duration_seconds", help: "From handing events to the Kafka producer until the broker acknowledged them")
        kafkaEventSendDuration = registry.makeDurationHistogram(descriptor: sendDuration, labels: [("kind", "event")], buckets: Self.buckets)
        kafkaBatchSendDuration = registry.makeDurationHistogram(descriptor: sendDuration, labels: [("kind", "batch")], buckets: Self.buckets)
    }

    func observe(route: String, method: String, status: Int, duration: Duration) {
        let key = "\(route) \(method) \(status)"
        let (counter, histogram) = series.withLock { cache in
            if let existing = cache[key] { return existing }
            let counter = registry.makeCounter(descriptor: metric("http_requests_total", help: "HTTP requests by route, method and status"),
                                               labels: [("route", route), ("method", method), ("status", String(status))])
            let histogramKey = "\(route) \(method)"
            let histogram = cache[histogramKey]?.1 ?? registry.makeDurationHistogram(
                descriptor: metric("http_request_duration_seconds", help: "HTTP request latency by route"),
                labels: [("route", route), ("method", method)], buckets: Self.buckets)
            cache[key] = (counter, histogram)
            if cache[histogramKey] == nil { cache[histogramKey] = (counter, histogram) }
            return (counter, histogram)
        }
        counter.increment()
        histogram?.record(duration)
    }
}

/// A metric's descriptor from its whole Prometheus name (swift-prometheus 2.4 splits names into
/// base and unit; an empty unit leaves the name as written, so the exposition is unchanged).
func metric(_ name: String, help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
}
