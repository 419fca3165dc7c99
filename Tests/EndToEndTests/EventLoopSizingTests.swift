import NIOCore
import Testing

@testable import chatgate

@Suite("Event loops sized to the CPU affinity")
struct EventLoopSizingTests {
    @Test(arguments: [
        ("0", 1), ("0-1", 2), ("0-3,6,8-9", 7), (" 2 ", 1), ("4-4", 1),
    ])
    func cpuLists(list: String, count: Int) {
        #expect(EventLoopSizing.cpuCount(list: Substring(list)) == count)
    }

    @Test(arguments: ["", "a", "3-1", "1-2-3", "1,,x"])
    func malformedListsAreNotGuessed(list: String) {
        #expect(EventLoopSizing.cpuCount(list: Substring(list)) == nil)
    }

    @Test func thisProcessHasAtLeastOneAndAtMostAllCores() throws {
        let allowed = try #require(EventLoopSizing.allowedCPUCount())
        #expect(allowed >= 1)
        #expect(allowed <= System.coreCount)
    }
}
