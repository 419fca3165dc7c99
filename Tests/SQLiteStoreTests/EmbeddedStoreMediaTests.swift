import Foundation
import GatewayCore
import Testing

@testable import SQLiteStore

@Suite("Media metadata in SQLite")
struct EmbeddedStoreMediaTests {
    static func record(_ id: String, uploader: String = "alice", size: Int64 = 100, original: String? = nil) -> MediaRecord {
        MediaRecord(
            id: id, uploader: uploader, contentType: "image/png", name: "a.png", size: size, storedSize: size / 2, compression: .zstd,
            sha256: String(repeating: "a", count: 64), blobKey: String(repeating: "a", count: 64) + ".zst", width: 10, height: 20,
            thumbnailID: original == nil ? "m" + String(repeating: "1", count: 32) : nil, originalID: original, createdAt: 1234)
    }

    @Test("records, conversations, quota sums and totals survive a reopen; a second id is a conflict")
    func roundTrip() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/chat.db"
            let id = "m" + String(repeating: "0", count: 32)
            let thumb = "m" + String(repeating: "1", count: 32)
            do {
                let store = try EmbeddedStore(path: path, durability: .full)
                try await store.insertMedia(Self.record(thumb, size: 10, original: id))
                try await store.insertMedia(Self.record(id))
                await #expect(throws: GatewayError.self) { try await store.insertMedia(Self.record(id)) }
                try await store.recordMediaSent([id, "m" + String(repeating: "f", count: 32)], conversation: "u:alice|bob")
                try await store.recordMediaSent([id], conversation: "u:alice|bob")
                try await store.recordMediaSent([id], conversation: "g:team")
                try await store.close()
            }
            let store = try EmbeddedStore(path: path, durability: .full)
            #expect(try await store.media(id) == Self.record(id))
            #expect(try await store.media(thumb)?.originalID == id)
            #expect(try await store.media("m" + String(repeating: "2", count: 32)) == nil)
            #expect(Set(try await store.mediaConversations(id)) == ["u:alice|bob", "g:team"])
            #expect(try await store.mediaBytes(uploadedBy: "alice") == 100)
            #expect(try await store.mediaBytes(uploadedBy: "bob") == 0)
            #expect(try await store.mediaStatistics() == MediaStatistics(uploads: 1, bytesIn: 100, bytesStored: 50))
            try await store.close()
        }
    }
}
