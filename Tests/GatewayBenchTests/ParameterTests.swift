import ArgumentParser
import Testing

@testable import GatewayBench

@Suite("bench parameters")
struct ParameterTests {
    @Test func defaultsAreValidAndMatchThePeerWorkloads() throws {
        for scenario in BenchScenario.allCases {
            try BenchParameters(scenario: scenario).validate()
        }
        let relay = BenchParameters(scenario: .relay)
        #expect(relay.effectivePairs == 100)
        #expect(relay.effectiveWindow == 10)
        #expect(relay.effectiveRate == nil)
        #expect(relay.duration == 10)
        #expect(relay.warmup == 3)
        #expect(relay.bodyBytes == 100)
        let fanout = BenchParameters(scenario: .fanout)
        #expect(fanout.effectiveGroups == 10)
        #expect(fanout.effectiveGroupSize == 20)
        #expect(BenchParameters(scenario: .idle).effectiveConnections == 10_000)
        #expect(BenchParameters(scenario: .storm).effectiveRate == 1_000)
    }

    /// Each bad value is refused with a message naming the option, the range and the value.
    @Test(arguments: [
        (["relay", "--pairs", "0"], "--pairs must be 1...50000 (was 0)"),
        (["relay", "--window=-3"], "--window must be 1...10000 (was -3)"),
        (["relay", "--rate", "0"], "--rate must be > 0 msgs/s"),
        (["relay", "--duration", "0"], "--duration must be > 0"),
        (["relay", "--warmup=-1"], "--warmup must be 0...600 seconds (was -1.0)"),
        (["fanout", "--group-size", "1"], "--group-size must be 2...500 (was 1)"),
        (["fanout", "--groups", "0"], "--groups must be 1...10000 (was 0)"),
        (["fanout", "--fanout-on-read", "--group-size", "2"], "--fanout-on-read needs groups of more than 2 members (--group-size was 2)"),
        (["relay", "--fanout-on-read"], "--fanout-on-read does not apply to 'relay' (it is for fanout)"),
        (["idle", "--connections", "0"], "--connections must be 1...1000000 (was 0)"),
        (["storm", "--connections", "1"], "--connections must be 2...1000000 (was 1)"),
        (["relay", "--body-bytes", "10"], "--body-bytes must be 64...60000 (was 10)"),
        (["relay", "--runs", "0"], "--runs must be 1...20 (was 0)"),
        (["idle", "--pairs", "5"], "--pairs does not apply to 'idle' (it is for relay, longpoll, durable, burst)"),
        (["relay", "--groups", "5"], "--groups does not apply to 'relay' (it is for fanout)"),
        (["idle", "--rate", "5"], "--rate does not apply to 'idle'"),
        (["relay", "--url", "http://x"], "--url must look like ws://HOST:PORT/v1/ws (was http://x)"),
        (["relay", "--url", "ws://127.0.0.1:8080/v1/ws"], "--url needs --jwt-secret"),
        (["storm", "--url", "ws://127.0.0.1:8080/v1/ws", "--jwt-secret", "0123456789abcdef0123456789abcdef"], "storm restarts the gateway"),
        (["durable", "--url", "ws://127.0.0.1:8080/v1/ws", "--jwt-secret", "0123456789abcdef0123456789abcdef"], "durable changes the gateway's store"),
        (["relay", "--jwt-secret", "0123456789abcdef0123456789abcdef"], "--jwt-secret is for --url"),
        (["relay", "--url", "ws://127.0.0.1:8080/v1/ws", "--jwt-secret", "short"], "--jwt-secret must be at least 32 bytes (was 5)"),
        (["relay", "--binary", "/nonexistent/chatgate"], "--binary /nonexistent/chatgate is not an executable file"),
        (["fanout", "--postgres"], "--postgres applies to 'relay' only (was 'fanout')"),
        (["relay", "--database-url", "postgres://u@h/db"], "--database-url is for --postgres"),
        (["relay", "--postgres", "--database-url", "mysql://h/db"], "--database-url must be a postgres:// URL"),
        (["relay", "--commits-in-flight", "2"], "--commits-in-flight is for --postgres"),
        (["relay", "--postgres", "--commits-in-flight", "9"], "--commits-in-flight must be 1...8 (was 9)"),
        (["relay", "--postgres", "--url", "ws://127.0.0.1:8080/v1/ws", "--jwt-secret", "0123456789abcdef0123456789abcdef"], "--postgres starts its own gateways"),
    ])
    func badValuesAreRejectedWithAClearMessage(arguments: [String], message: String) throws {
        do {
            _ = try BenchCommand.parse(arguments)
            Issue.record("accepted \(arguments)")
        } catch {
            let text = BenchCommand.message(for: error)
            #expect(text.contains(message), "\(arguments): \(text)")
        }
    }

    @Test func unknownScenarioIsRejected() {
        #expect(throws: (any Error).self) { try BenchCommand.parse(["chat"]) }
        #expect(throws: (any Error).self) { try BenchCommand.parse([]) }
    }

    @Test func optionsReachTheParameters() throws {
        let command = try BenchCommand.parse([
            "fanout", "--groups", "3", "--group-size", "4", "--window", "2", "--duration", "1.5", "--warmup", "0", "--no-taskset",
            "--json", "/tmp/x.json", "--runs", "3",
        ])
        let p = try command.parameters()
        #expect(p.scenario == .fanout)
        #expect(p.effectiveGroups == 3)
        #expect(p.effectiveGroupSize == 4)
        #expect(p.effectiveWindow == 2)
        #expect(p.duration == 1.5)
        #expect(p.warmup == 0)
        #expect(p.taskset == false)
        #expect(p.jsonPath == "/tmp/x.json")
        #expect(p.runs == 3)
        let url = try BenchCommand.parse([
            "relay", "--url", "ws://10.0.0.5:8080/v1/ws", "--jwt-secret", "0123456789abcdef0123456789abcdef",
        ]).parameters()
        #expect(url.url.flatMap(TargetURL.init) == TargetURL(host: "10.0.0.5", port: 8080, path: "/v1/ws"))
    }

    @Test func hiddenBaselineServerNeedsNoScenario() throws {
        let command = try BenchCommand.parse(["--serve-baseline", "--port", "0"])
        #expect(command.serveBaseline)
    }
}
