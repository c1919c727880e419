import Testing
@testable import ClickHouseNative

@Suite struct CityHashTests {
    /// Vectors from the protocol reference (clickhouse-cityhash 1.0.2.6, matching the server's checksums).
    static let vectors: [([UInt8], String)] = [
        ([], "2b9ac064fc9df03d291ee592c340b53c"),
        (Array("a".utf8), "d01ae0afa13971d2f66cc8e4e28e7efd"),
        (Array("abc".utf8), "fe48775795f10f907e0db2556317a913"),
        (Array("ClickHouse".utf8), "12b60bc081cc04370214f9bac43ad476"),
        (Array(0..<64), "d051d82f50a0d983223fa63e34738071"),
        (Array(repeating: Array(0...255), count: 4).flatMap { $0 }, "2634f66b51478236dd2fa9dc1921d869"),
    ]

    static func wireHex(_ hash: (first: UInt64, second: UInt64)) -> String {
        var writer = ByteWriter()
        writer.writeInteger(hash.first)
        writer.writeInteger(hash.second)
        return writer.bytes.map { String(format: "%02x", $0) }.joined()
    }

    @Test(arguments: 0..<vectors.count)
    func matchesReferenceVectors(index: Int) {
        let (input, expected) = Self.vectors[index]
        #expect(Self.wireHex(CityHash128.hash(input)) == expected)
    }
}
