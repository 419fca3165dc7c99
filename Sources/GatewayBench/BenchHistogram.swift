import Histogram

/// Latencies in microseconds, recorded into an HdrHistogram (3 significant digits, 1 µs to
/// 10 minutes), so percentiles up to p99.9 are exact to 0.1 % whatever the spread.
///
/// A value type with no locks: each recorder owns one (the generator records on its single event
/// loop) and histograms from several runs or recorders are combined with `merge`.
public struct BenchHistogram: Sendable, Equatable {
    /// The largest latency kept apart; larger ones are clamped to it (and counted in `clamped`).
    public static let highestMicros: UInt64 = 600_000_000

    private(set) var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: BenchHistogram.highestMicros, numberOfSignificantValueDigits: .three)
    /// Values above `highestMicros`.
    public private(set) var clamped: UInt64 = 0

    public init() {}

    /// Values recorded.
    public var count: UInt64 { histogram.totalCount }

    /// Records one latency.
    public mutating func record(micros: UInt64) {
        if micros > Self.highestMicros {
            clamped += 1
            _ = histogram.record(Self.highestMicros)
        } else {
            _ = histogram.record(Swift.max(micros, 1))
        }
    }

    /// Records the time from `start` to `end`, both monotonic nanoseconds.
    public mutating func record(fromNanos start: UInt64, toNanos end: UInt64) {
        record(micros: end > start ? (end - start) / 1000 : 0)
    }

    /// Adds every value of `other`.
    public mutating func merge(_ other: BenchHistogram) {
        histogram.add(other.histogram)
        clamped += other.clamped
    }

    /// The value at a percentile (0...100) in microseconds; nil when nothing was recorded.
    public func percentile(_ percentile: Double) -> UInt64? {
        count == 0 ? nil : histogram.valueAtPercentile(percentile)
    }

    /// The median (µs).
    public var p50: UInt64? { percentile(50) }
    /// The 99th percentile (µs).
    public var p99: UInt64? { percentile(99) }
    /// The 99.9th percentile (µs).
    public var p999: UInt64? { percentile(99.9) }
    /// The largest value (µs, to the histogram's precision).
    public var max: UInt64? { count == 0 ? nil : histogram.max }

    /// Forgets every value.
    public mutating func reset() {
        histogram.reset()
        clamped = 0
    }

    /// Same count, clamped count and percentiles.
    public static func == (lhs: BenchHistogram, rhs: BenchHistogram) -> Bool {
        lhs.count == rhs.count && lhs.clamped == rhs.clamped && lhs.p50 == rhs.p50 && lhs.p99 == rhs.p99 && lhs.p999 == rhs.p999
            && lhs.max == rhs.max
    }
}
