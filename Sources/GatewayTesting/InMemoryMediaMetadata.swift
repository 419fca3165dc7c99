import GatewayCore
import Synchronization

/// A `MediaMetadataStore` in memory, with the semantics the protocol asks of real backends.
/// `InMemoryStore` conforms through one of these.
public final class InMemoryMediaMetadata: MediaMetadataStore, Sendable {
    struct State {
        var records: [String: MediaRecord] = [:]
        var sent: [String: [String]] = [:]
        var statistics = MediaStatistics(uploads: 0, bytesIn: 0, bytesStored: 0)
    }

    /// Guards the records, the conversations and the totals.
    private let state = Mutex(State())

    public init() {}

    public func insertMedia(_ record: MediaRecord) async throws {
        try state.withLock { state in
            guard state.records[record.id] == nil else { throw GatewayError(.conflict, "media id \(record.id) exists") }
            state.records[record.id] = record
            if record.originalID == nil {
                state.statistics.uploads += 1
                state.statistics.bytesIn += record.size
                state.statistics.bytesStored += record.storedSize
            }
        }
    }

    public func media(_ id: String) async throws -> MediaRecord? {
        state.withLock { $0.records[id] }
    }

    public func recordMediaSent(_ ids: [String], conversation: String) async throws {
        state.withLock { state in
            for id in ids where state.records[id] != nil {
                if !(state.sent[id]?.contains(conversation) ?? false) { state.sent[id, default: []].append(conversation) }
            }
        }
    }

    public func mediaConversations(_ id: String) async throws -> [String] {
        state.withLock { $0.sent[id] ?? [] }
    }

    public func mediaBytes(uploadedBy user: String) async throws -> Int64 {
        state.withLock { state in
            state.records.values.filter { $0.uploader == user && $0.originalID == nil }.reduce(0) { $0 + $1.size }
        }
    }

    public func mediaStatistics() async throws -> MediaStatistics {
        state.withLock { $0.statistics }
    }
}

extension InMemoryStore: MediaMetadataStore {
    public func insertMedia(_ record: MediaRecord) async throws { try await mediaMetadata.insertMedia(record) }
    public func media(_ id: String) async throws -> MediaRecord? { try await mediaMetadata.media(id) }
    public func recordMediaSent(_ ids: [String], conversation: String) async throws {
        try await mediaMetadata.recordMediaSent(ids, conversation: conversation)
    }
    public func mediaConversations(_ id: String) async throws -> [String] { try await mediaMetadata.mediaConversations(id) }
    public func mediaBytes(uploadedBy user: String) async throws -> Int64 { try await mediaMetadata.mediaBytes(uploadedBy: user) }
    public func mediaStatistics() async throws -> MediaStatistics { try await mediaMetadata.mediaStatistics() }
}
