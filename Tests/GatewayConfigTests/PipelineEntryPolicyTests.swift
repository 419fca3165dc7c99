import GatewayConfig
import GatewayCore
import Testing

@Suite("pipeline entries: timeout_ms and on_error", .timeLimit(.minutes(1)))
struct PipelineEntryPolicyTests {
    static func config(_ entry: String) -> String {
        """
        pipeline:
          - stage: auth
            settings: { hs256_secret: "0123456789abcdef0123456789abcdef" }
          - stage: webhook
        \(entry)
            settings: { url: "http://127.0.0.1:9/" }
        """
    }

    @Test func bothKeysAreRead() throws {
        let configuration = try loadConfig(Self.config("    timeout_ms: 250\n    on_error: continue")).get()
        #expect(configuration.pipeline[1].timeoutMs == 250)
        #expect(configuration.pipeline[1].onError == .continue)
        #expect(configuration.pipeline[0].timeoutMs == nil)
        #expect(configuration.pipeline[0].onError == nil)
    }

    @Test(arguments: [
        ("    timeout_ms: 0", "pipeline[1].timeout_ms: must be 1...600000 (was 0)"),
        ("    timeout_ms: 600001", "pipeline[1].timeout_ms: must be 1...600000 (was 600001)"),
        ("    on_error: drop", "pipeline[1].on_error: must be reject or continue (was 'drop')"),
    ])
    func badValuesNameTheirLine(entry: String, message: String) throws {
        let error = try #require(loadError(Self.config(entry)))
        #expect(error.description.contains("c.yaml:5:"), "\(error)")
        #expect(error.description.contains(message), "\(error)")
    }
}
