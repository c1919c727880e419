import Testing
@testable import EventPipeline

@Suite struct PipelineConfigurationTests {
    @Test func defaults() throws {
        let configuration = try PipelineConfiguration(environment: [:])
        #expect(configuration.apiPort == 8080)
        #expect(configuration.clickHousePort == 9000)
        #expect(configuration.clickHouseDatabase == "event_analytics")
        #expect(configuration.clickHouseUser == "default")
        #expect(configuration.clickHousePassword == "")
        #expect(configuration.kafkaBrokers == "localhost:9092")
        #expect(configuration.kafkaTopic == "events")
        #expect(configuration.kafkaGroupID == "event-consumer-group")
        #expect(configuration.consumerBatchSize == 500)
        #expect(configuration.consumerMaximumBatchSize == 10_000)
        #expect(configuration.consumerFlushIntervalMilliseconds == 200)
        #expect(configuration.consumerCacheBytes == 256 << 20)
        #expect(configuration.consumerMaximumBatchRowBytes == 256 << 20)
    }

    @Test func batchRowBudgetInMegabytes() throws {
        #expect(try PipelineConfiguration(environment: ["CONSUMER_MAX_BATCH_ROWS_MB": "4"]).consumerMaximumBatchRowBytes == 4 << 20)
        #expect(throws: ConfigurationError(variable: "CONSUMER_MAX_BATCH_ROWS_MB", message: "must be an integer from 1 to 65536, got '0'")) {
            try PipelineConfiguration(environment: ["CONSUMER_MAX_BATCH_ROWS_MB": "0"])
        }
    }

    @Test func clickHouseReadTimeout() throws {
        #expect(try PipelineConfiguration(environment: [:]).clickHouse.readTimeout == .seconds(30))
        #expect(try PipelineConfiguration(environment: ["CLICKHOUSE_READ_TIMEOUT_MS": "2500"]).clickHouse.readTimeout == .milliseconds(2500))
        #expect(throws: ConfigurationError(variable: "CLICKHOUSE_READ_TIMEOUT_MS", message: "must be an integer from 1000 to 3600000, got '999'")) {
            try PipelineConfiguration(environment: ["CLICKHOUSE_READ_TIMEOUT_MS": "999"])
        }
    }

    /// Found in review: a value with no key in it turned authentication off without a word, and a
    /// key read from a secret file with its final line break could never match (every request 401).
    @Test func apiKeys() throws {
        #expect(try PipelineConfiguration(environment: [:]).apiKeys == [])
        #expect(try PipelineConfiguration(environment: ["API_KEYS": ""]).apiKeys == [])
        #expect(try PipelineConfiguration(environment: ["API_KEYS": " k1 ,k2,,"]).apiKeys == ["k1", "k2"])
        #expect(try PipelineConfiguration(environment: ["API_KEYS": "k1\n"]).apiKeys == ["k1"])
        for value in [",", " , ", "\n"] {
            #expect(throws: ConfigurationError(variable: "API_KEYS", message: "lists no key; leave it unset or empty to turn authentication off")) {
                try PipelineConfiguration(environment: ["API_KEYS": value])
            }
        }
    }

    @Test func apiIdleTimeout() throws {
        #expect(try PipelineConfiguration(environment: [:]).apiIdleTimeoutMilliseconds == 60_000)
        #expect(try PipelineConfiguration(environment: ["API_IDLE_TIMEOUT_MS": "1500"]).apiIdleTimeoutMilliseconds == 1500)
        #expect(throws: ConfigurationError(variable: "API_IDLE_TIMEOUT_MS", message: "must be an integer from 1000 to 3600000, got '0'")) {
            try PipelineConfiguration(environment: ["API_IDLE_TIMEOUT_MS": "0"])
        }
    }

    @Test func overrides() throws {
        let configuration = try PipelineConfiguration(environment: [
            "API_PORT": "9999", "CLICKHOUSE_DATABASE": "analytics_2", "CONSUMER_BATCH_SIZE": "10000",
        ])
        #expect(configuration.apiPort == 9999)
        #expect(configuration.clickHouseDatabase == "analytics_2")
        #expect(configuration.consumerBatchSize == 10000)
        #expect(configuration.consumerMaximumBatchSize == 200_000)
    }

    @Test func maximumBatchSizeIsAtLeastTheBatchSize() throws {
        #expect(throws: ConfigurationError(variable: "CONSUMER_MAX_BATCH_SIZE", message: "must be an integer from 500 to 1000000, got '499'")) {
            try PipelineConfiguration(environment: ["CONSUMER_MAX_BATCH_SIZE": "499"])
        }
        #expect(try PipelineConfiguration(environment: ["CONSUMER_MAX_BATCH_SIZE": "500"]).consumerMaximumBatchSize == 500)
        #expect(try PipelineConfiguration(environment: ["CONSUMER_BATCH_SIZE": "100000"]).consumerMaximumBatchSize == 1_000_000)
    }

    /// Found in review: both set to true through the environment, librdkafka would commit every
    /// polled message, stored or not, and a crash would lose those not stored yet. Either alone,
    /// or librdkafka's other spellings of false, change nothing and are accepted.
    @Test func autoCommitOfPolledMessagesCannotBeTurnedOn() throws {
        for (commit, store) in [("true", "true"), ("1", "TRUE"), ("t", "yes")] {
            #expect(throws: ConfigurationError(variable: "KAFKA_PROPERTY_enable.auto.commit",
                                               message: "must be false while enable.auto.offset.store is true (the consumer commits offsets itself, after the rows are stored)")) {
                try PipelineConfiguration(environment: ["KAFKA_PROPERTY_enable.auto.commit": commit, "KAFKA_PROPERTY_enable.auto.offset.store": store])
            }
        }
        for environment in [["KAFKA_PROPERTY_enable.auto.commit": "true"], ["KAFKA_PROPERTY_enable.auto.offset.store": "true"],
                            ["KAFKA_PROPERTY_enable.auto.commit": "true", "KAFKA_PROPERTY_enable.auto.offset.store": "0"],
                            ["KAFKA_PROPERTY_enable.auto.commit": "F", "KAFKA_PROPERTY_enable.auto.offset.store": "true"]] {
            #expect(try PipelineConfiguration(environment: environment).kafkaProperties == environment.reduce(into: [:]) {
                $0[String($1.key.dropFirst("KAFKA_PROPERTY_".count))] = $1.value
            })
        }
    }

    @Test func invalidPort() {
        #expect(throws: ConfigurationError(variable: "API_PORT", message: "must be an integer from 1 to 65535, got 'http'")) {
            try PipelineConfiguration(environment: ["API_PORT": "http"])
        }
    }

    @Test func batchSizeOutOfRange() {
        #expect(throws: ConfigurationError(variable: "CONSUMER_BATCH_SIZE", message: "must be an integer from 1 to 1000000, got '0'")) {
            try PipelineConfiguration(environment: ["CONSUMER_BATCH_SIZE": "0"])
        }
    }

    @Test func databaseNameMustBeAnIdentifier() {
        #expect(throws: ConfigurationError(variable: "CLICKHOUSE_DATABASE", message: "must be letters, digits and underscores, not starting with a digit, got 'x; DROP'")) {
            try PipelineConfiguration(environment: ["CLICKHOUSE_DATABASE": "x; DROP"])
        }
    }
}
