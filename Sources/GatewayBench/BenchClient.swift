/// One simulated client: a user with one device. Lives on the generator's event loop.
final class BenchClient {
    enum Role: Equatable {
        /// Sends to `target` (and receives what others send it).
        case sender
        /// Only receives (and sends heartbeats).
        case receiver
        /// Connects and stays quiet but for heartbeats.
        case idle
    }

    let index: Int
    let user: String
    let token: String
    let role: Role
    /// The JSON address a sender sends to.
    let target: [UInt8]?
    /// The sender whose messages a tracked receiver counts (`storm`).
    let peer: Int?

    var connection: LoadConnection?
    /// A connection attempt is under way (TCP, upgrade or waiting for `hello`).
    var connecting = false
    /// `hello` arrived.
    var open = false
    /// Open and caught up: it may send.
    var ready = false
    /// Sends not yet acked (window mode).
    var inFlight = 0
    var nextNumber: UInt64 = 1
    var lastSentNanos: UInt64 = 0
    /// Failed or dropped connections in a row (backoff exponent).
    var attempts = 0
    /// Counted as back in the current storm epoch.
    var counted = false

    // Tracking (`storm`): what was sent, acked and received, and the inbox position.
    /// The highest seq up to which this device has everything.
    var lastSeq: Int64 = 0
    /// Seqs seen above `lastSeq` + 1 (a gap waits for `sync`).
    var outOfOrder: Set<Int64> = []
    var syncing = false
    /// Numbers issued and not yet acked: resent (same `client_msg_id`) after a reconnect.
    var unacked: Set<UInt64> = []
    var acked = BitSet()
    /// Numbers of `peer`'s messages received, live or through `sync`.
    var received = BitSet()

    init(index: Int, user: String, token: String, role: Role, target: [UInt8]? = nil, peer: Int? = nil) {
        self.index = index
        self.user = user
        self.token = token
        self.role = role
        self.target = target
        self.peer = peer
    }

    /// Takes a seq from a message or ack; returns whether it is new, and leaves a gap for `sync`.
    func accept(seq: Int64) -> Bool {
        if seq <= lastSeq || outOfOrder.contains(seq) { return false }
        if seq == lastSeq + 1 {
            lastSeq = seq
            while outOfOrder.remove(lastSeq + 1) != nil { lastSeq += 1 }
        } else {
            outOfOrder.insert(seq)
        }
        return true
    }

    /// Seqs above `lastSeq` that arrived: something before them is missing.
    var hasGap: Bool { !outOfOrder.isEmpty }
}

/// A growable set of small non-negative integers.
struct BitSet: Sendable, Equatable {
    private var words: [UInt64] = []
    private(set) var count = 0

    init() {}

    func contains(_ value: UInt64) -> Bool {
        let word = Int(value >> 6)
        return word < words.count && words[word] & (1 << (value & 63)) != 0
    }

    /// Adds `value`; returns whether it was new.
    @discardableResult
    mutating func insert(_ value: UInt64) -> Bool {
        let word = Int(value >> 6)
        if word >= words.count { words.append(contentsOf: repeatElement(0, count: word - words.count + 1)) }
        let bit: UInt64 = 1 << (value & 63)
        if words[word] & bit != 0 { return false }
        words[word] |= bit
        count += 1
        return true
    }

    /// Every member, ascending.
    var members: [UInt64] {
        var result: [UInt64] = []
        result.reserveCapacity(count)
        for (index, word) in words.enumerated() where word != 0 {
            for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 {
                result.append(UInt64(index * 64 + bit))
            }
        }
        return result
    }
}
