import NIOCore

/// Where a cluster keeps its long-poll sessions, so that a session id works on every node and
/// outlives the node that opened it (`PostgresClusterBus+LongPoll.swift`, table
/// `longpoll_sessions`). A single node has none (`ClusterBus.longPolls` is nil).
///
/// The owning node writes a session's row when it opens and then, in one statement for all its
/// sessions, every `longpoll.session_ttl_ms / 4` (`save`): the last seq the client confirmed and
/// the expiry. A request for a session this node does not hold asks `locate`: relay to the live
/// owner, or, when the owner is no longer live, `claim` the row and re-home the session here.
public protocol LongPollDirectory: Sendable {
    /// Inserts or refreshes rows owned by this node (a row another node claimed is left alone),
    /// and deletes the rows of `ended` sessions this node owned and the expired rows of anyone.
    /// Returns the sessions of `records` whose rows another node holds now (it took them over
    /// while this node's lease had lapsed): this node lets go of them.
    @discardableResult
    func save(_ records: [LongPollRecord], ended: [String]) async throws -> Set<String>

    /// Who holds `session`: another live node (relay there), nobody live (re-home it), or no
    /// such session (expired, closed, or it never existed; also when this node owns the row).
    func locate(session: String) async throws -> LongPollLocation

    /// Takes the row of an orphaned session for this node, atomically (only while its owner is
    /// still the dead one). Returns false when another node claimed it first.
    func claim(_ record: LongPollRecord, expiresAt: Int64) async throws -> Bool
}

/// A long-poll session's durable state.
public struct LongPollRecord: Sendable, Hashable {
    public var session: String
    public var user: String
    public var device: String
    /// The highest inbox seq the client confirmed (its `ack`, or the last seq of a poll answer
    /// followed by another poll); a re-homed session delivers the inbox after it.
    public var ackedSeq: Int64
    /// When the session expires without a poll (ms, the node's clock).
    public var expiresAt: Int64
    /// The owner's lease (worker id and instance); opaque to the core.
    public var owner: String

    public init(session: String, user: String, device: String, ackedSeq: Int64, expiresAt: Int64, owner: String = "") {
        self.session = session
        self.user = user
        self.device = device
        self.ackedSeq = ackedSeq
        self.expiresAt = expiresAt
        self.owner = owner
    }
}

public enum LongPollLocation: Sendable, Hashable {
    /// A live node holds it: relay to its long-poll base URL (`…/v1/lp`).
    case remote(String)
    /// Its node is gone (lease expired or released) and it has not expired: re-home it.
    case orphaned(LongPollRecord)
    /// No such live session.
    case unknown
}

extension ClusterBus {
    /// No directory: long-poll sessions live and die with their node.
    public var longPolls: (any LongPollDirectory)? { nil }
}

extension ServerFrame {
    /// The `seq` of a `message` frame as `ServerFrame.message` writes it
    /// (`{"type":"message","id":"…","seq":N,…`), nil for any other frame or one without seq.
    /// A prefix scan, cheap enough for every frame of a poll answer.
    public static func messageSeq(_ frame: ByteBuffer) -> Int64? {
        frame.withUnsafeReadableBytes { bytes -> Int64? in
            let head = Array("{\"type\":\"message\",\"id\":\"".utf8)
            guard bytes.count > head.count + 8, bytes.starts(with: head) else { return nil }
            var index = head.count
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
            let key = Array("\",\"seq\":".utf8)
            guard index + key.count < bytes.count, bytes[index..<index + key.count].elementsEqual(key) else { return nil }
            index += key.count
            return decimal(in: bytes, at: index)
        }
    }

    /// The `inbox_seq` of a `hello` frame, nil when it has none.
    public static func helloInboxSeq(_ frame: ByteBuffer) -> Int64? {
        frame.withUnsafeReadableBytes { bytes -> Int64? in
            let key = Array("\"inbox_seq\":".utf8)
            guard bytes.count >= key.count else { return nil }
            var start = 0
            while start + key.count <= bytes.count {
                if bytes[start..<start + key.count].elementsEqual(key) { break }
                start += 1
            }
            let index = start + key.count
            guard index <= bytes.count else { return nil }
            return decimal(in: bytes, at: index)
        }
    }

    /// The decimal number (at most 18 digits) that starts at `index`, nil when none does.
    private static func decimal(in bytes: UnsafeRawBufferPointer, at index: Int) -> Int64? {
        var index = index
        var value: Int64 = 0
        var digits = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9"), digits < 18 {
            value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
            index += 1
            digits += 1
        }
        return digits > 0 ? value : nil
    }
}
