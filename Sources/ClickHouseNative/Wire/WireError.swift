/// A failure to read ClickHouse wire bytes: the input ended early or held a value that cannot be valid.
///
/// Readers never trap and never allocate from an untrusted length before checking it against the
/// bytes that are actually there, so hostile input ends in one of these errors.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `needed` more bytes were required at `offset`, but only `available` were left.
    case unexpectedEnd(offset: Int, needed: Int, available: Int)
    /// A VarUInt longer than 10 bytes, or one that does not fit 64 bits.
    case malformedVarUInt(offset: Int)
    /// A length or count larger than the input could possibly hold.
    case lengthTooLarge(offset: Int, length: UInt64, limit: Int)

    public var description: String {
        switch self {
        case let .unexpectedEnd(offset, needed, available):
            return "unexpected end of data at byte \(offset): needed \(needed) bytes, \(available) left"
        case let .malformedVarUInt(offset):
            return "malformed VarUInt at byte \(offset)"
        case let .lengthTooLarge(offset, length, limit):
            return "length \(length) at byte \(offset) exceeds the \(limit) bytes left"
        }
    }
}
