import AsyncHTTPClient
import GatewayTesting
import Foundation
import GatewayCore
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

    /// What one sender knows: the messages it sent and the ones acked, by client_msg_id.
    actor Ledger {
        var sent: [String: Address] = [:]
        var acked: [String: String] = [:]
        var ackCount = 0

        func markSent(_ id: String, to: Address) { sent[id] = to }
        func markAcked(_ id: String, messageID: String) {
            if acked[id] == nil { ackCount += 1 }
            acked[id] = messageID
        }
        func unacked() -> [(String, Address)] { sent.filter { acked[$0.key] == nil }.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 } }
    }

    /// Sends `messages` with up to `window` unacked, until done or the connection drops.
    static func pump(port: Int, user: String, messages: [(String, Address)], window: Int, ledger: Ledger) async {
        guard let token = try? await token(user),
            let (stream, status, _) = try? await WebSocketStream.connect(port: port, headers: [("Authorization", "Bearer \(token)")]),
            status == 101
        else { return }
        var next = 0
        var outstanding = 0
        while next < messages.count || outstanding > 0 {
            while outstanding < window, next < messages.count {
                let (id, to) = messages[next]
                await ledger.markSent(id, to: to)
                stream.send(sendFrame(to: to, body: ["n": .string(id)], id: id))
                next += 1
                outstanding += 1
            }
            guard let event = try? await stream.next(timeout: 15) else { return }
            switch event {
            case .text(let text):
                guard let frame = (try? JSONParser.parse(text))?.objectValue else { continue }
                if frame["type"]?.stringValue == "ack", let cid = frame["client_msg_id"]?.stringValue, let mid = frame["id"]?.stringValue {
                    await ledger.markAcked(cid, messageID: mid)
                    outstanding -= 1
                } else if frame["type"]?.stringValue == "error" {
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
        let ledgers = Dictionary(uniqueKeysWithValues: users.map { ($0, Ledger()) })
        let killAfter = Int.random(in: 300...1200)
        let port = server.publicPort
        let firstServer = server
        await withTaskGroup(of: Void.self) { group in
            for user in users {
                group.addTask { await Self.pump(port: port, user: user, messages: plans[user]!, window: 16, ledger: ledgers[user]!) }
            }
            group.addTask {
                // Kill at a random moment mid-stream.
                while true {
                    var total = 0
                    for user in users { total += await ledgers[user]!.ackCount }
                    if total >= killAfter { break }
                    try? await Task.sleep(for: .milliseconds(2))
                }
                await firstServer.kill9()
            }
        }
        var ackedBefore: [String: String] = [:]
        for user in users { for (cid, mid) in await ledgers[user]!.acked { ackedBefore[cid] = mid } }
        #expect(ackedBefore.count >= killAfter)
        #expect(ackedBefore.count < 2000, "the kill came after everything was acked; nothing was tested")

        // Restart on the same file; every sender resends what it has no ack for, then the rest.
        server = try await ChildGateway.start(configPath: configPath)
        let restartPort = server.publicPort
        await withTaskGroup(of: Void.self) { group in
            for user in users {
                group.addTask {
                    let ledger = ledgers[user]!
                    let sentIDs = Set(await ledger.sent.keys)
                    let remaining = await ledger.unacked() + plans[user]!.filter { !sentIDs.contains($0.0) }
                    await Self.pump(port: restartPort, user: user, messages: remaining, window: 16, ledger: ledger)
                }
            }
        }
        var ackedAfter: [String: String] = [:]
        for user in users { for (cid, mid) in await ledgers[user]!.acked { ackedAfter[cid] = mid } }
        #expect(ackedAfter.count == 2000)

        // Count, through the public sync API, as RELIABILITY.md says.
        var lost = 0, duplicated = 0, unexpected = 0, torn = 0, order = 0, gaps = 0
        var idsByClientMsgID: [String: Set<String>] = [:]
        var inboxesByID: [String: Set<String>] = [:]
        for user in users {
            let inbox = try await Self.inbox(http: HTTPClient.shared, port: restartPort, user: user)
            let seqs = inbox.compactMap { $0["seq"]?.int64Value }
            if seqs != Array(1...Int64(max(seqs.count, 1))).prefix(seqs.count).map({ $0 }) { gaps += 1 }
            let ids = inbox.compactMap { $0["id"]?.stringValue }
            if Set(ids).count != ids.count { duplicated += ids.count - Set(ids).count }
            var lastIDByConversation: [String: UInt64] = [:]
            for message in inbox {
                guard let id = message["id"]?.stringValue, let cid = message["client_msg_id"]?.stringValue, let from = message["from"]?.stringValue
                else { continue }
                idsByClientMsgID[from + "/" + cid, default: []].insert(id)
                inboxesByID[id, default: []].insert(user)
                if plans[from]?.contains(where: { $0.0 == cid }) != true { unexpected += 1 }
                let conversation = message["to"]?["group"]?.stringValue.map { "g:" + $0 } ?? [from, message["to"]?["user"]?.stringValue ?? ""].sorted().joined(separator: "|")
                let numeric = UInt64(id) ?? 0
                if let last = lastIDByConversation[conversation], numeric <= last { order += 1 }
                lastIDByConversation[conversation] = numeric
            }
        }
        for (index, user) in users.enumerated() {
            let peer = users[(index + 1) % users.count]
            for (cid, to) in plans[user]! {
                let ids = idsByClientMsgID[user + "/" + cid] ?? []
                if ids.count > 1 { duplicated += 1 }
                guard let id = ids.first else {
                    if ackedBefore[cid] != nil || ackedAfter[cid] != nil { lost += 1 }
                    continue
                }
                if let acked = ackedBefore[cid], acked != id { lost += 1 }
                let expected: Set<String> = to == .group("g_all") ? Set(users) : [user, peer]
                if inboxesByID[id] != expected { torn += 1 }
            }
        }
        #expect(lost == 0)
        #expect(duplicated == 0)
        #expect(unexpected == 0)
        #expect(torn == 0)
        #expect(order == 0)
        #expect(gaps == 0)
        let status = await server.terminate()
        #expect(status == 0, "graceful shutdown after SIGTERM: \(server.output.suffix(500))")
    }
}
