import GatewayCore
import Synchronization

/// Snowflake ids: 41 bits of milliseconds since `epoch`, 10 bits of worker id, 12 bits of
/// sequence within the millisecond.
///
/// Ids only ever increase. When the clock steps back, or more than 4,096 ids are asked for in one
/// millisecond, the generator keeps counting on from the last millisecond it used (borrowing
/// the next one when the sequence is spent) instead of reusing a value; a restart resumes
/// after the highest id already stored (see `resume(after:)`).
public final class SnowflakeGenerator: Sendable {
    public static let workerBits: UInt64 = 10
    public static let sequenceBits: UInt64 = 12
    public static let maxSequence: UInt64 = (1 << sequenceBits) - 1

    struct State {
        var lastMillis: UInt64 = 0
        var sequence: UInt64 = 0
        var resumed = false
    }

    /// Guards the last millisecond used and the sequence within it.
    private let state = Mutex(State())
    private let clock: any GatewayClock
    private let epochMillis: Int64
    private let worker: UInt64

    public init(workerID: Int, epochMillis: Int64, clock: any GatewayClock) {
        precondition((0...1023).contains(workerID), "worker id out of range")
        self.worker = UInt64(workerID)
        self.epochMillis = epochMillis
        self.clock = clock
    }

    /// Whether `resume(after:)` has run.
    public var hasResumed: Bool { state.withLock { $0.resumed } }

    /// Never hand out an id at or below `id` (the highest one in the store at start, or another
    /// node's id that an inbox already holds).
    public func resume(after id: UInt64?) {
        state.withLock { state in
            state.resumed = true
            guard let id else { return }
            let millis = id >> (Self.workerBits + Self.sequenceBits)
            // Another worker's id (a floor from another node): in the same millisecond, a larger
            // worker id sorts above every sequence of ours, so ours must take the next millisecond.
            let idWorker = (id >> Self.sequenceBits) & ((1 << Self.workerBits) - 1)
            let sequence = idWorker > worker ? Self.maxSequence : id & Self.maxSequence
            if millis > state.lastMillis || (millis == state.lastMillis && sequence > state.sequence) {
                state.lastMillis = millis
                state.sequence = sequence
            }
        }
    }

    public func next() -> UInt64 {
        let now = UInt64(max(0, clock.nowMillis() - epochMillis))
        let (millis, sequence): (UInt64, UInt64) = state.withLock { state in
            if now > state.lastMillis {
                state.lastMillis = now
                state.sequence = 0
            } else {
                state.sequence += 1
                if state.sequence > Self.maxSequence {
                    state.lastMillis += 1
                    state.sequence = 0
                }
            }
            return (state.lastMillis, state.sequence)
        }
        return millis << (Self.workerBits + Self.sequenceBits) | worker << Self.sequenceBits | sequence
    }

    /// The millisecond timestamp (since the Unix epoch) encoded in an id.
    public func timestamp(of id: UInt64) -> Int64 {
        Int64(id >> (Self.workerBits + Self.sequenceBits)) + epochMillis
    }
}
