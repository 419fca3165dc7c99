import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayTesting
import Synchronization
import Testing

/// PostgreSQL stopped (immediate: like a crash) and started again under a gateway's traffic:
/// sends are answered `unavailable` while it is down (never acked and lost), the same gateway
/// process recovers by itself, clients resend, and every acked message is stored exactly once.
@Suite("PostgreSQL restarted under a gateway's traffic", .serialized, .timeLimit(.minutes(5)))
struct PostgresOutageTests {
    static let users = ["u0", "u1", "u2", "u3"]

    static func config(directory: URL, url: String) throws -> String {
        let path = directory.appendingPathComponent("config.yaml").path
        try """
            node: { id: outage-node, worker_id: auto }
            listen:
              public: { host: 127.0.0.1, port: 0 }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            store: { kind: postgres, url: "\(url)", pool_size: 4, durability: full }
            media: { dir: "\(directory.path)/media", shared_dir: true }
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(DurabilityTests.secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Sends 1:1 messages to the next user, `window` unacked at a time, until `stop` is set
    /// (then waits for the answers of what is in flight). Every attempt and answer goes to `log`.
    static func sendUntilStopped(port: Int, user: String, peer: String, window: Int, stop: StopFlag, log: DurabilityChecker) async {
        guard let token = try? await DurabilityTests.token(user),
            let (stream, status, _) = try? await WebSocketStream.connect(port: port, headers: [("Authorization", "Bearer \(token)")]),
            status == 101
        else { return }
        var next = 0
        var outstanding = 0
        while !stop.isSet || outstanding > 0 {
            while outstanding < window, !stop.isSet {
                let id = "\(user)-\(next)"
                log.sent(sender: user, clientMsgID: id, to: .user(peer), recipients: [user, peer])
                stream.send(sendFrame(to: .user(peer), body: ["n": .string(id)], id: id, ref: id))
                next += 1
                outstanding += 1
            }
            guard let event = try? await stream.next(timeout: 15) else { break }
            guard case .text(let text) = event else {
                if case .close = event { break }
                if case .disconnected = event { break }
                continue
            }
            guard let frame = (try? JSONParser.parse(text))?.objectValue else { continue }
            if frame["type"]?.stringValue == "ack", let cid = frame["client_msg_id"]?.stringValue, let mid = frame["id"]?.stringValue {
                log.acked(sender: user, clientMsgID: cid, id: mid)
                outstanding -= 1
            } else if frame["type"]?.stringValue == "error", let cid = frame["client_msg_id"]?.stringValue ?? frame["ref"]?.stringValue {
                log.failed(sender: user, clientMsgID: cid, code: frame["code"]?.stringValue ?? "?")
                outstanding -= 1
            }
        }
        stream.close()
    }

    /// Error codes the log holds, counted.
    static func failureCodes(_ log: DurabilityChecker) -> [String: Int] {
        var codes: [String: Int] = [:]
        for operation in log.operations {
            for outcome in operation.outcomes {
                if case .error(let code) = outcome { codes[code, default: 0] += 1 }
            }
        }
        return codes
    }

    /// Waits (bounded by `seconds`) until `condition` holds; whether it did.
    static func waitUntil(seconds: Double, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition()
    }

    @Test func sendsAreRefusedWhileDownThenTheSameGatewayRecoversAndNothingAckedIsLost() async throws {
        guard let database = try PostgresTestServer.makePrivate() else {
            try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-pg-outage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer {
            try? database.stop()
            try? FileManager.default.removeItem(at: directory)
        }
        let configPath = try Self.config(directory: directory, url: try database.createDatabase())
        let gateway = try await ChildGateway.start(configPath: configPath)
        do {
            try await run(gateway: gateway, database: database)
        } catch {
            await gateway.kill9()
            throw error
        }
        let status = await gateway.terminate()
        #expect(status == 0, "graceful shutdown after SIGTERM: \(gateway.output.suffix(500))")
    }

    private func run(gateway: ChildGateway, database: PostgresTestServer) async throws {
        let log = DurabilityChecker()
        let stop = StopFlag()
        let port = gateway.publicPort
        let users = Self.users
        // What the watcher saw: sends refused while down, acks before the restart, recovery.
        typealias Milestones = (refusedWhileDown: Int, ackedBeforeRestart: Int, restarted: Bool, recovered: Bool)
        let milestones: Milestones? = await withTaskGroup(of: Milestones?.self) { group in
            for (index, user) in users.enumerated() {
                let peer = users[(index + 1) % users.count]
                group.addTask {
                    await Self.sendUntilStopped(port: port, user: user, peer: peer, window: 4, stop: stop, log: log)
                    return nil
                }
            }
            group.addTask {
                defer { stop.set() }
                guard await Self.waitUntil(seconds: 20, { log.ackedCount >= 100 }) else { return nil }
                // Down, like a crash: sends in flight and new ones are refused.
                try? database.stop(mode: "immediate")
                let refused = await Self.waitUntil(seconds: 20) { Self.failureCodes(log)["unavailable", default: 0] >= users.count }
                let ackedBefore = log.ackedCount
                // Crash recovery first (slow on a loaded machine); the gateway's clock starts when
                // PostgreSQL accepts connections again.
                let restarted = (try? database.start(timeoutSeconds: 150)) != nil
                // The same process takes sends again by itself.
                var recovered = false
                if restarted { recovered = await Self.waitUntil(seconds: 60) { log.ackedCount >= ackedBefore + 200 } }
                return (refused ? Self.failureCodes(log)["unavailable", default: 0] : 0, ackedBefore, restarted, recovered)
            }
            var seen: Milestones?
            for await result in group { if let result { seen = result } }
            return seen
        }
        let (refusedWhileDown, ackedBeforeRestart, restarted, recovered) = try #require(milestones, "traffic flowed before the outage")
        try #require(restarted, "PostgreSQL came back from its crash recovery: \(database.logTail())")
        #expect(ackedBeforeRestart >= 100, "traffic flowed before the outage")
        #expect(refusedWhileDown >= users.count, "sends were answered unavailable while PostgreSQL was down")
        #expect(recovered, "the gateway took sends again after PostgreSQL came back, without a restart")
        let codes = Self.failureCodes(log)
        #expect(Set(codes.keys).isSubset(of: ["unavailable"]), "the only refusal is unavailable: \(codes)")

        // Every client resends what has no ack (same client_msg_id), as after any refusal.
        await withTaskGroup(of: Void.self) { group in
            for (index, user) in users.enumerated() {
                let peer = users[(index + 1) % users.count]
                group.addTask {
                    await DurabilityTests.resend(
                        port: port, user: user, plan: [], groupMembers: [user, peer], window: 8, log: log)
                }
            }
        }
        let attempted = log.operations.count
        #expect(log.ackedCount == attempted, "every send acked in the end (\(log.ackedCount) of \(attempted))")
        var inboxes: [String: [JSONObject]] = [:]
        for user in users { inboxes[user] = try await DurabilityTests.inbox(http: HTTPClient.shared, port: port, user: user) }
        let report = log.verify(inboxes: inboxes)
        #expect(report.counts.isClean, "\(report)")
        #expect(report.storedMessages == attempted)
    }
}

/// A flag set once, read from any task.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}
