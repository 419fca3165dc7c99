import Foundation
import GatewayCore
import GatewayTesting
import Logging
import PostgresStore
import SQLiteStore
import Testing
@testable import StagePush

/// A push stage built by its factory over a store (in memory, or a real SQLite file), with a
/// test clock and presence, and helpers that commit messages as the gateway does.
struct PushFixture {
    let harness: StageHarness
    let stage: PushStage
    let stores: Stores
    let directory: String?

    /// `settings` is the stage's settings block as JSON; `sqlite` puts the store in a file.
    static func make(settings: String, sqlite: Bool = false, on: Set<FrameKind> = [.send, .read, .delivered]) throws -> PushFixture {
        let harness = StageHarness()
        var directory: String?
        let stores: Stores
        if sqlite {
            let dir = NSTemporaryDirectory() + "push-store-" + UUID().uuidString
            directory = dir
            let store = try EmbeddedStore(path: dir + "/chat.db", durability: .relaxed)
            stores = Stores(store)
        } else {
            stores = harness.stores
        }
        return try make(settings: settings, harness: harness, stores: stores, directory: directory, on: on)
    }

    /// The fixture on `backend`'s store: in memory, a SQLite file, or a fresh database of the
    /// test process's PostgreSQL server (the test is skipped when PostgreSQL is not installed).
    static func make(settings: String, backend: PushBackend, on: Set<FrameKind> = [.send, .read, .delivered]) async throws -> PushFixture {
        switch backend {
        case .memory: return try make(settings: settings, sqlite: false, on: on)
        case .sqlite: return try make(settings: settings, sqlite: true, on: on)
        case .postgres:
            guard let server = try PostgresTestServer.shared() else {
                try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
            }
            // 30 s per operation, as openPostgres in PostgresStoreTests: on a loaded 2-core
            // machine the default 5 s can pass before an answer that is on its way.
            var configuration = try PostgresStoreConfiguration(url: try server.createDatabase(), poolSize: 4, durability: .relaxed)
            configuration.requestTimeout = .seconds(30)
            let store = try await PostgresStore.open(configuration, logger: Logger(label: "test.push"))
            do {
                return try make(settings: settings, harness: StageHarness(), stores: Stores(store), directory: nil, on: on)
            } catch {
                try? await store.close()
                throw error
            }
        }
    }

    private static func make(settings: String, harness: StageHarness, stores: Stores, directory: String?, on: Set<FrameKind>) throws -> PushFixture {
        let context = StageBuildContext(
            name: "push", kind: "push", settings: try StageSettings.source(settings), on: on, logger: harness.logger, clock: harness.clock,
            stores: stores, node: harness.node)
        let stage = try #require(try PushStage.factory.make(context).stage as? PushStage)
        return PushFixture(harness: harness, stage: stage, stores: stores, directory: directory)
    }

    var clock: TestClock { harness.clock }
    var devices: any DeviceStore { stores.devices! }
    var queue: any PushQueue { stores.pushQueue! }

    var context: StageContext {
        StageContext(name: "push", logger: harness.logger, clock: harness.clock, stores: stores, presence: harness.presence)
    }

    /// Registers a target as `POST /v1/devices` would.
    @discardableResult
    func register(_ user: String, _ body: JSONValue, allowHTTP: Bool = true) async throws -> PushTarget {
        let registration = try PushRegistration.parse(body, allowHTTP: allowHTTP)
        let target = PushTarget(
            id: "pt_\(user)_\(UUID().uuidString.prefix(8))", user: user, device: registration.device ?? "d1", platform: registration.platform,
            address: registration.address, fields: registration.fields, createdAt: clock.nowMillis())
        return try await devices.registerTarget(target, maxPerUser: 10).target
    }

    /// Commits a message through the store and runs the stage's `committed` hook as the gateway does.
    @discardableResult
    func send(_ text: String, from: String = "alice", to: Address = .user("bob"), id: UInt64) async throws -> StoredMessage {
        let recipients: [String]
        switch to {
        case .user(let peer): recipients = [from, peer]
        case .group(let group): recipients = try await stores.groups.members(of: group) ?? [from]
        }
        let message = StoredMessage(
            id: id, from: from, to: to, timestamp: clock.nowMillis(), clientMsgID: "c\(id)", body: JSONValue.string(text).jsonBytes)
        let outcomes = try await stores.messages.commit([PendingMessage(message: message, inboxes: recipients)])
        var envelope = harness.send(.string(text), from: from, to: to, clientMsgID: "c\(id)")
        envelope.id = id
        envelope.recipients = recipients
        await stage.committed(envelope, outcome: outcomes[0], context: context)
        return message
    }

    /// Runs a `delivered` frame of `user` through the stage.
    func delivered(_ user: String, seq: Int64) async throws {
        var envelope = Envelope(
            kind: .delivered, sender: harness.principal(user), ref: nil, frame: ["type": "delivered", "seq": .int(seq)], timestamp: clock.nowMillis())
        _ = try await stage.process(&envelope, context: context)
    }

    /// Runs a `read` frame of `user` through the stage.
    func read(_ user: String, with: Address, upTo: UInt64) async throws {
        var envelope = Envelope(
            kind: .read, sender: harness.principal(user), ref: nil,
            frame: ["type": "read", "with": with.json, "up_to": .string(String(upTo))], to: with, timestamp: clock.nowMillis())
        _ = try await stage.process(&envelope, context: context)
    }

    func close() async {
        try? await stores.messages.close()
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }
}

/// The stores a push test runs on: the same test on each.
enum PushBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case sqlite
    case postgres

    var testDescription: String { rawValue }
    /// The backends that keep the queue in a database.
    static let durable: [PushBackend] = [.sqlite, .postgres]
}

/// Settings JSON with a webhook provider, short timeouts and the given extras.
func webhookSettings(secret: String? = "s3cret", timeoutMs: Int = 5000, extra: String = "") -> String {
    let provider = secret.map { #"{"secret": "\#($0)"}"# } ?? "{}"
    return #"{"providers": {"webhook": \#(provider)}, "allow_http": true, "timeout_ms": \#(timeoutMs)\#(extra.isEmpty ? "" : ", " + extra)}"#
}
