import GatewayTesting
import Foundation
import GatewayCore
import StageAuth
import Testing

/// The admin port (PROTOCOL.md section 7, docs/OPERATIONS.md): token, stats, metrics, reload,
/// connections, kick, logs.
@Suite("Admin API")
struct AdminTests {
    static let token = "admin-test-token"

    // MARK: Access

    @Test func adminRoutesNeedTheTokenAndMutationsArePostOnly() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")

        // No token, a wrong one, the right one.
        for path in ["/admin/stats", "/metrics", "/admin/pipeline", "/admin/connections"] {
            let none = try await gateway.request(.GET, path, admin: true)
            #expect(none.status == 401, "\(path) without a token")
            #expect(none.json?["error"]?["code"]?.stringValue == "unauthorized")
            let wrong = try await gateway.request(.GET, path, token: "admin-test-tokeN", admin: true)
            #expect(wrong.status == 401, "\(path) with a wrong token")
            let right = try await gateway.request(.GET, path, token: Self.token, admin: true)
            #expect(right.status == 200, "\(path) with the token: \(right.body)")
        }
        for path in ["/admin/kick", "/admin/reload"] {
            let wrong = try await gateway.request(.POST, path, token: "nope", body: #"{"user":"alice"}"#, admin: true)
            #expect(wrong.status == 401, "POST \(path) with a wrong token")
            // A mutation by GET is refused, and changes nothing.
            let get = try await gateway.request(.GET, path, token: Self.token, admin: true)
            #expect(get.status == 405, "GET \(path)")
            #expect(get.headers["allow"] == "POST")
        }
        let stats = try #require(try await gateway.request(.GET, "/admin/stats", token: Self.token, admin: true).json)
        #expect(stats["connections"]?["websocket"]?.int64Value == 1, "the GET on /admin/kick closed nothing")

        // Health and the dashboard's page need no token; the page holds no figures.
        #expect(try await gateway.request(.GET, "/healthz", admin: true).status == 200)
        #expect(try await gateway.request(.GET, "/readyz", admin: true).status == 200)
        for path in ["/admin/", "/admin"] {
            let page = try await gateway.request(.GET, path, admin: true)
            #expect(page.status == 200, "\(path)")
            #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
            #expect(page.body.contains(#"id="connections-websocket""#))
            #expect(page.body.contains("<canvas"))
            #expect(!page.body.contains("alice"), "the page must not embed data")
            #expect(!page.body.contains("src=\"http"), "no external scripts")
        }
        alice.close()
        await gateway.stop()
    }

    // MARK: Stats and metrics

    @Test(.enabled(if: PythonTools.hasPrometheusParser || PythonTools.isCI, Comment(rawValue: PythonTools.missingParser)))
    func statsAndMetricsCountAScriptedExchangeExactly() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        let bob = try await LongPollClient.open(gateway, user: "bob")

        for n in 1...3 {
            alice.send(sendFrame(to: .user("bob"), body: .string("m\(n)"), id: "a\(n)"))
            #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")
        }
        // A group alice is not in: `auth` rejects it.
        alice.send(sendFrame(to: .group("nowhere"), body: "x", id: "a4"))
        let refused = try await alice.nextFrame()
        #expect(refused["code"]?.stringValue == "forbidden")
        let delivered = try await bob.poll(until: "message").filter { $0["type"]?.stringValue == "message" }
        var received = delivered.count
        while received < 3 {
            received += try await bob.poll(timeoutMs: 2000).filter { $0["type"]?.stringValue == "message" }.count
        }
        #expect(received == 3)
        let replies = try await bob.send([sendFrame(to: .user("alice"), body: "back", id: "b1")])
        #expect(replies.first?["type"]?.stringValue == "ack")
        #expect(try await alice.nextFrame()["type"]?.stringValue == "message")

        // alice's sends are counted after their acks went out (see `stats(until:)`).
        let stats = try await gateway.stats { $0["messages_accepted"]?.int64Value == 4 }
        #expect(stats["connections"]?["websocket"]?.int64Value == 1)
        #expect(stats["connections"]?["longpoll"]?.int64Value == 1)
        #expect(stats["users_online"]?.int64Value == 2)
        // In: alice's 4 sends, bob's 1. Out: 2 hellos, alice's 3 acks, 1 error and 1 message,
        // bob's 3 messages and 1 ack.
        #expect(stats["frames_in"]?.int64Value == 5)
        #expect(stats["frames_out"]?.int64Value == 11)
        #expect(stats["messages_accepted"]?.int64Value == 4)
        #expect(stats["messages_rejected"]?.int64Value == 1)
        #expect(stats["store"]?["messages"]?.int64Value == 4)
        #expect(stats["store"]?["inbox_entries"]?.int64Value == 8)
        #expect((stats["store"]?["bytes"]?.int64Value ?? 0) > 0)
        #expect(stats["push"] == ["sent": 0, "failed": 0, "queued": 0])
        #expect(stats["media"] == ["uploads": 0, "bytes_in": 0, "bytes_stored": 0])
        let stages = try #require(stats["stages"]?.arrayValue)
        #expect(stages.compactMap { $0["name"]?.stringValue } == ["auth", "id", "persist", "fanout"])
        for stage in stages {
            let name = stage["name"]?.stringValue ?? ""
            #expect(stage["processed"]?.int64Value == (name == "auth" ? 5 : 4), "\(name) processed")
            #expect(stage["rejected"]?.int64Value == (name == "auth" ? 1 : 0), "\(name) rejected")
            #expect(stage["errors"]?.int64Value == 0)
            #expect((stage["p50_us"]?.int64Value ?? 0) > 0, "\(name) p50")
            #expect((stage["p99_us"]?.int64Value ?? 0) >= (stage["p50_us"]?.int64Value ?? 0))
        }

        let metrics = try await gateway.request(.GET, "/metrics", token: Self.token, admin: true)
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let samples = try await PythonTools.parseMetrics(metrics.body)
        #expect(samples.value("chatgate_connections", ["transport": "websocket"]) == 1)
        #expect(samples.value("chatgate_connections", ["transport": "longpoll"]) == 1)
        #expect(samples.value("chatgate_users_online") == 2)
        #expect(samples.value("chatgate_frames_in_total") == 5)
        #expect(samples.value("chatgate_frames_out_total") == 11)
        #expect(samples.value("chatgate_messages_total", ["outcome": "accepted"]) == 4)
        #expect(samples.value("chatgate_messages_total", ["outcome": "rejected"]) == 1)
        #expect(samples.value("chatgate_store_messages") == 4)
        #expect(samples.value("chatgate_store_inbox_entries") == 8)
        #expect(samples.value("chatgate_store_up") == 1)
        #expect(samples.value("chatgate_stage_processed_total", ["stage": "auth", "kind": "auth"]) == 5)
        #expect(samples.value("chatgate_stage_rejected_total", ["stage": "auth"]) == 1)
        #expect(samples.value("chatgate_stage_processed_total", ["stage": "fanout"]) == 4)
        #expect(samples.value("chatgate_config_reloads_total", ["outcome": "success"]) == 0)
        let latency = samples.filter { $0.family == "chatgate_stage_latency_seconds" }
        #expect(latency.first?.type == "histogram")
        for stage in ["auth", "id", "persist", "fanout"] {
            let count = latency.value("chatgate_stage_latency_seconds_count", ["stage": stage])
            #expect(count == (stage == "auth" ? 5 : 4), "\(stage) latency count")
            #expect(latency.value("chatgate_stage_latency_seconds_bucket", ["stage": stage, "le": "+Inf"]) == count)
            #expect((latency.value("chatgate_stage_latency_seconds_sum", ["stage": stage]) ?? 0) > 0, "\(stage) latency sum")
            // Buckets are cumulative.
            let buckets = latency.filter { $0.name == "chatgate_stage_latency_seconds_bucket" && $0.labels["stage"] == stage }
                .sorted { (Double($0.labels["le"] ?? "") ?? .infinity) < (Double($1.labels["le"] ?? "") ?? .infinity) }
            #expect(buckets.count == 13)
            #expect(zip(buckets, buckets.dropFirst()).allSatisfy { $0.value <= $1.value })
        }
        alice.close()
        await gateway.stop()
    }

    @Test(.enabled(if: PythonTools.hasPrometheusParser || PythonTools.isCI, Comment(rawValue: PythonTools.missingParser)))
    func metricSeriesDoNotGrowWithUsers() async throws {
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        alice.send(sendFrame(to: .user("bob"), body: "hi", id: "a1"))
        _ = try await alice.nextFrame()
        let before = try await PythonTools.parseMetrics(try await gateway.request(.GET, "/metrics", token: Self.token, admin: true).body)

        var clients: [WebSocketStream] = []
        for n in 0..<50 {
            let (client, _) = try await gateway.connect("user-\(n)")
            client.send(sendFrame(to: .user("user-\((n + 1) % 50)"), body: .string("hello \(n)"), id: "c\(n)"))
            _ = try await client.frames(until: "ack")
            clients.append(client)
        }
        // The last sender's message is counted after its ack went out (see `stats(until:)`).
        let counted = try await gateway.stats { $0["messages_accepted"]?.int64Value == 51 }
        #expect(counted["messages_accepted"]?.int64Value == 51)
        let text = try await gateway.request(.GET, "/metrics", token: Self.token, admin: true).body
        let after = try await PythonTools.parseMetrics(text)
        #expect(after.count == before.count, "series: \(before.count) → \(after.count)")
        #expect(Set(after.map(\.labels.keys).joined()).isSubset(of: ["stage", "kind", "transport", "outcome", "reason", "le", "provider"]))
        #expect(!text.contains("user-"), "no user id in /metrics")
        #expect(after.value("chatgate_connections", ["transport": "websocket"]) == 51)
        #expect(after.value("chatgate_messages_total", ["outcome": "accepted"]) == 51)
        for client in clients { client.close() }
        alice.close()
        await gateway.stop()
    }

    // MARK: Reload

    static let strictPersist = """
          - stage: auth
            settings: { hs256_secret: "\(TestGateway.secret)", leeway_s: 30 }
          - stage: id
          - stage: persist
            settings: { max_body_bytes: 5 }
          - stage: fanout
        """

    @Test func reloadSwapsThePipelineWithoutDroppingConnectionsAndABrokenOneChangesNothing() async throws {
        let gateway = try await TestGateway.startFromFile()
        let (alice, _) = try await gateway.connect("alice")
        let bob = try await LongPollClient.open(gateway, user: "bob")
        alice.send(sendFrame(to: .user("bob"), body: "hello world", id: "a1"))
        #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")

        // A pipeline whose `persist` refuses bodies over 5 bytes.
        try gateway.rewriteConfig(pipeline: Self.strictPersist)
        let reloaded = try await gateway.request(.POST, "/admin/reload", token: Self.token, admin: true)
        #expect(reloaded.status == 200, "\(reloaded.body)")
        #expect(reloaded.json?["reloaded"] == true)
        let pipeline = try #require(try await gateway.request(.GET, "/admin/pipeline", token: Self.token, admin: true).json)
        let persist = pipeline["stages"]?.arrayValue?.first { $0["name"]?.stringValue == "persist" }
        #expect(persist?["settings"]?["max_body_bytes"]?.int64Value == 5)
        #expect(persist?["on"] == ["send"])
        let auth = pipeline["stages"]?.arrayValue?.first { $0["name"]?.stringValue == "auth" }
        #expect(auth?["settings"]?["hs256_secret"]?.stringValue == "<redacted>", "secrets are masked")
        #expect(!JSONValue.object(pipeline).jsonText.contains(TestGateway.secret))

        // Same connection, the next frame meets the new pipeline.
        alice.send(sendFrame(to: .user("bob"), body: "hello world", id: "a2"))
        let tooLarge = try await alice.nextFrame()
        #expect(tooLarge["type"]?.stringValue == "error")
        #expect(tooLarge["code"]?.stringValue == "too_large")
        alice.send(sendFrame(to: .user("bob"), body: "hey", id: "a3"))
        #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")
        let lpRefused = try await bob.send([sendFrame(to: .user("alice"), body: "too long for it", id: "b1")])
        #expect(lpRefused.first?["code"]?.stringValue == "too_large", "the long-poll session too")

        // A broken file: 400 naming the file and line; the pipeline in force stays.
        let broken = TestGateway.yaml(directory: gateway.directory, extra: "", pipeline: Self.strictPersist)
            .replacingOccurrences(of: "max_body_bytes: 5", with: "max_body_bytse: 5")
        try gateway.rewriteConfig(raw: broken)
        let line = try #require(broken.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("max_body_bytse") }) + 1
        let failed = try await gateway.request(.POST, "/admin/reload", token: Self.token, admin: true)
        #expect(failed.status == 400)
        let message = failed.json?["error"]?["message"]?.stringValue ?? ""
        #expect(message.contains("\(gateway.configPath):\(line):"), "\(failed.body)")
        #expect(message.contains("max_body_bytse"))
        #expect(failed.json?["diagnostics"]?.arrayValue?.isEmpty == false)
        alice.send(sendFrame(to: .user("bob"), body: "hello world", id: "a4"))
        #expect(try await alice.nextFrame()["code"]?.stringValue == "too_large", "the old pipeline is still in force")

        // A pipeline the builder refuses (persist without fanout) is refused the same way.
        try gateway.rewriteConfig(pipeline: "  - stage: auth\n    settings: { hs256_secret: \"\(TestGateway.secret)\" }\n  - stage: id\n  - stage: persist\n")
        let unbuildable = try await gateway.request(.POST, "/admin/reload", token: Self.token, admin: true)
        #expect(unbuildable.status == 400)
        #expect(unbuildable.json?["error"]?["message"]?.stringValue?.contains("fanout") == true)

        // Nobody was dropped.
        alice.send(["type": "ping", "ref": "p"])
        #expect(try await alice.nextFrame()["type"]?.stringValue == "pong")
        let stats = try #require(try await gateway.request(.GET, "/admin/stats", token: Self.token, admin: true).json)
        #expect(stats["connections"]?["websocket"]?.int64Value == 1)
        #expect(stats["connections"]?["longpoll"]?.int64Value == 1)
        let reloads = try await gateway.request(.GET, "/metrics", token: Self.token, admin: true).body
        #expect(reloads.contains(#"chatgate_config_reloads_total{outcome="success"} 1"#))
        #expect(reloads.contains(#"chatgate_config_reloads_total{outcome="failure"} 2"#))
        alice.close()
        await gateway.stop()
    }

    @Test func sighupReloadsThePipelineOfTheRunningExecutable() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-hup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("config.yaml").path
        try TestGateway.yaml(directory: directory, extra: "", pipeline: nil).write(toFile: path, atomically: true, encoding: .utf8)
        let child = try await ChildGateway.start(configPath: path)
        defer { child.killNow() }  // no gateway left running when the test throws
        let token = try await AuthStageFactory.mintHS256(
            secret: TestGateway.secret, user: "alice", ttlSeconds: 3600, now: SystemClock().nowMillis(), issuer: nil, audience: nil)
        let (alice, status, _) = try await WebSocketStream.connect(port: child.publicPort, headers: [("Authorization", "Bearer \(token)")])
        #expect(status == 101)
        #expect(try await alice.nextFrame()["type"]?.stringValue == "hello")
        alice.send(sendFrame(to: .user("bob"), body: "hello world", id: "a1"))
        #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")

        /// Waits until the child's log has `count` lines containing `text`.
        func logged(_ text: String, count: Int = 1) async throws -> Bool {
            await child.seen.wait(timeout: .seconds(15)) { $0.log.components(separatedBy: text).count - 1 >= count }
        }

        try TestGateway.yaml(directory: directory, extra: "", pipeline: Self.strictPersist).write(toFile: path, atomically: true, encoding: .utf8)
        kill(child.pid, SIGHUP)
        #expect(try await logged("pipeline reloaded"), "\(child.output)")
        alice.send(sendFrame(to: .user("bob"), body: "hello world", id: "a2"))
        #expect(try await alice.nextFrame()["code"]?.stringValue == "too_large")

        let broken = TestGateway.yaml(directory: directory, extra: "", pipeline: Self.strictPersist)
            .replacingOccurrences(of: "- stage: fanout", with: "- stage: fanot")
        let line = try #require(broken.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("fanot") }) + 1
        try broken.write(toFile: path, atomically: true, encoding: .utf8)
        kill(child.pid, SIGHUP)
        #expect(try await logged("pipeline reload failed"), "\(child.output)")
        #expect(try await logged("\(path):\(line):"), "the diagnostics name the file and line: \(child.output)")
        alice.send(sendFrame(to: .user("bob"), body: "hello world", id: "a3"))
        #expect(try await alice.nextFrame()["code"]?.stringValue == "too_large", "the old pipeline stays")
        alice.send(["type": "ping", "ref": "p"])
        #expect(try await alice.nextFrame()["type"]?.stringValue == "pong", "still connected")
        let exitStatus = await child.terminate()
        #expect(exitStatus == 0)
    }

    @Test func reloadWithoutAConfigFileIsAConflict() async throws {
        let gateway = try await TestGateway.start()
        let answer = try await gateway.request(.POST, "/admin/reload", token: Self.token, admin: true)
        #expect(answer.status == 409)
        #expect(answer.json?["error"]?["code"]?.stringValue == "conflict")
        await gateway.stop()
    }

    // MARK: Connections and kick

    @Test func connectionsListSessionsAndKickClosesEveryOneOfAUser() async throws {
        let gateway = try await TestGateway.start()
        let (phone, _) = try await gateway.connect("alice", device: "phone")
        let (laptop, _) = try await gateway.connect("alice", device: "laptop")
        let web = try await LongPollClient.open(gateway, user: "alice", device: "web")
        let (bob, _) = try await gateway.connect("bob")

        let all = try #require(try await gateway.request(.GET, "/admin/connections", token: Self.token, admin: true).json)
        #expect(all["total"]?.int64Value == 4)
        let mine = try #require(try await gateway.request(.GET, "/admin/connections?user=alice", token: Self.token, admin: true).json)
        let sessions = try #require(mine["sessions"]?.arrayValue)
        #expect(sessions.count == 3)
        #expect(Set(sessions.compactMap { $0["transport"]?.stringValue }) == ["websocket", "longpoll"])
        #expect(sessions.allSatisfy { $0["user"]?.stringValue == "alice" })
        #expect(sessions.contains { $0["session"]?.stringValue == web.session && $0["device"]?.stringValue == "web" })
        #expect(sessions.allSatisfy { $0["remote_address"]?.stringValue == "127.0.0.1" })
        #expect(sessions.allSatisfy { ($0["opened_at"]?.int64Value ?? 0) > 0 && ($0["last_active_at"]?.int64Value ?? 0) > 0 })
        let limited = try #require(try await gateway.request(.GET, "/admin/connections?limit=1", token: Self.token, admin: true).json)
        #expect(limited["sessions"]?.arrayValue?.count == 1)
        #expect(limited["truncated"] == true)
        #expect(try await gateway.request(.GET, "/admin/connections?user=not%20an%20id", token: Self.token, admin: true).status == 400)

        #expect(try await gateway.request(.POST, "/admin/kick", token: Self.token, body: "{}", admin: true).status == 400)
        let kicked = try await gateway.request(.POST, "/admin/kick", token: Self.token, body: #"{"user":"alice"}"#, admin: true)
        #expect(kicked.status == 200)
        #expect(kicked.json?["closed"]?.int64Value == 3)
        #expect(try await phone.closeCode() == 1008)
        #expect(try await laptop.closeCode() == 1008)
        let poll = try await gateway.request(.GET, "/v1/lp/poll?session=\(web.session)&timeout_ms=0", token: web.token)
        #expect(poll.status == 404, "the long-poll session is gone")

        // bob is untouched.
        bob.send(["type": "ping", "ref": "p"])
        #expect(try await bob.nextFrame()["type"]?.stringValue == "pong")
        // A kicked socket's session ends on its event loop right after the close frame is
        // written: the client can read that frame first, so the list is waited for.
        #expect(await TeardownCheck.wait { gateway.gateway.hub.sessions(of: "alice").isEmpty })
        let remaining = try #require(try await gateway.request(.GET, "/admin/connections", token: Self.token, admin: true).json)
        #expect(remaining["sessions"]?.arrayValue?.allSatisfy { $0["user"]?.stringValue == "bob" } == true)
        bob.close()
        await gateway.stop()
    }

    // MARK: Logs

    @Test func logsHaveOneLinePerSessionAndRejectionButNoTokensOrBodies() async throws {
        let capture = LogCapture()
        let gateway = try await TestGateway.startFromFile(logger: capture.logger(level: .debug))
        let token = try await gateway.token("alice")
        // The query-string token of clients that cannot set headers.
        let (alice, status, _) = try await WebSocketStream.connect(port: gateway.port, path: "/v1/ws?access_token=\(token)")
        #expect(status == 101)
        #expect(try await alice.nextFrame()["type"]?.stringValue == "hello")
        let secretBody = "the-body-must-not-be-logged"
        alice.send(sendFrame(to: .user("bob"), body: .string(secretBody), id: "a1"))
        #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")
        alice.send(sendFrame(to: .group("nowhere"), body: .string(secretBody), id: "a2"))
        #expect(try await alice.nextFrame()["code"]?.stringValue == "forbidden")
        let bob = try await LongPollClient.open(gateway, user: "bob")
        #expect(try await gateway.request(.POST, "/v1/lp/close?session=\(bob.session)", token: bob.token).status == 204)
        _ = try await gateway.request(.GET, "/admin/?token=\(Self.token)", admin: true)
        alice.close()

        #expect(await capture.wait { $0.contains("session closed") && $0.contains("gateway.transport=longpoll") })
        #expect(await capture.wait { $0.contains("session opened") && $0.contains("gateway.transport=websocket") })
        #expect(await capture.wait { $0.contains("session opened") && $0.contains("gateway.transport=longpoll") })
        #expect(await capture.wait { $0.contains("frame rejected") && $0.contains("forbidden") })
        // The WebSocket close is seen by the server after the client's close frame.
        let aliceSession = try #require(capture.lines.first { $0.contains("session opened") && $0.contains("websocket") })
            .split(separator: " ").first { $0.hasPrefix("gateway.session=") }.map { String($0.dropFirst("gateway.session=".count)) }
        let sessionID = try #require(aliceSession)
        #expect(await capture.wait { $0.contains("session closed") && $0.contains(sessionID) })
        #expect(capture.lines.filter { $0.contains("session opened") && $0.contains(sessionID) }.count == 1, "one line per open")

        await gateway.stop()
        for line in capture.lines {
            #expect(!line.contains(token), "a token in the log: \(line)")
            #expect(!line.contains(Self.token), "the admin token in the log: \(line)")
            #expect(!line.contains(secretBody), "a body in the log: \(line)")
        }
    }
}
