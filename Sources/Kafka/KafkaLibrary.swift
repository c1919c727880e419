import CRdKafka

/// Facts about the librdkafka library loaded at run time.
public enum KafkaLibrary {
    /// The version string of the librdkafka loaded at run time, e.g. "2.16.1".
    public static var version: String { String(cString: rd_kafka_version_str()) }

    /// The version as (major, minor, patch), from `rd_kafka_version()` (0xMMmmrrxx).
    public static var versionNumber: (major: Int, minor: Int, patch: Int) {
        let value = Int(rd_kafka_version())
        return ((value >> 24) & 0xFF, (value >> 16) & 0xFF, (value >> 8) & 0xFF)
    }

    /// librdkafka before 2.1 fails the ApiVersions handshake with current brokers ("Read underflow"),
    /// and the consumer sets `fetch.queue.backoff.ms`, which 2.2 introduced: 2.1 would pass this
    /// check and then refuse the property.
    public static var isSupported: Bool {
        let v = versionNumber
        return v.major > 2 || (v.major == 2 && v.minor >= 2)
    }

    /// For error messages.
    public static let minimumVersion = "2.2"

    /// Throws when the loaded librdkafka is older than ``minimumVersion``.
    public static func requireSupported() throws {
        guard isSupported else { throw KafkaError(code: -1, message: "librdkafka \(version) is too old (\(minimumVersion) or newer is required; scripts/setup puts one in .venv/lib-rdkafka, for LD_LIBRARY_PATH)") }
    }
}
