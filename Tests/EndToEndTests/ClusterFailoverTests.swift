import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayTesting
import Testing

@testable import chatgate

/// Two real `chatgate` processes on one PostgreSQL database; node A is killed with SIGKILL
/// under traffic. Its clients find node B through `/v1/discover`, resend what has no ack and
/// sync; every acked message is stored exactly once; A's worker id is not given to another
/// node while A's lease lives; A's users go offline for watchers on B once the lease ran out.
@Suite("Cluster: kill -9 of a node under traffic", .serialized, .timeLimit(.minutes(2)))
struct ClusterFailoverTests {
    /// A node's config. offline_after_ms 600000: the watcher on B only listens (test clients
    /// send no heartbeats), and must not be closed for silence on a slow run.
    static func config(directory: URL, node: String, url: String) throws -> String {
        let path = directory.appendingPathComponent("\(node).yaml").path
        let yaml = """
            node: { id: \(node), worker_id: auto, lease_ms: 6000 }
            listen:
              public: { host: 127.0.0.1, port: 0 }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            store: { kind: postgres, url: "\(url)", pool_size: 6, durability: full, timeout_ms: 30000 }
            media: { dir: "\(directory.path)/media", shared_dir: true }
            presence: { grace_ms: 0, visibility: everyone, offline_after_ms: 600000 }
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(DurabilityTests.secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Asks `/v1/discover` at `port` until it names a node whose WebSocket URL is not on
    /// `deadPort`, with jittered backoff as a client does; returns that node's port.
    static func discover(via port: Int, avoiding deadPort: Int) async throws -> Int {
        for attempt in 0..<60 {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/discover")
            request.method = .GET
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            var body = try await response.body.collect(upTo: 1 << 16)
            let json = try JSONParser.parse(body.readString(length: body.readableBytes) ?? "").objectValue
            if let ws = json?["ws_url"]?.stringValue, let found = Int(ws.split(separator: ":").last?.split(separator: "/").first ?? ""),
                found != deadPort
            {
                return found
            }
            try await Task.sleep(for: .milliseconds(100 + Int.random(in: 0...100) + 20 * attempt))
        }
        throw ChildGateway.ChildError(description: "discover kept naming the dead node")
    }

    /// The status of a zero-timeout long-poll on the node at `port`.
    static func poll(port: Int, session: String, token: String) async throws -> Int {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/lp/poll?session=\(session)&timeout_ms=0")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(20))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    @Test func killNineOfANodeUnderTrafficLosesNoAckedMessage() async throws {
        guard let server = try PostgresTestServer.shared() else {
            try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
        }
        let url = try server.createDatabase()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let nodeA = try await ChildGateway.start(configPath: try Self.config(directory: directory, node: "node-a", url: url))
        var nodeB: ChildGateway?
        do {
            nodeB = try await ChildGateway.start(configPath: try Self.config(directory: directory, node: "node-b", url: url))
        } catch {
            await nodeA.kill9()
            throw error
        }
        let b = try #require(nodeB)
        // No child left running, however the test ends (an #expect failure does not throw).
        do {
            try await Self.killAUnderTraffic(nodeA: nodeA, b: b, url: url)
        } catch {
            await nodeA.kill9()
            await b.kill9()
            throw error
        }
    }

    static func killAUnderTraffic(nodeA: ChildGateway, b: ChildGateway, url: String) async throws {
        let users = ["u0", "u1", "u2", "u3"]
        let onA: Set = ["u0", "u1"]
        var create = HTTPClientRequest(url: "http://127.0.0.1:\(b.publicPort)/v1/groups")
        create.method = .POST
        create.headers.add(name: "Authorization", value: "Bearer \(try await DurabilityTests.token("u0"))")
        create.body = .bytes(.init(string: "{\"id\":\"g_all\",\"name\":\"all\",\"members\":[\"u1\",\"u2\",\"u3\"]}"))
        #expect(try await HTTPClient.shared.execute(create, timeout: .seconds(10)).status.code == 201)

        // A watcher on B follows u0, who is connected to A only.
        let watcherToken = try await DurabilityTests.token("watcher")
        let (watcher, status, _) = try await WebSocketStream.connect(port: b.publicPort, headers: [("Authorization", "Bearer \(watcherToken)")])
        #expect(status == 101)
        _ = try await watcher.nextFrame()  // hello
        watcher.send(.object(["type": "presence.subscribe", "users": .array([.string("u0")]), "ref": "w"]))

        // A long-poll session held by A, polled through B.
        let lpToken = try await DurabilityTests.token("lpuser")
        var open = HTTPClientRequest(url: "http://127.0.0.1:\(nodeA.publicPort)/v1/lp/open")
        open.method = .POST
        open.headers.add(name: "Authorization", value: "Bearer \(lpToken)")
        let opened = try await HTTPClient.shared.execute(open, timeout: .seconds(10))
        var openedBody = try await opened.body.collect(upTo: 1 << 16)
        let lpSession = try #require(
            try JSONParser.parse(openedBody.readString(length: openedBody.readableBytes) ?? "").objectValue?["session"]?.stringValue)
        #expect(try await Self.poll(port: b.publicPort, session: lpSession, token: lpToken) == 200, "relayed to A")

        // u0, u1 on A; u2, u3 on B: 200 messages each, alternating 1:1 (next user) and the group.
        var planned: [String: [(String, Address)]] = [:]
        for (index, user) in users.enumerated() {
            let peer = users[(index + 1) % users.count]
            planned[user] = (0..<200).map { n in ("\(user)-\(n)", n % 2 == 0 ? Address.user(peer) : Address.group("g_all")) }
        }
        let plans = planned
        let log = DurabilityChecker()
        let killAfter = Int.random(in: 150...400)
        let (portA, portB) = (nodeA.publicPort, b.publicPort)
        // Killed inside the ack that reaches killAfter, not by a task woken later (which, on a
        // busy machine, could run after every message was acked).
        log.whenAcked(killAfter) { nodeA.killNow() }
        await withTaskGroup(of: Void.self) { group in
            for user in users {
                group.addTask {
                    await DurabilityTests.pump(
                        port: onA.contains(user) ? portA : portB, user: user, messages: plans[user]!, groupMembers: Set(users), window: 8, log: log)
                }
            }
            group.addTask {
                _ = await log.waitForAcks(killAfter)
                await nodeA.kill9()
                // A's worker id, from the id of a message A acked.
                var workerA: Int?
                for operation in log.operations where onA.contains(operation.sender) {
                    if let id = operation.ackedIDs.first.flatMap(UInt64.init) {
                        workerA = Int((id >> 12) & 0x3ff)
                        break
                    }
                }
                guard let killedWorker = workerA else {
                    Issue.record("no message acked by node A")
                    return
                }
                // While A's lease lives (renewed at most 2 s before the kill, for 6 s: at least
                // 4 s for the start below on a loaded machine), its worker id goes to nobody.
                let conflict = await #expect(throws: GatewayError.self) {
                    let c = try await TestGateway.start(
                        extra: "node: { id: node-c, worker_id: \(killedWorker), lease_ms: 6000 }\nstore: { kind: postgres, url: \"\(url)\", pool_size: 2, timeout_ms: 30000 }")
                    await c.stop()
                }
                #expect(conflict?.code == .conflict)
                // A's lease lives, A does not answer: B says to retry.
                #expect((try? await Self.poll(port: portB, session: lpSession, token: lpToken)) == 503)
            }
        }
        #expect(log.ackedCount < 800, "the kill came after everything was acked; nothing was tested")

        // u0 was live on A only: once A's lease ran out, B's watcher hears u0 went offline.
        var seenOnline = false
        var offline = false
        while !offline {
            let frame = try await watcher.nextFrame(timeout: 15)
            guard frame["type"]?.stringValue == "presence" else { continue }
            for entry in (frame["users"]?.arrayValue ?? []).compactMap(\.objectValue) where entry["user"]?.stringValue == "u0" {
                if entry["status"]?.stringValue == "online" { seenOnline = true }
                if entry["status"]?.stringValue == "offline", seenOnline { offline = true }
            }
        }
        #expect(offline)

        // A's lease ran out: its long-poll session moves to B, under the same id
        // (ClusterLongPollFailoverTests checks what it delivers).
        #expect(try await Self.poll(port: portB, session: lpSession, token: lpToken) == 200)

        // A's clients: discover (through B, the node their load balancer now reaches) names B
        // once A's lease ran out; they resend what has no ack and sync there.
        let newPort = try await Self.discover(via: portB, avoiding: portA)
        #expect(newPort == portB)
        await withTaskGroup(of: Void.self) { group in
            for user in users {
                group.addTask {
                    await DurabilityTests.resend(port: portB, user: user, plan: plans[user]!, groupMembers: Set(users), window: 8, log: log)
                }
            }
        }
        #expect(log.ackedCount == 800)
        var inboxes: [String: [JSONObject]] = [:]
        for user in users { inboxes[user] = try await DurabilityTests.inbox(http: HTTPClient.shared, port: portB, user: user) }
        let report = log.verify(inboxes: inboxes)
        // Nothing lost, duplicated, torn or out of seq, and every inbox in id order: a batch
        // that would put a smaller id after another node's larger one is refused by the store
        // and re-stamped by its committer (docs/SCALING.md).
        #expect(report.counts.order == 0, "\(report)")
        #expect(report.counts.isClean, "\(report)")
        #expect(report.storedMessages == 800)

        watcher.close()
        let exit = await b.terminate()
        #expect(exit == 0, "graceful shutdown after SIGTERM: \(b.output.suffix(500))")
    }
}
