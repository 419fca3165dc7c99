import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayTesting
import NIOCore
import NIOHTTP1
import Testing

/// A long-poll session outlives its node: two real `chatgate` processes on one PostgreSQL
/// database, a long-poll client whose requests go to each node in turn, and node A (which
/// opened the session) killed with SIGKILL. The client's next requests reach B, which re-homes
/// the session once A's lease ran out (`503` before: A might still answer): same session id, and
/// every message from the one after the client's `ack` on, those sent before the kill (handed to
/// a poll answer the client never read, or still queued on A) and after it, exactly once each,
/// in seq order.
@Suite("Cluster: a long-poll session survives kill -9 of its node", .serialized, .timeLimit(.minutes(2)))
struct ClusterLongPollFailoverTests {
    struct Reply {
        var status: Int
        var json: JSONObject?
    }

    /// A killed node refuses connections: answered at once, not retried until the request's
    /// deadline (AsyncHTTPClient's default, which `HTTPClient.shared` keeps). Lives as long as
    /// the test process.
    static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(2)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    static func request(_ method: HTTPMethod, port: Int, _ path: String, token: String, body: String? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await http.execute(request, timeout: .seconds(30))
        var bytes = try await response.body.collect(upTo: 1 << 22)
        let text = bytes.readString(length: bytes.readableBytes) ?? ""
        return Reply(status: Int(response.status.code), json: (try? JSONParser.parse(text))?.objectValue)
    }

    @Test func aLongPollSessionMovesToALiveNodeWhenItsNodeIsKilled() async throws {
        guard let server = try PostgresTestServer.shared() else {
            try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
        }
        let url = try server.createDatabase()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-lp-failover-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let a = try await ChildGateway.start(configPath: try ClusterFailoverTests.config(directory: directory, node: "node-a", url: url))
        let b: ChildGateway
        do {
            b = try await ChildGateway.start(configPath: try ClusterFailoverTests.config(directory: directory, node: "node-b", url: url))
        } catch {
            await a.kill9()
            throw error
        }
        // No child left running, however the test ends (an #expect failure does not throw).
        do {
            try await Self.run(a: a, b: b)
        } catch {
            await a.kill9()
            await b.kill9()
            Issue.record("node A: \(a.output.suffix(3000))\nnode B: \(b.output.suffix(3000))")
            throw error
        }
        await a.kill9()
        let exit = await b.terminate()
        #expect(exit == 0, "graceful shutdown after SIGTERM: \(b.output.suffix(500))")
    }

    /// The long-poll client: each request to the next node; a node that refuses connections
    /// (dead) is skipped, a `503` is retried after its `retry_after_ms`, as a client does.
    final class Client {
        let ports: [Int]
        let token: String
        let session: String
        var turn = 0
        /// The highest seq received with no gap: sent as `ack`.
        var ack: Int64 = 0
        /// Every message frame received, in order (duplicates included, to count them).
        var received: [(seq: Int64, body: String)] = []

        init(ports: [Int], token: String, session: String) {
            self.ports = ports
            self.token = token
            self.session = session
        }

        /// One poll through the next node that answers; returns its message frames.
        func poll(timeoutMs: Int = 5000) async throws -> (port: Int, messages: [JSONObject]) {
            let deadline = ContinuousClock.now + .seconds(30)
            var seen: [String] = []
            while ContinuousClock.now < deadline {
                let port = ports[turn % ports.count]
                turn += 1
                let reply: Reply
                do {
                    reply = try await ClusterLongPollFailoverTests.request(
                        .GET, port: port, "/v1/lp/poll?session=\(session)&timeout_ms=\(timeoutMs)&ack=\(ack)", token: token)
                } catch {
                    seen.append("\(port): \(error)")
                    continue  // the node is down: the next one
                }
                if reply.status == 503 {
                    seen.append("\(port): 503 \(String(describing: reply.json?["error"]?.objectValue?["message"]))")
                    let wait = reply.json?["error"]?.objectValue?["retry_after_ms"]?.int64Value ?? 500
                    try await Task.sleep(for: .milliseconds(min(wait, 2000)))
                    continue
                }
                #expect(reply.status == 200, "poll through port \(port): \(reply.status) \(String(describing: reply.json))")
                guard reply.status == 200 else { throw ChildGateway.ChildError(description: "poll answered \(reply.status)") }
                let messages = (reply.json?["frames"]?.arrayValue ?? []).compactMap(\.objectValue).filter { $0["type"]?.stringValue == "message" }
                return (port, messages)
            }
            throw ChildGateway.ChildError(description: "no node answered a poll within 30 s: \(seen.prefix(4)) … \(seen.suffix(2))")
        }

        /// Polls (and keeps what arrives) until it holds every seq through `seq` (at most 45 s).
        func pollThrough(_ seq: Int64) async throws {
            let deadline = ContinuousClock.now + .seconds(45)
            while ack < seq {
                guard ContinuousClock.now < deadline else {
                    throw ChildGateway.ChildError(description: "seq \(seq) not received within 45 s; have \(received.map(\.seq))")
                }
                for message in try await poll().messages {
                    let s = message["seq"]?.int64Value ?? -1
                    received.append((s, message["body"]?.stringValue ?? ""))
                    if s == ack + 1 { ack = s }
                }
            }
        }
    }

    static func run(a: ChildGateway, b: ChildGateway) async throws {
        let bobToken = try await DurabilityTests.token("bob")
        let aliceToken = try await DurabilityTests.token("alice")
        // alice sends through B; her ack means bob's inbox holds the message.
        func send(_ n: Int) async throws {
            let reply = try await request(
                .POST, port: b.publicPort, "/v1/messages", token: aliceToken,
                body: sendFrame(to: .user("bob"), body: .string("m\(n)"), id: "m\(n)").jsonText)
            #expect(reply.status == 200 && reply.json?["type"]?.stringValue == "ack", "\(String(describing: reply.json))")
        }

        let opened = try await request(.POST, port: a.publicPort, "/v1/lp/open", token: bobToken, body: "{\"device\":\"web\"}")
        #expect(opened.status == 200)
        let session = try #require(opened.json?["session"]?.stringValue)
        let bob = Client(ports: [b.publicPort, a.publicPort], token: bobToken, session: session)

        // Before the kill: six messages, each poll through the other node (relayed to A).
        for n in 0..<6 {
            try await send(n)
            try await bob.pollThrough(Int64(n + 1))
        }
        #expect(bob.received.map(\.seq) == Array(1...6))

        // A poll answer the client never reads (lost in flight): m6...m8 (seqs 7...9) handed out
        // by A, not acknowledged.
        for n in 6..<9 { try await send(n) }
        var handedOut: Set<Int64> = []
        let deadline = ContinuousClock.now + .seconds(30)
        while !handedOut.isSuperset(of: [7, 8, 9]) {
            guard ContinuousClock.now < deadline else {
                throw ChildGateway.ChildError(description: "seqs 7...9 did not reach A's session within 30 s: \(handedOut)")
            }
            let answer = try await request(
                .GET, port: a.publicPort, "/v1/lp/poll?session=\(session)&timeout_ms=5000&ack=\(bob.ack)", token: bobToken)
            #expect(answer.status == 200)
            for frame in (answer.json?["frames"]?.arrayValue ?? []).compactMap(\.objectValue) {
                if let seq = frame["seq"]?.int64Value { handedOut.insert(seq) }
            }
        }
        // Two more, queued on A for the next poll (or on their way to it).
        for n in 9..<11 { try await send(n) }

        await a.kill9()

        // After the kill: three more, stored while the session has no live node.
        for n in 11..<14 { try await send(n) }
        try await bob.pollThrough(14)
        #expect(bob.received.map(\.seq) == Array(1...14), "every message exactly once, in seq order")
        #expect(bob.received.map(\.body) == (0..<14).map { "m\($0)" })

        // The session lives on B now: a live message arrives with the next poll, and bob sends
        // with the same session id.
        try await send(14)
        try await bob.pollThrough(15)
        #expect(bob.received.map(\.seq) == Array(1...15))
        let reply = try await request(
            .POST, port: b.publicPort, "/v1/lp/send?session=\(session)", token: bobToken,
            body: sendFrame(to: .user("alice"), body: .string("back"), id: "b-1", ref: "r1").jsonText)
        #expect(reply.status == 200)
        let ack = (reply.json?["frames"]?.arrayValue ?? []).first?.objectValue
        #expect(ack?["type"]?.stringValue == "ack" && ack?["ref"]?.stringValue == "r1", "\(String(describing: reply.json))")
        // B's log comes through a pipe our reader drains on its own schedule: wait for the line
        // rather than read the output kept so far (it can lag behind B's HTTP answers).
        #expect(await b.process.line(where: { $0.contains("long-poll session re-homed") }, timeout: .seconds(15)) != nil, "B's log says it took the session")

        // Another user's token finds nothing; closing ends it everywhere.
        let eve = try await DurabilityTests.token("eve")
        #expect(try await request(.GET, port: b.publicPort, "/v1/lp/poll?session=\(session)&timeout_ms=0", token: eve).status == 404)
        #expect(try await request(.POST, port: b.publicPort, "/v1/lp/close?session=\(session)", token: bobToken).status == 204)
        #expect(try await request(.GET, port: b.publicPort, "/v1/lp/poll?session=\(session)&timeout_ms=0", token: bobToken).status == 404)
    }
}
