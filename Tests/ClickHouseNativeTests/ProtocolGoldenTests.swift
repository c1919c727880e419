import Foundation
import Testing
@testable import ClickHouseNative

/// Whole packets from Fixtures/protocol: captured from ClickHouse 18.16, or derived from the server
/// sources for revision 54460 (see that folder's README).
@Suite struct ProtocolGoldenTests {
    static func packet(_ name: String) throws -> [UInt8] {
        let text = try String(contentsOf: Fixtures.root.appendingPathComponent("Fixtures/protocol/\(name).hex"), encoding: .utf8)
        let hex = text.split(separator: "\n").map { line in line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" }
            .joined(separator: " ").split(whereSeparator: { $0.isWhitespace })
        return try hex.map { token in
            guard let byte = UInt8(token, radix: 16) else { throw ClickHouseClientError("bad hex \(token) in \(name)") }
            return byte
        }
    }

    static func decodeAll(_ bytes: [UInt8], revision: UInt64) throws -> [ServerPacket] {
        let decoder = ServerPacketDecoder(revision: revision, compression: false)
        return try ByteReader.withReader(bytes) { reader in
            var packets: [ServerPacket] = []
            while !reader.isAtEnd { packets.append(try decoder.decode(&reader)) }
            return packets
        }
    }

    @Test func helloFrom1816() throws {
        guard case let .hello(info) = try Self.decodeAll(try Self.packet("server-hello-18.16"), revision: ProtocolRevision.client).first else {
            Issue.record("not a Hello"); return
        }
        #expect(info.version == "18.16.1" && info.negotiatedRevision == 54412 && info.timeZone == "Etc/UTC")
    }

    @Test func selectReplyFrom1816() throws {
        let packets = try Self.decodeAll(try Self.packet("select-reply-18.16"), revision: 54412)
        #expect(packets.map(\.name) == ["Data", "Data", "ProfileInfo", "Progress", "Data", "EndOfStream"])
    }

    @Test func helloOfANewerServerAt54460() throws {
        guard case let .hello(info) = try Self.decodeAll(try Self.packet("server-hello-24.8-at-54460"), revision: ProtocolRevision.client).first else {
            Issue.record("not a Hello"); return
        }
        #expect(info == ServerInfo(name: "ClickHouse", versionMajor: 24, versionMinor: 8, versionPatch: 5, revision: 54472, timeZone: "UTC", displayName: "host"))
        #expect(info.negotiatedRevision == 54460)
    }

    @Test func dataBlockWithCustomSerializationBytes() throws {
        guard case let .data(block) = try Self.decodeAll(try Self.packet("data-block-at-54460"), revision: 54460).first else {
            Issue.record("not Data"); return
        }
        #expect(JSONEachRow.render(block) == "{\"n\":42,\"s\":\"a\"}\n{\"n\":43,\"s\":null}\n")
        // Our encoder writes the same bytes at this revision.
        var writer = ByteWriter()
        try ClientPackets.data(block, compression: nil, revision: 54460, to: &writer)
        var expected = try Self.packet("data-block-at-54460")
        expected[0] = 0x02  // the client's Data code
        #expect(writer.bytes == expected)
    }

    @Test func progressAt54460() throws {
        guard case let .progress(p) = try Self.decodeAll(try Self.packet("progress-at-54460"), revision: 54460).first else {
            Issue.record("not Progress"); return
        }
        #expect([p.rows, p.bytes, p.totalRowsToRead, p.writtenRows, p.writtenBytes, p.elapsedNanoseconds] == [1000, 16000, 100_000, 0, 0, 1_000_000])
    }

    @Test func profileEventsAt54460() throws {
        guard case let .profileEvents(block) = try Self.decodeAll(try Self.packet("profile-events-at-54460"), revision: 54460).first else {
            Issue.record("not ProfileEvents"); return
        }
        #expect(JSONEachRow.render(block) == "{\"host_name\":\"host\",\"current_time\":\"2024-03-15 14:30:00\",\"thread_id\":7,\"type\":\"increment\",\"name\":\"SelectQuery\",\"value\":1}\n")
    }

    @Test func clientQueryAt54460() throws {
        var writer = ByteWriter()
        let query = ClientPackets.Query(id: "", text: "SELECT 1", settings: [QuerySetting("max_block_size", "1000")],
                                        parameters: [:], compression: false, quotaKey: "")
        try ClientPackets.query(query, identity: ClientIdentity(), revision: 54460, to: &writer)
        try ClientPackets.data(Block(columns: []), compression: nil, revision: 54460, to: &writer)
        #expect(writer.bytes == (try Self.packet("client-query-at-54460")))
    }
}
