import Foundation
import GatewayCore
import GatewayTesting
import Logging
import PostgresStore
import SQLiteStore
import Testing

/// The store backends the conformance suite runs on: every test of `StoreConformanceTests`
/// runs once per backend, with the same expectations.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }
}

typealias AnyStore = any MessageStore & GroupStore & ReceiptStore

/// A fresh, empty PostgreSQL database of the test process's private server, or a cancelled
/// (skipped) test with the reason when PostgreSQL is not installed.
func freshPostgresURL() throws -> String {
    guard let server = try PostgresTestServer.shared() else {
        try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
    }
    return try server.createDatabase()
}

/// Opens a `PostgresStore` on `url`.
///
/// Operations may take 30 s here, not the default 5: with every suite running at once on two
/// cores, the shared server's start and other tests' `createDatabase` can hold the cooperative
/// pool long enough for a 5 s timer to win a race the answer already won.
func openPostgres(_ url: String, poolSize: Int = 4, durability: StoreSettings.Durability = .full) async throws -> PostgresStore {
    var configuration = try PostgresStoreConfiguration(url: url, poolSize: poolSize, durability: durability)
    configuration.requestTimeout = .seconds(30)
    return try await PostgresStore.open(configuration, logger: Logger(label: "test.store"))
}

/// Runs `body` with a fresh store of `backend` (a new SQLite file, or a new PostgreSQL
/// database), closed after.
func withStore(_ backend: Backend, _ body: (AnyStore) async throws -> Void) async throws {
    let store: AnyStore
    var directory: String?
    switch backend {
    case .sqlite:
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("conformance-\(UUID().uuidString)").path
        directory = path
        store = try EmbeddedStore(path: path + "/chat.db", durability: .full)
    case .postgres:
        store = try await openPostgres(try freshPostgresURL())
    }
    defer { if let directory { try? FileManager.default.removeItem(atPath: directory) } }
    do {
        try await body(store)
    } catch {
        try? await store.close()
        throw error
    }
    try await store.close()
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

extension MessageStore {
    /// Every entry of `user`'s inbox.
    func allEntries(of user: String) async throws -> [InboxEntry] {
        try await inbox(user: user, after: 0, limit: Int.max).entries
    }
}
