import AsyncHTTPClient
import GatewayTesting
import Foundation
import GatewayCore
import GatewayTesting
import StageAuth
import Testing

/// RELIABILITY.md "Durability and delivery": `kill -9` of the real executable mid-stream.
@Suite("Durability across kill -9", .serialized)
struct DurabilityTests {
    static let secret = "durability-secret-0123456789-0123456789"

    static func config(directory: URL, backend: StoreBackend = .sqlite) throws -> String {
        let storeLine = try backend.storeLine(directory: directory, durability: "full")
        let path = directory.appendingPathComponent("config.yaml").path
        let yaml = """
            node: { id: dur-node, worker_id: 3 }
            listen:
              public: { host: 127.0.0.1, port: 0 }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            \(storeLine)
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func token(_ user: String) async throws -> String {
        try await AuthStageFactory.mintHS256(secret: secret, user: user, ttlSeconds: 3600, now: SystemClock().nowMillis(), issuer: nil, audience: nil)
    }

    /// Sends `messages` with up to `window` unacked, until done or the connection drops; every
    /// attempt and answer goes to `log`, with the users who must hold it (sender and peer, or
    /// `groupMembers`). The `ref` is the `client_msg_id`, so an `error` names its send.
    static func pump(port: Int, user: String, messages: [(String, Address)], groupMembers: Set<String>, window: Int, log: DurabilityChecker) async {
        guard let token = try? await token(user),
            let (stream, status, _) = try? await WebSocketStream.connect(port: port, headers: [("Authorization", "Bearer \(token)")]),
            status == 101
        else { return }
        var next = 0
        var outstanding = 0
        while next < messages.count || outstanding > 0 {
            while outstanding < window, next < messages.count {
                let (id, to) = messages[next]
                let recipients: Set<String> =
                    switch to {
                    case .user(let peer): [user, peer]
                    case .group: groupMembers
                    }
                log.sent(sender: user, clientMsgID: id, to: to, recipients: recipients)
                stream.send(sendFrame(to: to, body: ["n": .string(id)], id: id, ref: id))
                next += 1
                outstanding += 1
            }
            guard let event = try? await stream.next(timeout: 15) else { return }
            switch event {
            case .text(let text):
                guard let frame = (try? JSONParser.parse(text))?.objectValue else { continue }
                if frame["type"]?.stringValue == "ack", let cid = frame["client_msg_id"]?.stringValue, let mid = frame["id"]?.stringValue {
                    log.acked(sender: user, clientMsgID: cid, id: mid)
                    outstanding -= 1
                } else if frame["type"]?.stringValue == "error" {
                    if let cid = frame["client_msg_id"]?.stringValue ?? frame["ref"]?.stringValue {
                        log.failed(sender: user, clientMsgID: cid, code: frame["code"]?.stringValue ?? "?")
                    }
                    outstanding -= 1
                }
            case .close, .disconnected:
                return
            default:
                continue
            }
        }
        stream.close()
    }

    /// Resends, as a client does after a restart, everything of `plan` without an ack (same
    /// `client_msg_id`), again while sends are refused as `unavailable` (a node that has just
    /// started may refuse for a moment: on PostgreSQL while its lease settles), at most 5 rounds.
    static func resend(port: Int, user: String, plan: [(String, Address)], groupMembers: Set<String>, window: Int, log: DurabilityChecker) async {
        for round in 0..<5 {
            let remaining = Self.remaining(log, user: user, plan: plan)
            if remaining.isEmpty { return }
            if round > 0 { try? await Task.sleep(for: .milliseconds(200 * round)) }  // backoff, as a client's
            await pump(port: port, user: user, messages: remaining, groupMembers: groupMembers, window: window, log: log)
        }
    }

    /// What `user` resends after a restart: every attempt without an ack, then what it never sent.
    static func remaining(_ log: DurabilityChecker, user: String, plan: [(String, Address)]) -> [(String, Address)] {
        let sent = Set(log.operations.filter { $0.sender == user }.map(\.clientMsgID))
        return log.unacked(sender: user).map { ($0.clientMsgID, $0.conversation) } + plan.filter { !sent.contains($0.0) }
    }

    static func inbox(http: HTTPClient, port: Int, user: String) async throws -> [JSONObject] {
        var since: Int64 = 0
        var all: [JSONObject] = []
        let token = try await token(user)
        while true {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/sync?since=\(since)&limit=1000")
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
            let response = try await http.execute(request, timeout: .seconds(30))
            var body = try await response.body.collect(upTo: 64 << 20)
            let json = try #require(try JSONParser.parse(body.readString(length: body.readableBytes) ?? "").objectValue)
            let messages = (json["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
            all += messages
            since = json["next"]?.int64Value ?? since
            if json["more"] != true { return all }
        }
    }

    @Test(arguments: StoreBackend.allCases) func killNineMidStreamLosesNoAckedMessage(backend: StoreBackend) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-dur-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configPath = try Self.config(directory: directory, backend: backend)
        let users = ["u0", "u1", "u2", "u3"]
        var server = try await ChildGateway.start(configPath: configPath)
        // No gateway left running when the test throws (`server` is the one running then).
        defer { server.killNow() }

        // One group with every user, created through the REST API.
        var create = HTTPClientRequest(url: "http://127.0.0.1:\(server.publicPort)/v1/groups")
        create.method = .POST
        create.headers.add(name: "Authorization", value: "Bearer \(try await Self.token("u0"))")
        create.body = .bytes(.init(string: "{\"id\":\"g_all\",\"name\":\"all\",\"members\":[\"u1\",\"u2\",\"u3\"]}"))
        #expect(try await HTTPClient.shared.execute(create, timeout: .seconds(10)).status.code == 201)

        // 2,000 messages: each user 500, alternating 1:1 (to the next user) and the group.
        var planned: [String: [(String, Address)]] = [:]
        for (index, user) in users.enumerated() {
            let peer = users[(index + 1) % users.count]
            planned[user] = (0..<500).map { n in ("\(user)-\(n)", n % 2 == 0 ? Address.user(peer) : Address.group("g_all")) }
        }
        let plans = planned
        let log = DurabilityChecker()
        let killAfter = Int.random(in: 300...1200)
        let port = server.publicPort
        let firstServer = server
        // Killed inside the ack that reaches killAfter, not by a task woken later.
        log.whenAcked(killAfter) { firstServer.killNow() }
        await withTaskGroup(of: Void.self) { group in
            for user in users {
                group.addTask { await Self.pump(port: port, user: user, messages: plans[user]!, groupMembers: Set(users), window: 16, log: log) }
            }
            group.addTask {
                // Kill at a random moment mid-stream (the kill lands mid-stream).
                _ = await log.waitForAcks(killAfter)
                await firstServer.kill9()
            }
        }
        let ackedBefore = log.ackedCount
        #expect(ackedBefore >= killAfter)
        #expect(ackedBefore < 2000, "the kill came after everything was acked; nothing was tested")

        // Restart on the same file; every sender resends what it has no ack for, then the rest.
        server = try await ChildGateway.start(configPath: configPath)
        let restartPort = server.publicPort
        await withTaskGroup(of: Void.self) { group in
            for user in users {
                group.addTask {
                    await Self.resend(port: restartPort, user: user, plan: plans[user]!, groupMembers: Set(users), window: 16, log: log)
                }
            }
        }
        #expect(log.ackedCount == 2000)

        // Count, through the public sync API, as RELIABILITY.md says.
        var inboxes: [String: [JSONObject]] = [:]
        for user in users { inboxes[user] = try await Self.inbox(http: HTTPClient.shared, port: restartPort, user: user) }
        let report = log.verify(inboxes: inboxes)
        #expect(report.counts.isClean, "\(report)")
        #expect(report.storedMessages == 2000)
        let status = await server.terminate()
        #expect(status == 0, "graceful shutdown after SIGTERM: \(server.output.suffix(500))")
    }
}
