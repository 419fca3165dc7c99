import Foundation
import GatewayCore
import Testing

/// The dashboard (`GET /admin/`) in a real headless Chromium driven by Selenium
/// (scripts/check-dashboard.py): the page must show what `/admin/stats` says and draw its chart.
@Suite("Admin dashboard in a real browser")
struct AdminBrowserTests {
    @Test(.enabled(if: PythonTools.hasBrowser || PythonTools.isCI, Comment(rawValue: PythonTools.missingBrowser)))
    func dashboardShowsTheStatsAndDrawsItsChart() async throws {
        try #require(PythonTools.hasBrowser, Comment(rawValue: PythonTools.missingBrowser))
        let gateway = try await TestGateway.start()
        let (alice, _) = try await gateway.connect("alice")
        let (alicePhone, _) = try await gateway.connect("alice", device: "phone")
        let bob = try await LongPollClient.open(gateway, user: "bob")
        for n in 1...4 {
            alice.send(sendFrame(to: .user("bob"), body: .string("hello \(n)"), id: "a\(n)"))
            #expect(try await alice.nextFrame()["type"]?.stringValue == "ack")
            #expect(try await alicePhone.nextFrame()["type"]?.stringValue == "message")
        }
        alice.send(sendFrame(to: .group("nowhere"), body: "x", id: "a5"))
        #expect(try await alice.nextFrame()["code"]?.stringValue == "forbidden")
        var received = 0
        while received < 4 {
            received += try await bob.poll(timeoutMs: 2000).filter { $0["type"]?.stringValue == "message" }.count
        }
        // alice's sends are counted after their acks went out (see `stats(until:)`): the page
        // and the stats below must show the final figures.
        #expect(try await gateway.stats { $0["messages_accepted"]?.int64Value == 4 }["messages_accepted"]?.int64Value == 4)

        let screenshot = PythonTools.root.appendingPathComponent("artifacts/dashboard.png")
        try? FileManager.default.removeItem(at: screenshot)
        let url = "http://127.0.0.1:\(gateway.adminPort)/admin/?token=\(AdminTests.token)"
        let script = PythonTools.root.appendingPathComponent("scripts/check-dashboard.py").path
        let run = try await PythonTools.run([script, url, screenshot.path, "3"], timeout: 120)
        try #require(run.status == 0, "the browser check failed (exit \(run.status)):\n\(run.stderr)")
        let page = try #require(try JSONParser.parse(run.stdout).objectValue, "unexpected output: \(run.stdout)")
        let stats = try #require(try await gateway.request(.GET, "/admin/stats", token: AdminTests.token, admin: true).json)

        let figures = try #require(page["figures"]?.objectValue)
        func shown(_ id: String) -> Int64? { figures[id]?.stringValue.flatMap { Int64($0) } }
        #expect(shown("connections-websocket") == 2)
        #expect(shown("connections-websocket") == stats["connections"]?["websocket"]?.int64Value)
        #expect(shown("connections-longpoll") == 1)
        #expect(shown("connections-longpoll") == stats["connections"]?["longpoll"]?.int64Value)
        #expect(shown("users-online") == 2)
        #expect(shown("users-online") == stats["users_online"]?.int64Value)
        #expect(shown("messages-accepted") == 4)
        #expect(shown("messages-accepted") == stats["messages_accepted"]?.int64Value)
        #expect(shown("messages-rejected") == stats["messages_rejected"]?.int64Value)
        #expect(shown("frames-in") == stats["frames_in"]?.int64Value)
        #expect(shown("frames-out") == stats["frames_out"]?.int64Value)
        #expect(shown("store-messages") == stats["store"]?["messages"]?.int64Value)
        #expect(shown("store-inbox-entries") == stats["store"]?["inbox_entries"]?.int64Value)
        #expect((shown("store-bytes") ?? 0) > 0)
        #expect(figures["messages-per-second"]?.stringValue.flatMap(Double.init) != nil)

        let stages = try #require(page["stages"]?.arrayValue)
        #expect(stages.compactMap { $0["name"]?.stringValue } == stats["stages"]?.arrayValue?.compactMap { $0["name"]?.stringValue })
        #expect(stages.first { $0["name"]?.stringValue == "auth" }?["processed"]?.int64Value == 5)
        #expect(stages.allSatisfy { ($0["p50_us"]?.int64Value ?? 0) > 0 })

        // The chart has drawn its series, and the token left the address bar.
        #expect((page["points"]?.int64Value ?? 0) >= 2)
        #expect((page["chart_pixels"]?.int64Value ?? 0) > 50, "the chart's lines are on the canvas")
        #expect(page["status"]?.stringValue == "live")
        #expect(page["url"]?.stringValue?.contains("token=") == false)
        #expect(FileManager.default.fileExists(atPath: screenshot.path), "screenshot saved under artifacts/")

        alice.close()
        alicePhone.close()
        await gateway.stop()
    }

    @Test(.enabled(if: PythonTools.hasBrowser || PythonTools.isCI, Comment(rawValue: PythonTools.missingBrowser)))
    func dashboardWithAWrongTokenShowsNoFigures() async throws {
        try #require(PythonTools.hasBrowser, Comment(rawValue: PythonTools.missingBrowser))
        let gateway = try await TestGateway.start()
        let url = "http://127.0.0.1:\(gateway.adminPort)/admin/?token=wrong"
        let screenshot = PythonTools.root.appendingPathComponent("artifacts/dashboard-wrong-token.png")
        let script = PythonTools.root.appendingPathComponent("scripts/check-dashboard.py").path
        let run = try await PythonTools.run([script, url, screenshot.path, "1"], timeout: 120)
        // The page never renders figures: the check times out and reports the page's status.
        #expect(run.status == 2)
        #expect(run.stderr.contains("admin token needed") || run.stderr.contains("wrong admin token"), "\(run.stderr)")
        await gateway.stop()
    }
}
