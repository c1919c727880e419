// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "event-analytics",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "ClickHouseNative", targets: ["ClickHouseNative"]),
        .executable(name: "event-api", targets: ["event-api"]),
        .executable(name: "event-consumer", targets: ["event-consumer"]),
        .executable(name: "chnative", targets: ["chnative"]),
        .executable(name: "event-bench", targets: ["event-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // System libraries, found through pkg-config; `scripts/setup` installs the Debian packages.
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CZSTD", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        // gzip request bodies of the API (`Content-Encoding: gzip`).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // The standalone native-protocol client: depends on nothing of the pipeline.
        .target(
            name: "ClickHouseNative",
            dependencies: [
                "CLZ4", "CZSTD",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        .target(
            name: "Kafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "EventPipeline",
            dependencies: [
                "ClickHouseNative", "Kafka", "CZlib",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "event-api",
            dependencies: ["EventPipeline", .product(name: "Hummingbird", package: "hummingbird")],
            resources: [.embedInCode("openapi.yaml")]
        ),
        .executableTarget(
            name: "event-consumer",
            dependencies: ["EventPipeline", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        .executableTarget(
            name: "chnative",
            dependencies: [
                "ClickHouseNative",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "event-bench",
            dependencies: [
                "ClickHouseNative", "EventPipeline", "Kafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "benchmark",
            // Tools beside the benchmark: the local broker's CPU (Python), a wrk script for cross-checks.
            exclude: ["broker_cost.py", "sdk_background.py", "wrk-post-event.lua"]
        ),

        // Creates and releases every librdkafka object the wrapper owns; see scripts/leak-check.
        .executableTarget(name: "kafka-lifecycle-check", dependencies: ["Kafka"]),

        // Fuzz target over the server-packet decoder; see scripts/fuzz.
        .executableTarget(name: "server-packet-fuzzer", dependencies: ["ClickHouseNative"]),

        .testTarget(
            name: "ClickHouseNativeTests",
            dependencies: ["ClickHouseNative", .product(name: "NIOSSL", package: "swift-nio-ssl"),
                           .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(name: "KafkaTests", dependencies: ["Kafka"]),
        .testTarget(name: "EventPipelineTests", dependencies: ["EventPipeline", "Kafka", "ClickHouseNative",
                                                              .product(name: "HummingbirdTesting", package: "hummingbird")]),
    ]
)
