import CRdKafka

/// Cluster metadata: the topics a broker knows and their partition counts.
public struct KafkaClusterMetadata: Sendable, Equatable {
    public struct Topic: Sendable, Equatable {
        public var name: String
        public var partitionCount: Int
    }

    public var brokerCount: Int
    public var topics: [Topic]

    public func topic(named name: String) -> Topic? {
        topics.first { $0.name == name }
    }

    /// Asks the brokers for metadata of all topics, through a short-lived client handle.
    /// Throws when no broker answers within `timeoutMilliseconds`.
    public static func fetch(configuration: KafkaConfiguration, timeoutMilliseconds: Int32 = 5000) throws -> KafkaClusterMetadata {
        try KafkaLibrary.requireSupported()
        var quiet = configuration
        // Its failure is the thrown error; librdkafka's own lines (FAIL, connection refused ...) on
        // stderr would only repeat it, outside the program's log format (LOG_FORMAT=json).
        if quiet["log_level"] == nil { quiet["log_level"] = "2" }
        let conf = try quiet.makeNativeConfiguration()
        var errorText = [CChar](repeating: 0, count: 512)
        // rd_kafka_new takes ownership of conf on success only.
        guard let handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            let detail = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(code: -1, message: "cannot create Kafka client: \(detail)")
        }
        defer { rd_kafka_destroy(handle) }

        var metadataPointer: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 1, nil, &metadataPointer, timeoutMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata = metadataPointer else {
            throw KafkaError(err, context: "metadata request to \(configuration["bootstrap.servers"] ?? "?") failed")
        }
        defer { rd_kafka_metadata_destroy(metadata) }

        let raw = metadata.pointee
        var topics: [Topic] = []
        for index in 0..<Int(raw.topic_cnt) {
            let topic = raw.topics[index]
            // Listed with another error (a topic just created, its leader not elected yet), it exists.
            guard topic.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART else { continue }
            topics.append(Topic(name: String(cString: topic.topic), partitionCount: Int(topic.partition_cnt)))
        }
        return KafkaClusterMetadata(brokerCount: Int(raw.broker_cnt), topics: topics.sorted { $0.name < $1.name })
    }
}
