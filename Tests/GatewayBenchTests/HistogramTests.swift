import Testing

@testable import GatewayBench

@Suite("latency histogram")
struct HistogramTests {
    @Test func percentilesOfRecordedValues() {
        var histogram = BenchHistogram()
        #expect(histogram.p50 == nil)
        for value in 1...1000 { histogram.record(micros: UInt64(value)) }
        #expect(histogram.count == 1000)
        #expect(histogram.p50 == 500)
        #expect(histogram.p99 == 990)
        #expect(histogram.p999 == 999)
        #expect(histogram.max == 1000)
    }

    @Test func recordsNanosecondIntervalsInMicroseconds() {
        var histogram = BenchHistogram()
        histogram.record(fromNanos: 1_000_000_000, toNanos: 1_000_250_000)
        #expect(histogram.p50 == 250)
        // A clock that went backwards counts as the smallest latency, not a huge one.
        histogram.record(fromNanos: 2_000, toNanos: 1_000)
        #expect(histogram.count == 2)
        #expect(histogram.percentile(0.1) == 1)
    }

    @Test func mergeAddsEveryValue() {
        var fast = BenchHistogram()
        var slow = BenchHistogram()
        for _ in 0..<99 { fast.record(micros: 100) }
        for _ in 0..<900 { slow.record(micros: 10_000) }
        slow.record(micros: 1_000_000_000)  // beyond the range: clamped, still counted
        fast.merge(slow)
        #expect(fast.count == 1000)
        #expect(fast.clamped == 1)
        #expect(fast.p50 == 10_007 || fast.p50 == 10_000)
        #expect(fast.percentile(9) == 100)
        #expect(fast.max == BenchHistogram.highestMicros || (fast.max ?? 0) >= BenchHistogram.highestMicros)
        var empty = BenchHistogram()
        empty.merge(BenchHistogram())
        #expect(empty.count == 0)
        #expect(empty.p99 == nil)
    }
}
