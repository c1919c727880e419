import ClickHouseNative
import Testing
@testable import EventPipeline

struct EventAPIReadErrorTests {
    /// Reads before the migration ran meet an unknown table or database: "try again" (503), since
    /// the running migration creates them; any other query error is a fault (500; the live tests
    /// in Tests/api/test_read_faults.py show both statuses).
    @Test func anUnknownTableOrDatabaseIsTheSchemaStillPending() {
        #expect(EventAPI.isSchemaPending(ServerException(code: 60, name: "DB::Exception", message: "Table x.events doesn't exist.")))
        #expect(EventAPI.isSchemaPending(ServerException(code: 81, name: "DB::Exception", message: "Database x doesn't exist")))
        #expect(!EventAPI.isSchemaPending(ServerException(code: 47, name: "DB::Exception", message: "Unknown identifier: is_deleted")))
        #expect(!EventAPI.isSchemaPending(ClickHouseConnectionError.busy))
    }
}
