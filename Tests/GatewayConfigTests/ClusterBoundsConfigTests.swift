import GatewayConfig
import GatewayCore
import Testing

/// `cluster.bus_queue` and `cluster.relay_max_bytes`: defaults, accepted values, and ranges
/// refused at the key with the range in the message.
@Suite("cluster: bounds of the bus queue and the long-poll relay", .timeLimit(.minutes(1)))
struct ClusterBoundsConfigTests {
    static let pipeline = """
        pipeline:
          - stage: auth
            settings: { hs256_secret: "0123456789abcdef0123456789abcdef" }
        """

    @Test func defaultsAndAcceptedValues() throws {
        let plain = try ConfigLoader.load(text: Self.pipeline, file: "c.yaml", environment: [:])
        #expect(plain.cluster.busQueue == 65_536)
        #expect(plain.cluster.relayMaxBytes == 64 << 20)
        let set = try ConfigLoader.load(
            text: "cluster: { bus_queue: 4096, relay_max_bytes: 2097152 }\n" + Self.pipeline, file: "c.yaml", environment: [:])
        #expect(set.cluster.busQueue == 4096)
        #expect(set.cluster.relayMaxBytes == 2_097_152)
    }

    @Test func outOfRangeValuesAreRefusedAtTheirKey() throws {
        for (line, key, range) in [
            ("cluster: { bus_queue: 10 }", "cluster.bus_queue", "1024...16777216"),
            ("cluster: { bus_queue: 16777217 }", "cluster.bus_queue", "1024...16777216"),
            ("cluster: { relay_max_bytes: 1000 }", "cluster.relay_max_bytes", "1048576...1073741824"),
        ] {
            let error = try #require(throws: ConfigError.self) {
                try ConfigLoader.load(text: line + "\n" + Self.pipeline, file: "c.yaml", environment: [:])
            }
            #expect(error.description.contains("error: \(key)"), "\(error.description)")
            #expect(error.description.contains(range), "\(error.description)")
        }
        let unknown = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(text: "cluster: { bus_queues: 4096 }\n" + Self.pipeline, file: "c.yaml", environment: [:])
        }
        #expect(unknown.description.contains("bus_queues"), "\(unknown.description)")
    }
}
