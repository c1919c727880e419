/// ClickHouse's binary encoding of data types (one tag byte plus parameters), used where a value
/// carries its own type: Dynamic's shared variant and JSON's shared data.
enum BinaryTypeEncoding {
    static let maximumElements = 1_000_000
    static let intervalUnits: [ClickHouseType.IntervalUnit] = [
        .nanosecond, .microsecond, .millisecond, .second, .minute, .hour, .day, .week, .month, .quarter, .year,
    ]

    static func decode(_ reader: inout ByteReader, depth: Int = 0) throws -> ClickHouseType {
        guard depth < 64 else { throw ColumnCodecError.invalid("binary type encoding nested too deeply") }
        func count() throws -> Int {
            let n = try reader.readLength()
            guard n <= maximumElements else { throw ColumnCodecError.invalid("binary type encoding has \(n) elements") }
            return n
        }
        func nested() throws -> ClickHouseType { try decode(&reader, depth: depth + 1) }
        // 0 to 9, as the server allows: 10^19 ticks per second overflowed the renderer's Int64.
        func subsecondPrecision(_ name: String) throws -> Int {
            let precision = Int(try reader.readUInt8())
            guard precision <= 9 else { throw ColumnCodecError.invalid("\(name) precision \(precision) in a binary type encoding") }
            return precision
        }
        let tag = try reader.readUInt8()
        switch tag {
        case 0x00: return .nothing
        case 0x01: return .uint8
        case 0x02: return .uint16
        case 0x03: return .uint32
        case 0x04: return .uint64
        case 0x05: return .uint128
        case 0x06: return .uint256
        case 0x07: return .int8
        case 0x08: return .int16
        case 0x09: return .int32
        case 0x0A: return .int64
        case 0x0B: return .int128
        case 0x0C: return .int256
        case 0x0D: return .float32
        case 0x0E: return .float64
        case 0x0F: return .date
        case 0x10: return .date32
        case 0x11: return .dateTime(timeZone: nil)
        case 0x12: return .dateTime(timeZone: try reader.readString())
        case 0x13: return .dateTime64(precision: try subsecondPrecision("DateTime64"), timeZone: nil)
        case 0x14:
            let precision = try subsecondPrecision("DateTime64")
            return .dateTime64(precision: precision, timeZone: try reader.readString())
        case 0x15: return .string
        case 0x16:
            // As the name parser (and the server) allow: a zero length divided by zero in the renderer.
            let length = try reader.readLength(minimumElementSize: 0)
            guard (1...0xFF_FFFF).contains(length) else { throw ColumnCodecError.invalid("FixedString length \(length) in a binary type encoding") }
            return .fixedString(length: length)
        case 0x17, 0x18:
            var cases: [ClickHouseType.EnumCase] = []
            for _ in 0..<(try count()) {
                let name = try reader.readString()
                let value = tag == 0x17 ? Int(try reader.readInteger(as: Int8.self)) : Int(try reader.readInteger(as: Int16.self))
                cases.append(.init(name, value))
            }
            return tag == 0x17 ? .enum8(cases) : .enum16(cases)
        case 0x19, 0x1A, 0x1B, 0x1C:
            let precision = Int(try reader.readUInt8())
            let scale = Int(try reader.readUInt8())
            guard (1...76).contains(precision), scale <= precision else {
                throw ColumnCodecError.invalid("Decimal(\(precision), \(scale)) in a binary type encoding")
            }
            return .decimal(precision: precision, scale: scale)
        case 0x1D: return .uuid
        case 0x1E: return .array(try nested())
        case 0x1F: return .tuple(try (0..<(try count())).map { _ in .init(nil, try nested()) })
        case 0x20:
            return .tuple(try (0..<(try count())).map { _ in
                let name = try reader.readString()
                return .init(name, try nested())
            })
        case 0x22:
            let kind = Int(try reader.readUInt8())
            guard kind < intervalUnits.count else { throw ColumnCodecError.invalid("unknown interval kind \(kind)") }
            return .interval(intervalUnits[kind])
        case 0x23: return .nullable(try nested())
        case 0x26: return .lowCardinality(try nested())
        case 0x27:
            let key = try nested()
            return .map(key: key, value: try nested())
        case 0x28: return .ipv4
        case 0x29: return .ipv6
        case 0x2A: return .variant(try (0..<(try count())).map { _ in try nested() })
        case 0x2B: return .dynamic(maxTypes: Int(try reader.readUInt8()))
        case 0x2C:
            let name = try reader.readString()
            do { return try ClickHouseType.parse(name) } catch { throw ColumnCodecError.invalid(error.message) }
        case 0x2D: return .bool
        case 0x2F:
            return .nested(try (0..<(try count())).map { _ in
                let name = try reader.readString()
                return .init(name, try nested())
            })
        case 0x30:
            let version = try reader.readUInt8()
            guard version == 0 else { throw ColumnCodecError.invalid("unknown JSON type encoding version \(version)") }
            var parameters = ClickHouseType.JSONTypeParameters()
            parameters.maxDynamicPaths = try reader.readLength(minimumElementSize: 0)
            parameters.maxDynamicTypes = Int(try reader.readUInt8())
            parameters.rawParameters = ["max_dynamic_paths=\(parameters.maxDynamicPaths!)", "max_dynamic_types=\(parameters.maxDynamicTypes!)"]
            for _ in 0..<(try count()) {
                let path = try reader.readString()
                let type = try nested()
                parameters.typedPathList.append(.init(path, type))
                parameters.rawParameters.append("\(path) \(type.name)")
            }
            for _ in 0..<(try count()) { parameters.rawParameters.append("SKIP \(try reader.readString())") }
            for _ in 0..<(try count()) { parameters.rawParameters.append("SKIP REGEXP \(quoteTypeString(try reader.readString()))") }
            return .json(parameters)
        case 0x31: return .bfloat16
        case 0x32: return .time
        case 0x33: return .time64(precision: try subsecondPrecision("Time64"))
        default:
            throw ColumnCodecError.invalid("unsupported binary type tag 0x\(String(tag, radix: 16))")
        }
    }
}
