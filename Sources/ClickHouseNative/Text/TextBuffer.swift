/// Text-format output as bytes. ClickHouse writes a String value's bytes as they are, valid UTF-8
/// or not (hashes in FixedString, binary payloads), and a Swift `String` cannot hold invalid UTF-8:
/// rendering into one replaced each bad byte with U+FFFD.
public struct TextBuffer: Sendable, Equatable {
    public var bytes: [UInt8]

    public init(_ text: String = "") { bytes = Array(text.utf8) }

    public var isEmpty: Bool { bytes.isEmpty }
    public var count: Int { bytes.count }

    /// For display and tests: invalid UTF-8 shows as U+FFFD here, never in ``bytes``.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public mutating func append(_ text: String) { bytes.append(contentsOf: text.utf8) }

    public mutating func append<C: Collection>(bytes more: C) where C.Element == UInt8 { bytes.append(contentsOf: more) }

    public mutating func removeAll(keepingCapacity: Bool = true) { bytes.removeAll(keepingCapacity: keepingCapacity) }

    public static func += (buffer: inout TextBuffer, text: String) { buffer.append(text) }

    public static func += (buffer: inout TextBuffer, other: TextBuffer) { buffer.bytes.append(contentsOf: other.bytes) }
}
