import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayTesting
import Testing

/// RELIABILITY.md: "`kill -9` in the middle of a large group's fanout: fanout is atomic; `torn`
/// 0". Counted by `DurabilityChecker` through the public `sync` API.
@Suite("Group fanout across kill -9", .serialized)
struct GroupDurabilityTests {
    static let groupSize = 500
    static let users = (0..<groupSize).map { String(format: "u%03d", $0) }
    static let senders = Array(users.prefix(4))
    static let perSender = 50

    static func config(directory: URL, backend: StoreBackend = .sqlite) throws -> String {
        let storeLine = try backend.storeLine(directory: directory, durability: "full")
        let path = directory.appendingPathComponent("config.yaml").path
        // Write fanout: the threshold stays above the group's 500 members.
        let yaml = """
            node: { id: dur-node, worker_id: 3 }
            listen:
              public: { host: 127.0.0.1, port: 0 }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            \(storeLine)
            limits: { max_group_members: \(groupSize) }
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(DurabilityTests.secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
                settings: { fanout_on_read_above: 1000 }
            """
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Every member's inbox through `GET /v1/sync`, 8 members at a time.
    static func inboxes(port: Int) async throws -> [String: [JSONObject]] {
        try await withThrowingTaskGroup(of: (String, [JSONObject]).self) { group in
            var result: [String: [JSONObject]] = [:]
            var next = 0
            func add() {
                let user = users[next]
                next += 1
                group.addTask { (user, try await DurabilityTests.inbox(http: HTTPClient.shared, port: port, user: user)) }
            }
            for _ in 0..<8 { add() }
            for try await (user, inbox) in group {
                result[user] = inbox
                if next < users.count { add() }
            }
            return result
        }
    }

    /// The group's stored messages through the history API (newest first; 200 fit one page).
    static func stored(port: Int) async throws -> [String] {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/conversations/group:g_big/messages?limit=500")
        request.headers.add(name: "Authorization", value: "Bearer \(try await DurabilityTests.token(users[0]))")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        var body = try await response.body.collect(upTo: 64 << 20)
        let json = try #require(try JSONParser.parse(body.readString(length: body.readableBytes) ?? "").objectValue)
        #expect(json["more"] == false)
        return (json["messages"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
    }

    @Test(arguments: StoreBackend.allCases) func killNineMidFanoutToA500MemberGroupLeavesNoTornFanout(backend: StoreBackend) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-groupdur-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configPath = try Self.config(directory: directory, backend: backend)
        var server = try await ChildGateway.start(configPath: configPath)
        // No gateway left running when the test throws (`server` is the one running then).
        defer { server.killNow() }

        var create = HTTPClientRequest(url: "http://127.0.0.1:\(server.publicPort)/v1/groups")
        create.method = .POST
        create.headers.add(name: "Authorization", value: "Bearer \(try await DurabilityTests.token(Self.users[0]))")
        let members = JSONValue.array(Self.users.dropFirst().map { .string($0) })
        create.body = .bytes(.init(string: "{\"id\":\"g_big\",\"name\":\"big\",\"members\":\(members.jsonText)}"))
        #expect(try await HTTPClient.shared.execute(create, timeout: .seconds(10)).status.code == 201)

        // 200 messages from 4 senders; the kill comes after a random number of acks.
        let plans = Dictionary(uniqueKeysWithValues: Self.senders.map { sender in
            (sender, (0..<Self.perSender).map { n in ("\(sender)-\(n)", Address.group("g_big")) })
        })
        let log = DurabilityChecker()
        let memberSet = Set(Self.users)
        let total = Self.senders.count * Self.perSender
        let killAfter = Int.random(in: 20...150)
        let port = server.publicPort
        let firstServer = server
        // Killed inside the ack that reaches killAfter, not by a task woken later.
        log.whenAcked(killAfter) { firstServer.killNow() }
        await withTaskGroup(of: Void.self) { group in
            for sender in Self.senders {
                group.addTask { await DurabilityTests.pump(port: port, user: sender, messages: plans[sender]!, groupMembers: memberSet, window: 8, log: log) }
            }
            group.addTask {
                // After killAfter acks: the kill lands mid-stream.
                _ = await log.waitForAcks(killAfter)
                await firstServer.kill9()
            }
        }
        let ackedBefore = log.operations.compactMap(\.ackedIDs.first)
        #expect(ackedBefore.count >= killAfter)
        #expect(ackedBefore.count < total, "the kill came after everything was acked; nothing was tested")

        // Right after the restart: every stored message is in all 500 inboxes or in none, and
        // every acked one is stored.
        server = try await ChildGateway.start(configPath: configPath)
        let restartPort = server.publicPort
        let afterKill = log.verify(inboxes: try await Self.inboxes(port: restartPort))
        #expect(afterKill.counts.isClean, "\(afterKill)")
        let storedAfterKill = try await Self.stored(port: restartPort)
        #expect(Set(ackedBefore).isSubset(of: Set(storedAfterKill)), "an acked message is missing from the history")

        // The senders resend what has no ack, then the rest; everything ends stored once.
        await withTaskGroup(of: Void.self) { group in
            for sender in Self.senders {
                group.addTask {
                    await DurabilityTests.resend(port: restartPort, user: sender, plan: plans[sender]!, groupMembers: memberSet, window: 8, log: log)
                }
            }
        }
        #expect(log.ackedCount == total)
        let atEnd = log.verify(inboxes: try await Self.inboxes(port: restartPort))
        #expect(atEnd.counts.isClean, "\(atEnd)")
        #expect(atEnd.storedMessages == total)
        let storedAtEnd = try await Self.stored(port: restartPort)
        #expect(Set(storedAtEnd) == Set(log.operations.compactMap(\.ackedIDs.first)), "history ≠ acked")
        let status = await server.terminate()
        #expect(status == 0, "graceful shutdown after SIGTERM: \(server.output.suffix(500))")
    }
}
