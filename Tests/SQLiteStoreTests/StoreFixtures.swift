import Foundation
import GatewayCore
@testable import SQLiteStore

/// Runs `body` with a fresh directory under the system's temporary directory, removed after.
func withTemporaryDirectory(_ body: (String) async throws -> Void) async throws {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("sqlitestore-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try await body(directory)
}

/// Runs `body` with a store on a fresh file, closed and removed after.
func withStore(
    durability: StoreSettings.Durability = .full,
    _ body: (EmbeddedStore, String) async throws -> Void
) async throws {
    try await withTemporaryDirectory { directory in
        let path = directory + "/chat.db"
        let store = try EmbeddedStore(path: path, durability: durability)
        do {
            try await body(store, path)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }
}

/// A message from `from` to `to` whose `client_msg_id` defaults to `c<id>`.
func message(
    _ id: UInt64, from: String, to: Address, clientMsgID: String? = nil,
    body: String = #"{"text":"hi"}"#, attachments: String? = nil
) -> StoredMessage {
    StoredMessage(
        id: id, from: from, to: to, timestamp: 1_700_000_000_000 + Int64(id % 1_000_000), clientMsgID: clientMsgID ?? "c\(id)",
        body: Array(body.utf8), attachments: attachments.map { Array($0.utf8) })
}

/// A 1:1 message going to the sender's and the peer's inboxes (one inbox when they are the same).
func direct(_ id: UInt64, from: String, to peer: String, clientMsgID: String? = nil) -> PendingMessage {
    PendingMessage(
        message: message(id, from: from, to: .user(peer), clientMsgID: clientMsgID),
        inboxes: from == peer ? [from] : [from, peer])
}

extension CommitOutcome {
    var storedSeqs: [InboxSeq]? {
        if case .stored(_, let seqs) = self { seqs } else { nil }
    }

    var duplicate: (message: StoredMessage, senderSeq: Int64)? {
        if case .duplicate(let message, let senderSeq) = self { (message, senderSeq) } else { nil }
    }
}

extension EmbeddedStore {
    /// Every entry of `user`'s inbox.
    func allEntries(of user: String) async throws -> [InboxEntry] {
        try await inbox(user: user, after: 0, limit: Int.max).entries
    }
}
