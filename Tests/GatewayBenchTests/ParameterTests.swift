import Testing

@testable import GatewayBench

@Suite("bench parameters")
struct ParameterTests {
    @Test func defaultsAreValid() throws {
        for scenario in BenchScenario.allCases {
            try BenchParameters(scenario: scenario).validate()
        }
    }
}
