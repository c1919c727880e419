import Foundation
import Testing
@testable import EventPipeline

/// The consumer's cache of the rows it wrote last, which the next batch's updates build on.
@Suite struct RowCacheTests {
    static let id = BatchPlannerTests.a

    static func row(version: UInt64, output: String) -> EventRow {
        var fields = BatchPlannerTests.fields
        fields.output = output
        return BatchPlannerTests.row(id, version: version, fields: fields)
    }

    @Test func aNewerVersionReplacesTheCachedOne() {
        var cache = RowCache(capacityBytes: 1 << 20)
        cache.store(Self.row(version: 10, output: "small"), partition: 0)
        cache.store(Self.row(version: 20, output: "changed"), partition: 0)
        #expect(cache.row(Self.id)?.version == 20)
        #expect(cache.row(Self.id)?.fields.output == "changed")
    }

    /// Found in review (2026-12-07): a row too large to keep left the previous version cached, so
    /// the next update was planned on top of it and silently reverted the large field.
    @Test func aRowTooLargeToKeepDropsTheCachedVersion() {
        var cache = RowCache(capacityBytes: 1 << 20)
        cache.store(Self.row(version: 10, output: "small"), partition: 0)
        cache.store(Self.row(version: 20, output: String(repeating: "x", count: 300_000)), partition: 0)  // over a quarter
        #expect(cache.row(Self.id) == nil, "the next batch must read the stored row")
    }

    @Test func aRowOfNoPartitionDropsTheCachedVersion() {
        var cache = RowCache(capacityBytes: 1 << 20)
        cache.store(Self.row(version: 10, output: "small"), partition: 0)
        cache.store(Self.row(version: 20, output: "newer"), partition: nil)
        #expect(cache.row(Self.id) == nil)
    }

    @Test func aCopyInTheOlderGenerationIsDroppedToo() {
        var cache = RowCache(capacityBytes: 8_000)
        cache.store(Self.row(version: 10, output: "small"), partition: 0)
        // Fill the newer generation until it turns over: the first copy moves to the older one.
        for index in 0..<20 {
            cache.store(BatchPlannerTests.row(UUID(), version: UInt64(index), fields: BatchPlannerTests.fields), partition: 0)
        }
        #expect(cache.row(Self.id)?.version == 10)
        cache.store(Self.row(version: 20, output: String(repeating: "x", count: 3_000)), partition: 0)  // over a quarter of 8 000
        #expect(cache.row(Self.id) == nil)
    }
}
