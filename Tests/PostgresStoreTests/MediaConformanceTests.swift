import Foundation
import GatewayCore
import Logging
import PostgresStore
import SQLiteStore
import Testing

/// The `MediaMetadataStore` contract, the same test on the embedded SQLite store and on
/// PostgreSQL (the SQLite-only copy of it went: this runs it on SQLite too).
@Suite("Media metadata conformance (SQLite and PostgreSQL)", .timeLimit(.minutes(2)))
struct MediaConformanceTests {
    static func record(_ id: String, uploader: String = "alice", size: Int64 = 100, original: String? = nil) -> MediaRecord {
        MediaRecord(
            id: id, uploader: uploader, contentType: "image/png", name: "a.png", size: size, storedSize: size / 2, compression: .zstd,
            sha256: String(repeating: "a", count: 64), blobKey: String(repeating: "a", count: 64) + ".zst", width: 10, height: 20,
            thumbnailID: original == nil ? "m" + String(repeating: "1", count: 32) : nil, originalID: original, createdAt: 1234)
    }

    /// A record without any of the optional fields.
    func minimalRecord(_ id: String) -> MediaRecord {
        MediaRecord(
            id: id, uploader: "bob", contentType: "application/octet-stream", size: 7, storedSize: 7, compression: .none,
            sha256: String(repeating: "b", count: 64), blobKey: String(repeating: "b", count: 64), createdAt: 99)
    }

    /// Opens the media store of `backend` at `location` (a SQLite path or a PostgreSQL URL).
    static func open(_ backend: Backend, _ location: String) async throws -> any MediaMetadataStore & MessageStore {
        switch backend {
        case .sqlite: try EmbeddedStore(path: location, durability: .full)
        case .postgres: try await openPostgres(location)
        }
    }

    @Test("records, conversations, quota sums and totals survive a reopen; a second id is a conflict", arguments: Backend.allCases)
    func roundTrip(backend: Backend) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("media-conformance-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let location = backend == .sqlite ? directory + "/chat.db" : try freshPostgresURL()
        let id = "m" + String(repeating: "0", count: 32)
        let thumb = "m" + String(repeating: "1", count: 32)
        let other = "m" + String(repeating: "3", count: 32)
        do {
            let store = try await Self.open(backend, location)
            try await store.insertMedia(Self.record(thumb, size: 10, original: id))
            try await store.insertMedia(Self.record(id))
            let conflict = await #expect(throws: GatewayError.self) { try await store.insertMedia(Self.record(id)) }
            #expect(conflict?.code == .conflict)
            try await store.insertMedia(minimalRecord(other))
            try await store.recordMediaSent([id, "m" + String(repeating: "f", count: 32)], conversation: "u:alice|bob")
            try await store.recordMediaSent([id], conversation: "u:alice|bob")
            try await store.recordMediaSent([id], conversation: "g:team")
            try await store.recordMediaSent([], conversation: "g:team")
            try await store.close()
        }
        let store = try await Self.open(backend, location)
        #expect(try await store.media(id) == Self.record(id))
        #expect(try await store.media(thumb)?.originalID == id)
        #expect(try await store.media(other) == minimalRecord(other))
        #expect(try await store.media("m" + String(repeating: "2", count: 32)) == nil)
        #expect(Set(try await store.mediaConversations(id)) == ["u:alice|bob", "g:team"])
        #expect(try await store.mediaConversations("m" + String(repeating: "f", count: 32)).isEmpty)
        #expect(try await store.mediaBytes(uploadedBy: "alice") == 100)
        #expect(try await store.mediaBytes(uploadedBy: "bob") == 7)
        #expect(try await store.mediaBytes(uploadedBy: "carol") == 0)
        #expect(try await store.mediaStatistics() == MediaStatistics(uploads: 2, bytesIn: 107, bytesStored: 57))
        try await store.close()
    }
}
