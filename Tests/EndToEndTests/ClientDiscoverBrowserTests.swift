import Foundation
import GatewayCore
import GatewayTesting
import Testing

/// The browser client (`/client.js`) with `discover: true`, in headless Chromium
/// (scripts/check-client-discover.py), on three nodes of one PostgreSQL database: the page's
/// origin is node A, drained, so `/v1/discover` names another node; the client connects there,
/// reconnects through discover to the last node when its node is drained, does the same over
/// long-poll, and falls back to the page's origin when discover cannot be reached.
@Suite("Browser client: connects through /v1/discover", .serialized, .timeLimit(.minutes(2)))
struct ClientDiscoverBrowserTests {
    @Test(.enabled(if: PythonTools.hasBrowser || PythonTools.isCI, Comment(rawValue: PythonTools.missingBrowser)))
    func theClientConnectsToTheNodeDiscoverNamesAndFallsBackToItsOrigin() async throws {
        try #require(PythonTools.hasBrowser, Comment(rawValue: PythonTools.missingBrowser))
        guard let server = try PostgresTestServer.shared() else {
            try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
        }
        let url = try server.createDatabase()
        let ids = ["node-a", "node-b", "node-c"]
        var nodes = [try await TestGateway.start(extra: ClusterBusTests.node("node-a", url))]
        // B and C take the page's requests (long-poll, REST) from A's origin: allowed for CORS.
        let listen = """
            listen: { public: { host: 127.0.0.1, port: 0, allowed_origins: ["http://127.0.0.1:\(nodes[0].port)"] }, admin: { host: 127.0.0.1, port: 0, token: admin-test-token } }
            """
        for id in ids.dropFirst() {
            do {
                nodes.append(try await TestGateway.start(extra: ClusterBusTests.node(id, url) + "\n" + listen))
            } catch {
                await ClusterBusTests.stop(nodes)
                throw error
            }
        }
        #expect(try await nodes[0].request(.POST, "/admin/drain", token: "admin-test-token", admin: true).status == 200)
        let entry = "http://127.0.0.1:\(nodes[0].port)"
        var admins: JSONObject = [:]
        for (index, node) in nodes.enumerated() { admins[ids[index]] = .string("http://127.0.0.1:\(node.adminPort)") }
        let token = try await nodes[0].token("alice")
        let script = PythonTools.root.appendingPathComponent("scripts/check-client-discover.py").path
        let run = try await PythonTools.run([script, entry, token, JSONValue.object(admins).jsonText, "admin-test-token"], timeout: 100)
        await ClusterBusTests.stop(nodes)
        try #require(run.status == 0, "the browser check failed (exit \(run.status)):\n\(run.stderr)")
        let page = try #require(try JSONParser.parse(run.stdout).objectValue, "unexpected output: \(run.stdout)")

        let first = page["first"]?["node"]?.stringValue
        let second = page["after_drain"]?["node"]?.stringValue
        #expect(first == "node-b" || first == "node-c", "discover names a node that is not draining: \(String(describing: first))")
        #expect(page["first"]?["transport"]?.stringValue == "websocket")
        #expect(second != nil && second != first && second != "node-a", "after its node drained: \(String(describing: second))")
        let secondPort = nodes[ids.firstIndex(of: second ?? "") ?? 0].port
        #expect(page["after_drain"]?["base"]?.stringValue == "http://127.0.0.1:\(secondPort)")
        #expect(page["longpoll"]?["node"]?.stringValue == second, "long-poll goes to the one node left")
        #expect(page["longpoll"]?["transport"]?.stringValue == "longpoll")
        #expect(page["fallback"]?["node"]?.stringValue == "node-a", "discover unreachable: the page's origin")
        #expect(page["fallback"]?["base"]?.stringValue == entry)
    }
}
