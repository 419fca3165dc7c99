import GatewayConfig
import GatewayCore
import Testing

@Suite("store: settings")
struct StoreConfigTests {
    /// The pipeline, with media declared on storage every node mounts (fs is refused on
    /// PostgreSQL otherwise).
    static let pipeline = "media: { shared_dir: true }\n" + MediaConfigTests.pipeline

    @Test func postgresTimeoutsAndPool() throws {
        let defaults = try ConfigLoader.load(text: Self.pipeline, file: "config.yaml", environment: [:])
        #expect(defaults.store.timeoutMs == 5000)
        #expect(defaults.store.poolSize == 16)
        let yaml = "store: { kind: postgres, url: \"postgres://chat@db/chat\", pool_size: 4, timeout_ms: 30000 }\n" + Self.pipeline
        let config = try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:])
        #expect(config.store.timeoutMs == 30000)
        #expect(config.store.poolSize == 4)
    }

    @Test func commitsInFlight() throws {
        let defaults = try ConfigLoader.load(text: Self.pipeline, file: "config.yaml", environment: [:])
        #expect(defaults.store.commitsInFlight == 2)
        let yaml = "store: { kind: postgres, url: \"postgres://chat@db/chat\", commits_in_flight: 1 }\n" + Self.pipeline
        #expect(try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:]).store.commitsInFlight == 1)
    }

    @Test(arguments: [
        ("store: { kind: postgres, url: \"postgres://chat@db/chat\", timeout_ms: 50 }", "store.timeout_ms: must be 100...600000 (was 50)"),
        ("store: { kind: postgres, url: \"postgres://chat@db/chat\", pool_size: 0 }", "store.pool_size: must be 1...1000 (was 0)"),
        ("store: { kind: postgres, url: \"postgres://chat@db/chat\", commits_in_flight: 0 }", "store.commits_in_flight: must be 1...8 (was 0)"),
        ("store: { kind: postgres, url: \"postgres://chat@db/chat\", commits_in_flight: 9 }", "store.commits_in_flight: must be 1...8 (was 9)"),
    ])
    func invalid(line: String, expected: String) throws {
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(text: line + "\n" + Self.pipeline, file: "config.yaml", environment: [:])
        }
        #expect(error.description.contains(expected), "\(error.description)")
    }
}
