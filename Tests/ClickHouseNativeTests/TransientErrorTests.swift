import Testing
@testable import ClickHouseNative

struct TransientErrorTests {
    @Test func overloadAndLostConnectionsAreTransientQueryErrorsAreNot() {
        // MEMORY_LIMIT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES, TOO_MANY_PARTS, TIMEOUT_EXCEEDED
        for code: Int32 in [241, 202, 252, 159] {
            #expect(TransientErrors.contains(ServerException(code: code, name: "DB::Exception", message: "")), "code \(code)")
        }
        // SYNTAX_ERROR, UNKNOWN_IDENTIFIER, UNKNOWN_TABLE, WRONG_PASSWORD, AUTHENTICATION_FAILED
        for code: Int32 in [62, 47, 60, 193, 516] {
            #expect(!TransientErrors.contains(ServerException(code: code, name: "DB::Exception", message: "")), "code \(code)")
        }
        #expect(TransientErrors.contains(ClickHouseConnectionError.connectFailed("h:1: Connection refused (errno 111)")))
        #expect(TransientErrors.contains(ClickHouseConnectionError.closed("the server closed the connection")))
        #expect(TransientErrors.contains(ClickHouseConnectionError.timeout("no data from the server for 5 ms")))
        #expect(!TransientErrors.contains(ClickHouseConnectionError.busy))
        #expect(!TransientErrors.contains(ClickHouseConnectionError.insertMismatch("column x is missing")))
        #expect(!TransientErrors.contains(ClickHouseProtocolError("unknown packet 99 from the server")))
        #expect(!TransientErrors.contains(ColumnAccessError("column n is UInt8, not stored as UInt64")))
    }
}
