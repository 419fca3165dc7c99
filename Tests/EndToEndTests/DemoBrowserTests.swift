import Foundation
import GatewayCore
import Testing

/// The demo page (`GET /` in demo mode) on `/client.js`, in two real headless Chromium
/// sessions driven by Selenium (scripts/check-demo-chat.py): alice on a WebSocket, bob forced
/// onto long-poll. Screenshots go to artifacts/demo/ (git-ignored).
@Suite("Demo chat in a real browser")
struct DemoBrowserTests {
    @Test(.enabled(if: PythonTools.hasBrowser || PythonTools.isCI, Comment(rawValue: PythonTools.missingBrowser)))
    func twoPeopleChatOnTwoTransports() async throws {
        try #require(PythonTools.hasBrowser, Comment(rawValue: PythonTools.missingBrowser))
        // With the media stage, so the image attachment gets its thumbnail.
        let gateway = try await TestGateway.start(extra: "demo: { enabled: true }", pipeline: MediaTests.pipeline)
        let shots = PythonTools.root.appendingPathComponent("artifacts/demo")
        try? FileManager.default.removeItem(at: shots)
        let script = PythonTools.root.appendingPathComponent("scripts/check-demo-chat.py").path
        let run = try await PythonTools.run([script, "http://127.0.0.1:\(gateway.port)", shots.path], timeout: 240)
        try #require(run.status == 0, "the browser check failed (exit \(run.status)):\n\(run.stderr)")
        let page = try #require(try JSONParser.parse(run.stdout).objectValue, "unexpected output: \(run.stdout)")

        #expect(page["alice_transport"]?.stringValue == "websocket")
        #expect(page["bob_transport"]?.stringValue == "longpoll")
        #expect(page["bob_transport_after_return"]?.stringValue == "longpoll")
        #expect(page["bob_saw"]?.arrayValue?.compactMap(\.stringValue) == ["hello bob"])
        #expect(page["read_receipt"]?.stringValue == "read")
        #expect(page["typing"]?.stringValue?.contains("bob is typing") == true)
        #expect(page["presence"]?.stringValue == "online")
        #expect(page["alice_order"]?.arrayValue?.compactMap(\.stringValue) == ["hello bob", "hi alice"], "lines in id order")
        #expect(page["group"]?["name"]?.stringValue == "team")
        #expect(page["group"]?["bob_saw"]?.arrayValue?.compactMap(\.stringValue) == ["group hello"])
        // bob caught up through sync: the two messages arrived while he was away, once each.
        let after = page["bob_after_return"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(after == ["hello bob", "hi alice", "while you were away 1", "while you were away 2"])
        #expect(page["bob_unread_after_return"]?.int64Value == 2)
        #expect((page["bob_synced_seq"]?.int64Value ?? 0) >= 5)
        if let skipped = page["image"]?["skipped"]?.stringValue {
            // The media stage arrives with another branch; until then the reason is recorded.
            print("image attachment check skipped: \(skipped)")
            #expect(page["image"]?["page_says"]?.stringValue?.contains("no media upload") == true)
        } else {
            #expect((page["image"]?["thumbnail_width"]?.int64Value ?? 0) > 0)
        }
        // History scroll-back: the newest 30, then the 5 older ones above them.
        #expect(page["history"]?["first_page"]?.arrayValue?.compactMap(\.stringValue) == (5..<35).map { "c\($0)" })
        #expect(page["history"]?["after_older"]?.arrayValue?.compactMap(\.stringValue) == (0..<35).map { "c\($0)" })
        #expect(page["history"]?["older_button_after"]?.boolValue == false, "no more to load")
        for name in ["alice.png", "bob.png", "alice-typing.png"] {
            #expect(FileManager.default.fileExists(atPath: shots.appendingPathComponent(name).path), "\(name) saved under artifacts/demo/")
        }

        // What the pages showed is what the store holds: bob's inbox has the four messages.
        let token = try await gateway.token("bob")
        let sync = try await gateway.request(.GET, "/v1/sync?since=0", token: token)
        let texts = sync.json?["messages"]?.arrayValue?.compactMap { $0["body"]?["text"]?.stringValue } ?? []
        #expect(Array(texts.prefix(5)) == ["hello bob", "hi alice", "group hello", "while you were away 1", "while you were away 2"])
        await gateway.stop()
    }

    /// The page's client across a gateway killed with SIGKILL and restarted: what alice sent
    /// before, during and after the outage is in bob's inbox once each, in order.
    @Test(
        .enabled(if: PythonTools.hasBrowser || PythonTools.isCI, Comment(rawValue: PythonTools.missingBrowser)),
        arguments: ["websocket", "longpoll"])
    func sendsSurviveAGatewayKilledMidChat(transport: String) async throws {
        try #require(PythonTools.hasBrowser, Comment(rawValue: PythonTools.missingBrowser))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-demo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("config.yaml").path
        let shot = PythonTools.root.appendingPathComponent("artifacts/demo/restart-\(transport).png")
        let script = PythonTools.root.appendingPathComponent("scripts/check-demo-restart.py").path
        var run = PythonTools.Result(status: -1, stdout: "", stderr: "")
        // The port was free a moment ago; another test may take it in between: then another one.
        for _ in 0..<3 {
            let port = try await ChatClientTests.freePort()
            try Self.restartConfig(directory: directory, port: port).write(toFile: config, atomically: true, encoding: .utf8)
            run = try await PythonTools.run([script, ChildGateway.binary.path, config, String(port), transport, shot.path], timeout: 180)
            if !run.stderr.contains("did not start listening") { break }
        }
        try #require(run.status == 0, "the browser check failed (exit \(run.status)):\n\(run.stderr)")
        let page = try #require(try JSONParser.parse(run.stdout).objectValue, "unexpected output: \(run.stdout)")
        #expect(page["pending_while_down"]?.int64Value == 5, "the five sends made while the gateway was down waited")
        #expect(page["reconnected_transport"]?.stringValue == transport)
        #expect(page["states"]?.arrayValue?.allSatisfy { $0.stringValue == "sent" || $0.stringValue == "read" } == true)
        #expect(page["texts"]?.arrayValue?.compactMap(\.stringValue) == (0..<10).map { "m\($0)" })
    }

    /// bob's page behind a proxy that drops the frame of one message: the client sees the seq
    /// gap and syncs, so the page shows every message in order.
    @Test(.enabled(if: PythonTools.hasBrowser || PythonTools.isCI, Comment(rawValue: PythonTools.missingBrowser)))
    func aDroppedFrameIsRecoveredBySync() async throws {
        try #require(PythonTools.hasBrowser, Comment(rawValue: PythonTools.missingBrowser))
        let gateway = try await TestGateway.start(extra: "demo: { enabled: true }")
        let proxy = try await FrameDroppingProxy.start(upstreamPort: gateway.port, dropping: "\"text\":\"two\"")
        let shot = PythonTools.root.appendingPathComponent("artifacts/demo/gap-bob.png")
        let script = PythonTools.root.appendingPathComponent("scripts/check-demo-gap.py").path
        let run = try await PythonTools.run(
            [script, "http://127.0.0.1:\(gateway.port)", "http://127.0.0.1:\(proxy.port)", shot.path], timeout: 180)
        try #require(run.status == 0, "the browser check failed (exit \(run.status)):\n\(run.stderr)")
        let page = try #require(try JSONParser.parse(run.stdout).objectValue, "unexpected output: \(run.stdout)")
        #expect(proxy.dropped == 1, "the proxy dropped the live frame of 'two'")
        #expect(page["bob_lines"]?.arrayValue?.compactMap(\.stringValue) == ["one", "two", "three"])
        await proxy.stop()
        await gateway.stop()
    }

    /// Behind a proxy that cannot carry WebSockets, the page (transport "auto") falls back to
    /// long-poll, and its badge says so.
    @Test(.enabled(if: PythonTools.hasBrowser || PythonTools.isCI, Comment(rawValue: PythonTools.missingBrowser)))
    func thePageFallsBackToLongPollWhenTheWebSocketCannotOpen() async throws {
        try #require(PythonTools.hasBrowser, Comment(rawValue: PythonTools.missingBrowser))
        let gateway = try await TestGateway.start(extra: "demo: { enabled: true }")
        let proxy = try await FrameDroppingProxy.start(upstreamPort: gateway.port, dropping: nil)
        let shot = PythonTools.root.appendingPathComponent("artifacts/demo/fallback-bob.png")
        let script = PythonTools.root.appendingPathComponent("scripts/check-demo-gap.py").path
        let run = try await PythonTools.run([script, "--fallback", "http://127.0.0.1:\(proxy.port)", shot.path], timeout: 120)
        try #require(run.status == 0, "the browser check failed (exit \(run.status)):\n\(run.stderr)")
        let page = try #require(try JSONParser.parse(run.stdout).objectValue, "unexpected output: \(run.stdout)")
        #expect(page["transport"]?.stringValue == "longpoll")
        #expect(page["sent"]?.stringValue == "sent")
        await proxy.stop()
        await gateway.stop()
    }

    static func restartConfig(directory: URL, port: Int) -> String {
        """
            listen:
              public: { host: 127.0.0.1, port: \(port) }
              admin: { host: 127.0.0.1, port: 0, token: admin-test-token }
            store: { kind: sqlite, path: "\(directory.path)/chat.db", durability: full }
            demo: { enabled: true }
            pipeline:
              - stage: auth
                settings: { hs256_secret: "\(ChatClientTests.secret)" }
              - stage: id
              - stage: persist
              - stage: fanout
            """
    }
}
