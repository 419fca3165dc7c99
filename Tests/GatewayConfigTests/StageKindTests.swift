import GatewayConfig
import GatewayCore
import Testing

@Suite("Unknown stage kinds")
struct StageKindTests {
    @Test func anUnknownKindFailsAtItsLine() throws {
        let yaml = """
            pipeline:
              - stage: auth
                settings: { hs256_secret: "0123456789abcdef0123456789abcdef" }
              - stage: persits
            """
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:], stageKinds: ["auth", "id", "persist", "fanout"])
        }
        #expect(error.description.hasPrefix("config.yaml:4:12: error: pipeline[1].stage: unknown stage kind 'persits' (did you mean 'persist'?)"))
        // Without the registry's kinds the loader cannot know; the pipeline build reports it then.
        _ = try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:])
    }
}
