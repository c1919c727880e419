import Testing
@testable import ClickHouseNative

/// Server packets decoded from bytes captured from ClickHouse 18.16 (reference §16), without sockets.
@Suite struct ServerPacketTests {
    static func bytes(_ parts: [Any]) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            if let text = part as? String { out += Array(text.utf8) } else if let byte = part as? Int { out.append(UInt8(byte)) } else if let array = part as? [Int] { out += array.map(UInt8.init) }
        }
        return out
    }

    static let blockInfo = [0x01, 0x00, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]

    /// The full reply to `SELECT 1 AS x, 'ab' AS s` (uncompressed).
    static let selectReply: [UInt8] = bytes([
        [0x01, 0x00], blockInfo, [0x02, 0x00], 0x01, "x", 0x05, "UInt8", 0x01, "s", 0x06, "String",
        [0x01, 0x00], blockInfo, [0x02, 0x01], 0x01, "x", 0x05, "UInt8", 0x01, 0x01, "s", 0x06, "String", 0x02, "ab",
        [0x06, 0x01, 0x01, 0x1C, 0x00, 0x00, 0x01],
        [0x03, 0x01, 0x01, 0x00],
        [0x01, 0x00], blockInfo, [0x00, 0x00],
        [0x05],
    ])

    static func decodeAll(_ bytes: [UInt8], revision: UInt64 = 54412) throws -> [ServerPacket] {
        let decoder = ServerPacketDecoder(revision: revision, compression: false)
        return try ByteReader.withReader(bytes) { reader in
            var packets: [ServerPacket] = []
            while !reader.isAtEnd { packets.append(try decoder.decode(&reader)) }
            return packets
        }
    }

    @Test func selectReplyAt54412() throws {
        let packets = try Self.decodeAll(Self.selectReply)
        #expect(packets.count == 6)
        guard case let .data(header) = packets[0], case let .data(data) = packets[1],
              case let .profileInfo(info) = packets[2], case let .progress(progress) = packets[3],
              case let .data(empty) = packets[4], case .endOfStream = packets[5] else {
            Issue.record("unexpected packet sequence \(packets)")
            return
        }
        #expect(header.rowCount == 0 && header.columns.map(\.name) == ["x", "s"])
        #expect(JSONEachRow.render(data) == "{\"x\":1,\"s\":\"ab\"}\n")
        #expect(info.rows == 1 && info.bytes == 28 && info.calculatedRowsBeforeLimit)
        #expect(progress.rows == 1 && progress.bytes == 1 && progress.totalRowsToRead == 0)
        #expect(empty.columns.isEmpty && empty.rowCount == 0)
    }

    @Test func serverHello() throws {
        // 18.16's Hello: name, 18, 16, revision 54412, time zone, display name, patch 1.
        let hello = Self.bytes([0x00, 0x0A, "ClickHouse", 0x12, 0x10, [0x8C, 0xA9, 0x03], 0x07, "Etc/UTC", 0x02, "vm", 0x01])
        guard case let .hello(info) = try Self.decodeAll(hello)[0] else { Issue.record("not a hello"); return }
        #expect(info == ServerInfo(name: "ClickHouse", versionMajor: 18, versionMinor: 16, versionPatch: 1, revision: 54412, timeZone: "Etc/UTC", displayName: "vm"))
        #expect(info.negotiatedRevision == 54412)
    }

    /// Feeds `stream` to `decoder` as the connection receives it (``PiecewiseDecoding``), checks
    /// every wait and returns the packets and how many waits there were; the input must decode to
    /// its end.
    static func decodeArriving(_ stream: [UInt8], at arrivals: [Int], decoder: ServerPacketDecoder,
                               _ label: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws -> (packets: [ServerPacket], waits: Int) {
        let run = stream.withUnsafeBytes { PiecewiseDecoding($0, arrivals: arrivals, decoder: decoder) }
        for wait in run.waits {
            #expect(wait.need.minimumBytes > wait.had, "\(label): asked to wait for bytes it already had: \(wait)", sourceLocation: sourceLocation)
            // A reader waits for this many before it wakes (SO_RCVLOWAT): asking for more than
            // the server will send would hang the connection.
            #expect(wait.need.completingBytes <= wait.left, "\(label): asked to wait for bytes that never come: \(wait)", sourceLocation: sourceLocation)
        }
        if let failure = run.failure { throw failure }
        return (run.packets, run.waits.count)
    }

    static func decodeInPieces(_ stream: [UInt8], piece: Int, decoder: ServerPacketDecoder,
                               sourceLocation: SourceLocation = #_sourceLocation) throws -> (packets: [ServerPacket], waits: Int) {
        try decodeArriving(stream, at: PiecewiseDecoding.pieces(of: piece, count: stream.count), decoder: decoder, "pieces of \(piece)",
                           sourceLocation: sourceLocation)
    }

    /// A large block arriving in pieces decodes to the right block, and the packet after it is
    /// left alone (columns and frames already taken are kept between calls).
    @Test(arguments: [CompressionMethod.none, .lz4, .zstd])
    func largeBlockArrivingInPieces(method: CompressionMethod) throws {
        let rows = 150_000  // about 3 MiB: three frames
        let block = Block(columns: [
            NamedColumn("n", FixedWidthColumn(type: .uint64, values: (0..<rows).map { UInt64($0) })),
            NamedColumn("s", StringColumn((0..<rows).map { "value \($0)" })),
        ])
        var writer = ByteWriter()
        try ClientPackets.data(block, compression: method == .none ? nil : method, revision: 54412, to: &writer)  // the server's layout
        var packet = writer.bytes
        packet[0] = 0x01  // the server's Data code (the client's is 2; the rest is laid out the same)
        let decoder = ServerPacketDecoder(revision: 54412, compression: method != .none)
        let (packets, waits) = try Self.decodeInPieces(packet + [0x05], piece: 20_000, decoder: decoder)  // EndOfStream after the block
        guard packets.count == 2, case let .data(result) = packets[0], case .endOfStream = packets[1] else {
            Issue.record("unexpected packets \(packets.map(\.name))"); return
        }
        #expect(waits > 2)
        #expect(result.rowCount == rows)
        #expect(try NativeFormat.encodeBlocks([result]) == NativeFormat.encodeBlocks([block]))
        #expect(decoder.assembly.isIdle)  // nothing left over for the next packet
    }

    /// INSERT data is compressed at the configured zstd level (it was always level 1): a higher
    /// level gives other, smaller frames that decode to the same block.
    @Test func uploadedBlocksUseTheZstdLevel() throws {
        let block = Block(columns: [NamedColumn("s", StringColumn((0..<20_000).map { "value \($0 % 977) of a repetitive text" }))])
        var fast = ByteWriter()
        var strong = ByteWriter()
        try ClientPackets.data(block, compression: .zstd, zstdLevel: 1, revision: 54460, to: &fast)
        try ClientPackets.data(block, compression: .zstd, zstdLevel: 19, revision: 54460, to: &strong)
        #expect(strong.bytes.count < fast.bytes.count)
        for packet in [fast.bytes, strong.bytes] {
            var server = packet
            server[0] = 0x01  // as the server's Data packet, laid out the same
            let decoder = ServerPacketDecoder(revision: 54460, compression: true)
            let (packets, _) = try Self.decodeInPieces(server + [0x05], piece: server.count + 1, decoder: decoder)
            guard case let .data(result) = packets.first else { Issue.record("not Data"); return }
            #expect(try NativeFormat.encodeBlocks([result]) == NativeFormat.encodeBlocks([block]))
        }
    }

    /// Every way of cutting a reply in two, and the reply fed a byte at a time, decode to the same
    /// packets as the whole: the block is resumed at every kind of place (packet and column headers,
    /// inside fixed-width values being filled, inside strings and null maps).
    @Test func everyCutOfAReplyDecodesTheSame() throws {
        let block = Block(columns: [
            NamedColumn("n", FixedWidthColumn(type: .uint32, values: [1, 2, 3, 4, 5] as [UInt32])),
            NamedColumn("s", StringColumn(["a", "", "bcd", "e", "fg"])),
            NamedColumn("o", NullableColumn(type: .uint16, values: [7, nil, 9, nil, 11] as [UInt16?], placeholder: 0)),
            NamedColumn("u", FixedWidthColumn(type: .uuid, values: (0..<5).map { Bits128(first: UInt64($0), second: ~UInt64($0)) })),
        ])
        var writer = ByteWriter()
        try ClientPackets.data(block, compression: nil, revision: 54412, to: &writer)
        var packet = writer.bytes
        packet[0] = 0x01
        var exception = ByteWriter()  // a packet with strings outside any block
        exception.writeVarUInt(2)
        exception.writeInteger(Int32(60))
        exception.writeString("DB::Exception")
        exception.writeString("Table default.x doesn't exist.")
        exception.writeString("")
        exception.writeUInt8(0)
        let stream = packet + [0x03, 0x01, 0x01, 0x00] + exception.bytes + [0x05]  // then Progress, Exception, EndOfStream
        let expected = try NativeFormat.encodeBlocks([block])
        for piece in [1, 2, 3, 7, 16, stream.count] {
            let decoder = ServerPacketDecoder(revision: 54412, compression: false)
            let (packets, _) = try Self.decodeInPieces(stream, piece: piece, decoder: decoder)
            #expect(packets.map(\.name) == ["Data", "Progress", "Exception", "EndOfStream"], "pieces of \(piece)")
            guard case let .data(result) = packets.first else { continue }
            #expect(try NativeFormat.encodeBlocks([result]) == expected, "pieces of \(piece)")
        }
        for cut in 1..<stream.count {
            let decoder = ServerPacketDecoder(revision: 54412, compression: false)
            let (packets, _) = try Self.decodeArriving(stream, at: [cut, stream.count], decoder: decoder, "cut at \(cut)")
            #expect(packets.map(\.name) == ["Data", "Progress", "Exception", "EndOfStream"], "cut at \(cut)")
            guard case let .data(result) = packets.first else { continue }
            #expect(try NativeFormat.encodeBlocks([result]) == expected, "cut at \(cut)")
        }
    }

    /// A fixed-width column cut by the end of the input is filled from later input directly (its
    /// bytes are not carried); a row count that would need more than the fill limit is not
    /// allocated on the server's word.
    @Test func cutFixedWidthColumnIsFilledAndHugeClaimsAreNot() throws {
        let rows = 10_000
        let block = Block(columns: [NamedColumn("n", FixedWidthColumn(type: .uint64, values: (0..<rows).map { UInt64($0) * 3 }))])
        var writer = ByteWriter()
        try ClientPackets.data(block, compression: nil, revision: 54412, to: &writer)
        var packet = writer.bytes
        packet[0] = 0x01
        let decoder = ServerPacketDecoder(revision: 54412, compression: false)
        let cut = packet.count / 2
        #expect(throws: NeedMoreData(resumeOffset: cut, minimumBytes: 1, completingBytes: packet.count - cut)) {
            try ByteReader.withReader(Array(packet[..<cut])) { reader in _ = try decoder.decode(&reader) }
        }
        #expect(decoder.assembly.fill?.remainingBytes == packet.count - cut)
        let rest = try ByteReader.withReader(Array(packet[cut...])) { reader in try decoder.decode(&reader) }
        guard case let .data(result) = rest else { Issue.record("not Data"); return }
        #expect((result["n"] as? FixedWidthColumn<UInt64>)?.values == (0..<rows).map { UInt64($0) * 3 })

        // Data, no table name, BlockInfo, 1 column, 2^26 rows, then "n UInt64" and 8 bytes.
        let huge = Self.bytes([[0x01, 0x00], Self.blockInfo, [0x01, 0x80, 0x80, 0x80, 0x20],
                               0x01, "n", 0x06, "UInt64", [1, 0, 0, 0, 0, 0, 0, 0]])
        let fresh = ServerPacketDecoder(revision: 54412, compression: false)
        // It keeps the block's header (15 bytes) and asks for one byte more than the 17 it has
        // after it, not for the 512 MiB the row count claims (over the 64 MiB filled as it comes).
        #expect(throws: NeedMoreData(resumeOffset: 15, minimumBytes: 18)) { try ByteReader.withReader(huge) { reader in _ = try fresh.decode(&reader) } }
        #expect(fresh.assembly.fill == nil && !fresh.assembly.isIdle)
        // 2^40 rows are more than the packet limit (1 GiB) has bytes: refused at once.
        let overLimit = Self.bytes([[0x01, 0x00], Self.blockInfo, [0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20],
                                    0x01, "n", 0x06, "UInt64", [1, 0, 0, 0, 0, 0, 0, 0]])
        #expect(throws: Self.tooLarge(1 << 30)) {
            try ByteReader.withReader(overLimit) { reader in _ = try ServerPacketDecoder(revision: 54412, compression: false).decode(&reader) }
        }
    }

    @Test func everyPrefixOfAPacketAsksForMoreData() throws {
        // The first two packets (header and data block): every cut before their end is "need more".
        let (firstEnd, firstTwo) = try ByteReader.withReader(Self.selectReply) { reader -> (Int, Int) in
            let decoder = ServerPacketDecoder(revision: 54412, compression: false)
            _ = try decoder.decode(&reader)
            let first = reader.offset
            _ = try decoder.decode(&reader)
            return (first, reader.offset)
        }
        for cut in 0..<firstTwo {
            let decoder = ServerPacketDecoder(revision: 54412, compression: false)
            let prefix = Array(Self.selectReply[..<cut])
            var packets = 0
            do {
                try ByteReader.withReader(prefix) { reader in
                    while !reader.isAtEnd {
                        _ = try decoder.decode(&reader)
                        packets += 1
                    }
                }
            } catch is NeedMoreData {
                continue
            }
            // Only the empty prefix and the one that ends exactly after the first packet decode
            // without asking for more (a decoder that accepted a cut packet would pass `>= 1`).
            #expect(cut == 0 ? packets == 0 : (cut == firstEnd && packets == 1), "prefix of \(cut) bytes decoded without asking for more")
        }
    }

    @Test func nestedExceptions() throws {
        var writer = ByteWriter()
        writer.writeVarUInt(2)
        for (index, message) in ["outer", "inner"].enumerated() {
            writer.writeInteger(Int32(60 + index))
            writer.writeString("DB::Exception")
            writer.writeString(message)
            writer.writeString("")
            writer.writeUInt8(index == 0 ? 1 : 0)
        }
        guard case let .exception(exception) = try Self.decodeAll(writer.bytes)[0] else { Issue.record("not an exception"); return }
        #expect(exception.description == "Code: 60. DB::Exception: outer")
        #expect(exception.nested.map(\.description) == ["Code: 61. DB::Exception: inner"])
    }

    @Test func unknownPacketIsAProtocolError() {
        #expect(throws: ClickHouseProtocolError("unknown packet 99 from the server")) {
            try Self.decodeAll([99])
        }
    }

    @Test func progressFieldsFollowTheRevision() throws {
        // At 54460: rows, bytes, total rows, written rows, written bytes, elapsed ns.
        guard case let .progress(p) = try Self.decodeAll([0x03, 10, 20, 30, 40, 50, 60], revision: 54460)[0] else { Issue.record("not progress"); return }
        #expect([p.rows, p.bytes, p.totalRowsToRead, p.writtenRows, p.writtenBytes, p.elapsedNanoseconds] == [10, 20, 30, 40, 50, 60])
    }

    // MARK: The packet size limit

    /// A server Data packet of `block` (the client's Data packet with the server's code).
    static func serverData(_ block: Block, compression: CompressionMethod?, revision: UInt64 = 54412) throws -> [UInt8] {
        var writer = ByteWriter()
        try ClientPackets.data(block, compression: compression, revision: revision, to: &writer)
        var bytes = writer.bytes
        bytes[0] = 0x01
        return bytes
    }

    static func tooLarge(_ limit: Int) -> ClickHouseProtocolError {
        ClickHouseProtocolError("a packet from the server is larger than the \(limit)-byte limit (ClickHouseConfiguration.maximumPacketBytes), or its lengths are corrupt")
    }

    /// Found in review: nothing bounded what one packet could make the client hold. A length of
    /// 2^40 (here an exception's name) kept every later byte buffered until that many arrived; a
    /// block grew with each frame the server sent. Now a packet over the limit, or a length that
    /// claims more, is refused as soon as it shows.
    @Test func aLengthOverThePacketLimitIsRefusedAtOnce() throws {
        var writer = ByteWriter()
        writer.writeVarUInt(2)  // Exception
        writer.writeInteger(Int32(60))
        writer.writeVarUInt(1 << 40)
        writer.writeBytes(Array("DB::Exception".utf8))
        let decoder = ServerPacketDecoder(revision: 54412, compression: false)
        #expect(throws: Self.tooLarge(1 << 30)) {
            try ByteReader.withReader(writer.bytes) { reader in _ = try decoder.decode(&reader) }
        }
    }

    /// Found in review: a 40-byte packet decoded to a block of 2^62 rows, in a JSON column with no
    /// paths (no bytes per row), and any loop over its rows ran for ever.
    @Test(arguments: [CompressionMethod?.none, .lz4])
    func moreRowsThanThePacketLimitHasBytesAreRefused(compression: CompressionMethod?) throws {
        var block = ByteWriter()
        block.writeBytes(Self.blockInfo.map(UInt8.init))
        block.writeVarUInt(1)
        block.writeVarUInt(1 << 62)
        block.writeString("j")
        block.writeString("JSON")
        block.writeInteger(UInt64(3))  // the flattened serialization, then no paths
        block.writeVarUInt(0)
        var packet = ByteWriter()
        packet.writeVarUInt(1)
        packet.writeString("")
        if let compression {
            try block.bytes.withUnsafeBytes { try CompressedFrame.write($0, method: compression, zstdLevel: 1, to: &packet) }
        } else {
            packet.writeBytes(block.bytes)
        }
        let decoder = ServerPacketDecoder(revision: 54412, compression: compression != nil)
        #expect(throws: Self.tooLarge(1 << 30)) {
            try ByteReader.withReader(packet.bytes) { reader in _ = try decoder.decode(&reader) }
        }
    }

    @Test(arguments: [CompressionMethod?.none, .lz4, .zstd])
    func aBlockOverThePacketLimitIsRefused(compression: CompressionMethod?) throws {
        let block = Block(columns: [NamedColumn("s", StringColumn(Array(repeating: String(repeating: "x", count: 600), count: 3)))])
        let packet = try Self.serverData(block, compression: compression)
        let small = ServerPacketDecoder(revision: 54412, compression: compression != nil, maximumPacketBytes: 1000)
        #expect(throws: Self.tooLarge(1000)) {
            try ByteReader.withReader(packet) { reader in _ = try small.decode(&reader) }
        }
        #expect(small.assembly.isIdle)
        // Within the limit it is the same block.
        let enough = ServerPacketDecoder(revision: 54412, compression: compression != nil, maximumPacketBytes: 2000)
        let decoded = try ByteReader.withReader(packet) { reader in try enough.decode(&reader) }
        guard case let .data(back) = decoded else { Issue.record("not a Data packet: \(decoded)"); return }
        let strings = try #require(back["s"] as? StringColumn)
        #expect((0..<strings.count).map { strings[$0] } == Array(repeating: String(repeating: "x", count: 600), count: 3))
    }
}

@Suite struct ClientPacketTests {
    @Test func helloMatchesCapture() {
        var identity = ClientIdentity()
        identity.name = "probe"
        var writer = ByteWriter()
        ClientPackets.hello(identity: identity, database: "", user: "default", password: "", to: &writer)
        #expect(writer.bytes == [0x00, 0x05, 0x70, 0x72, 0x6F, 0x62, 0x65, 0x01, 0x00, 0xBC, 0xA9, 0x03,
                                 0x00, 0x07, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6C, 0x74, 0x00])
    }

    @Test func emptyDataPacketMatchesCapture() throws {
        var writer = ByteWriter()
        try ClientPackets.data(Block(columns: []), compression: nil, revision: 54412, to: &writer)
        #expect(writer.bytes == [0x02, 0x00, 0x01, 0x00, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00])
    }

    @Test func parametersNeedARecentServer() {
        var writer = ByteWriter()
        let query = ClientPackets.Query(id: "", text: "SELECT {x:UInt8}", settings: [], parameters: ["x": "1"], compression: false, quotaKey: "")
        #expect(throws: ClickHouseClientError("the server (protocol revision 54412) does not support query parameters; they need revision 54459 (ClickHouse 22.8 or later)")) {
            try ClientPackets.query(query, identity: ClientIdentity(), revision: 54412, to: &writer)
        }
        #expect(writer.bytes.isEmpty)
    }

    @Test func unknownSettingIsRefusedForOldServers() {
        var writer = ByteWriter()
        let query = ClientPackets.Query(id: "", text: "SELECT 1", settings: [QuerySetting("no_such_setting", "1")], parameters: [:], compression: false, quotaKey: "")
        #expect(throws: ClickHouseClientError("setting no_such_setting cannot be sent to a server of protocol revision 54412: such servers cannot skip settings they do not know, and this client does not know its type")) {
            try ClientPackets.query(query, identity: ClientIdentity(), revision: 54412, to: &writer)
        }
    }

    @Test(arguments: [("it's", "'it\\'s'"), ("5", "'5'"), ("a\\b", "'a\\\\\\\\b'"), ("tab\there", "'tab\\\\there'")])
    func parameterQuoting(value: String, wire: String) {
        #expect(ClientPackets.quoteParameter(value) == wire)
    }

    /// Composite values and NULL get no TSV-escaping layer: the server reads the unquoted value as a
    /// TabSeparated field of the placeholder's type, and for `['it\'s','a\\b']` and `\N` that is
    /// the literal itself (checked with chDB: `format(TSV, 'a Array(String), n Nullable(String)',
    /// ...)` reads them as ["it's", "a\\b"] and null). Found in review: every value was escaped.
    @Test func parameterQuotingFollowsThePlaceholdersType() {
        let types = ClientPackets.parameterTypes(in: "SELECT {a:Array(String)}, { n : Nullable(String) }, {s:String}, {m:Map(String, UInt8)}")
        #expect(types == ["a": .array(.string), "n": .nullable(.string), "s": .string, "m": .map(key: .string, value: .uint8)])
        #expect(ClientPackets.quoteParameter("['it\\'s','a\\\\b']", type: types["a"]) == "'[\\'it\\\\\\'s\\',\\'a\\\\\\\\b\\']'")
        #expect(ClientPackets.quoteParameter("\\N", type: types["n"]) == "'\\\\N'")
        #expect(ClientPackets.quoteParameter("\\N", type: types["s"]) == "'\\\\\\\\N'")
        #expect(ClientPackets.quoteParameter("tab\there", type: types["n"]) == "'tab\\\\there'")
    }
}
