import Atomics

/// A lock-free latency histogram: log-linear buckets (4 per power of two) from 1 µs to about
/// 70 s, counted with atomics so recording on the hot path takes no lock.
public final class LatencyHistogram: Sendable {
    static let subBuckets = 4
    static let powers = 27
    static let bucketCount = subBuckets * powers

    private let buckets: [ManagedAtomic<UInt64>]
    private let total = ManagedAtomic<UInt64>(0)

    public init() {
        buckets = (0..<Self.bucketCount).map { _ in ManagedAtomic<UInt64>(0) }
    }

    /// Records one duration in nanoseconds.
    @inline(__always)
    public func record(nanoseconds: UInt64) {
        buckets[Self.bucket(forMicros: nanoseconds / 1000)].wrappingIncrement(ordering: .relaxed)
        total.wrappingIncrement(ordering: .relaxed)
    }

    static func bucket(forMicros micros: UInt64) -> Int {
        guard micros >= 1 else { return 0 }
        let power = 63 - micros.leadingZeroBitCount  // floor(log2)
        // Position within [2^power, 2^(power+1)) in quarters.
        let sub = power >= 2 ? Int((micros >> UInt64(power - 2)) & 0b11) : Int(micros & 0b11) % subBuckets
        return min(power * subBuckets + sub, bucketCount - 1)
    }

    /// The upper bound (µs) of a bucket.
    static func upperBound(ofBucket index: Int) -> UInt64 {
        let power = index / subBuckets
        let sub = UInt64(index % subBuckets)
        let base: UInt64 = 1 << UInt64(power)
        return base + (base * (sub + 1)) / UInt64(subBuckets)
    }

    public var count: UInt64 { total.load(ordering: .relaxed) }

    /// The value (µs) below which `quantile` of the recorded durations fall; 0 when empty.
    public func percentile(_ quantile: Double) -> UInt64 {
        let counts = buckets.map { $0.load(ordering: .relaxed) }
        let sum = counts.reduce(0, +)
        guard sum > 0 else { return 0 }
        let rank = UInt64((Double(sum) * quantile).rounded(.up))
        var seen: UInt64 = 0
        for (index, count) in counts.enumerated() {
            seen += count
            if seen >= max(rank, 1) { return Self.upperBound(ofBucket: index) }
        }
        return Self.upperBound(ofBucket: Self.bucketCount - 1)
    }

    /// Bucket counts with their upper bounds (µs), for the Prometheus exposition.
    public func snapshot() -> [(upperBoundMicros: UInt64, count: UInt64)] {
        buckets.enumerated().map { (Self.upperBound(ofBucket: $0.offset), $0.element.load(ordering: .relaxed)) }
    }
}

/// Per-stage figures the runner keeps: outcomes and latency.
public final class StageStats: Sendable {
    public let processed = ManagedAtomic<Int>(0)
    public let rejected = ManagedAtomic<Int>(0)
    public let errors = ManagedAtomic<Int>(0)
    public let latency = LatencyHistogram()

    public init() {}
}
