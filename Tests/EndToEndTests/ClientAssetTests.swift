import Foundation
import GatewayConfig
import GatewayCore
import Testing

/// `GET /client.js`, `/client.d.ts` and the demo routes, over real HTTP.
@Suite("Browser client and demo routes")
struct ClientAssetTests {
    static func file(_ path: String) throws -> String {
        try String(contentsOf: PythonTools.root.appendingPathComponent(path), encoding: .utf8)
    }

    @Test func clientFilesAreServedFromTheBinaryAsInTheRepository() async throws {
        let gateway = try await TestGateway.start()
        let js = try await gateway.request(.GET, "/client.js")
        #expect(js.status == 200)
        #expect(js.headers["content-type"]?.hasPrefix("text/javascript") == true)
        // scripts/embed-public.sh regenerates the embedded copy; a stale one fails here.
        #expect(js.body == (try Self.file("Public/client.js")), "run scripts/embed-public.sh")
        #expect(js.body.contains("export class ChatClient"))
        let types = try await gateway.request(.GET, "/client.d.ts")
        #expect(types.status == 200)
        #expect(types.body == (try Self.file("Public/client.d.ts")), "run scripts/embed-public.sh")
        // Demo mode is off by default: no page, no tokens.
        #expect(try await gateway.request(.GET, "/").status == 404)
        #expect(try await gateway.request(.GET, "/demo.js").status == 404)
        #expect(try await gateway.request(.POST, "/demo/token", body: #"{"user":"alice"}"#).status == 404)
        await gateway.stop()
    }

    @Test func demoModeServesThePageAndMintsTokensTheGatewayAccepts() async throws {
        let gateway = try await TestGateway.start(extra: "demo: { enabled: true }")
        let page = try await gateway.request(.GET, "/")
        #expect(page.status == 200)
        #expect(page.body == (try Self.file("Public/demo/index.html")), "run scripts/embed-public.sh")
        #expect(page.headers["content-security-policy"]?.contains("script-src 'self'") == true)
        for (path, file) in [("/demo.js", "Public/demo/demo.js"), ("/demo.css", "Public/demo/demo.css")] {
            let asset = try await gateway.request(.GET, path)
            #expect(asset.status == 200)
            #expect(asset.body == (try Self.file(file)), "run scripts/embed-public.sh")
        }
        let minted = try await gateway.request(.POST, "/demo/token", body: #"{"user":"alice"}"#)
        #expect(minted.status == 200)
        #expect(minted.headers["cache-control"] == "no-store")
        let token = try #require(minted.json?["token"]?.stringValue)
        // The token signs alice in over long-poll.
        let open = try await gateway.request(.POST, "/v1/lp/open", token: token, body: "")
        #expect(open.status == 200)
        #expect(open.json?["hello"]?["user"]?.stringValue == "alice")
        // Bad names are refused with bad_frame.
        for body in [#"{"user":"no spaces"}"#, #"{}"#, "not json", #"{"user":""}"#] {
            let refused = try await gateway.request(.POST, "/demo/token", body: body)
            #expect(refused.status == 400, "\(body)")
            #expect(refused.json?["error"]?["code"]?.stringValue == "bad_frame")
        }
        await gateway.stop()
    }

    @Test func demoModeIsRefusedOnAPublicListenerUnlessAllowed() throws {
        let refused = """
            listen: { public: { host: 0.0.0.0, port: 0 } }
            demo: { enabled: true }
            pipeline:
              - stage: id
            """
        #expect {
            try ConfigLoader.load(text: refused, file: "demo.yaml", environment: [:])
        } throws: { error in
            let text = "\(error)"
            return text.contains("demo.yaml:2:") && text.contains("demo.enabled") && text.contains("allow_remote")
        }
        let allowed = refused.replacingOccurrences(of: "demo: { enabled: true }", with: "demo: { enabled: true, allow_remote: true }")
        let configuration = try ConfigLoader.load(text: allowed, file: "demo.yaml", environment: [:])
        #expect(configuration.demo.enabled && configuration.demo.allowRemote)
        let loopback = refused.replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
        #expect(try ConfigLoader.load(text: loopback, file: "demo.yaml", environment: [:]).demo.enabled)
        // Off by default.
        #expect(try ConfigLoader.load(text: "pipeline:\n  - stage: id\n", file: "d.yaml", environment: [:]).demo.enabled == false)
    }
}
