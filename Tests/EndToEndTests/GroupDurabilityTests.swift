import AsyncHTTPClient
import Foundation
import GatewayCore
import Testing

/// RELIABILITY.md: "`kill -9` in the middle of a large group's fanout: fanout is atomic; `torn`
/// 0". Counting as `DurabilityTests` does, through the public API.
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

    struct Count {
        var torn = 0
        var duplicated = 0
        var gaps = 0
        var order = 0
        var unexpected = 0
    }

    /// Counts every stored message's inbox entries across all members.
    static func count(port: Int, stored: [String]) async throws -> Count {
        var count = Count()
        var holders: [String: Int] = [:]
        for (_, inbox) in try await inboxes(port: port) {
            let ids = inbox.compactMap { $0["id"]?.stringValue }
            count.duplicated += ids.count - Set(ids).count
            if inbox.map({ $0["seq"]?.int64Value }) != (0..<inbox.count).map({ Int64($0 + 1) }) { count.gaps += 1 }
            if ids != ids.sorted(by: { UInt64($0)! < UInt64($1)! }) { count.order += 1 }
            for id in ids { holders[id, default: 0] += 1 }
        }
        let storedSet = Set(stored)
        count.torn = stored.filter { holders[$0] != groupSize }.count
        count.unexpected = holders.keys.filter { !storedSet.contains($0) }.count
        return count
    }

    @Test(arguments: StoreBackend.allCases) func killNineMidFanoutToA500MemberGroupLeavesNoTornFanout(backend: StoreBackend) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-groupdur-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let configPath = try Self.config(directory: directory, backend: backend)
        var server = try await ChildGateway.start(configPath: configPath)

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
        let ledgers = Dictionary(uniqueKeysWithValues: Self.senders.map { ($0, DurabilityTests.Ledger()) })
        let total = Self.senders.count * Self.perSender
        let killAfter = Int.random(in: 20...150)
        let port = server.publicPort
        let firstServer = server
        await withTaskGroup(of: Void.self) { group in
            for sender in Self.senders {
                group.addTask { await DurabilityTests.pump(port: port, user: sender, messages: plans[sender]!, window: 8, ledger: ledgers[sender]!) }
            }
            group.addTask {
                while true {
                    var acked = 0
                    for sender in Self.senders { acked += await ledgers[sender]!.ackCount }
                    if acked >= killAfter { break }
                    // Polls the ledgers (not a synchronization sleep): the kill lands mid-stream.
                    try? await Task.sleep(for: .milliseconds(2))
                }
                await firstServer.kill9()
            }
        }
        var ackedBefore: [String: String] = [:]
        for sender in Self.senders { for (cid, mid) in await ledgers[sender]!.acked { ackedBefore[cid] = mid } }
        #expect(ackedBefore.count >= killAfter)
        #expect(ackedBefore.count < total, "the kill came after everything was acked; nothing was tested")

        // Right after the restart: every stored message is in all 500 inboxes or in none.
        server = try await ChildGateway.start(configPath: configPath)
        let restartPort = server.publicPort
        let storedAfterKill = try await Self.stored(port: restartPort)
        let afterKill = try await Self.count(port: restartPort, stored: storedAfterKill)
        #expect(afterKill.torn == 0)
        #expect(afterKill.duplicated == 0)
        #expect(afterKill.gaps == 0)
        #expect(afterKill.order == 0)
        #expect(afterKill.unexpected == 0)
        #expect(Set(ackedBefore.values).isSubset(of: Set(storedAfterKill)), "an acked message is missing")

        // The senders resend what has no ack, then the rest; everything ends stored once.
        await withTaskGroup(of: Void.self) { group in
            for sender in Self.senders {
                group.addTask {
                    let ledger = ledgers[sender]!
                    let sent = Set(await ledger.sent.keys)
                    let remaining = await ledger.unacked() + plans[sender]!.filter { !sent.contains($0.0) }
                    await DurabilityTests.pump(port: restartPort, user: sender, messages: remaining, window: 8, ledger: ledger)
                }
            }
        }
        var ackedAfter: [String: String] = [:]
        for sender in Self.senders { for (cid, mid) in await ledgers[sender]!.acked { ackedAfter[cid] = mid } }
        #expect(ackedAfter.count == total)
        for (cid, id) in ackedBefore { #expect(ackedAfter[cid] == id, "\(cid) acked twice with different ids") }
        let storedAtEnd = try await Self.stored(port: restartPort)
        #expect(Set(storedAtEnd) == Set(ackedAfter.values), "stored ≠ acked")
        let atEnd = try await Self.count(port: restartPort, stored: storedAtEnd)
        #expect(atEnd.torn == 0)
        #expect(atEnd.duplicated == 0)
        #expect(atEnd.gaps == 0)
        #expect(atEnd.order == 0)
        #expect(atEnd.unexpected == 0)
        let status = await server.terminate()
        #expect(status == 0, "graceful shutdown after SIGTERM: \(server.output.suffix(500))")
    }
}
