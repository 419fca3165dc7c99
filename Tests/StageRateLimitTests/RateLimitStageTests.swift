import Foundation
import GatewayCore
import GatewayTesting
@testable import StageRateLimit
import Testing

@Suite("ratelimit: token buckets per user and per IP")
struct RateLimitStageTests {
    let harness = StageHarness()

    func stage(_ settings: String) throws -> any Stage {
        try harness.build(RateLimitStage.factory, settings: settings)
    }

    func outcomes(_ stage: any Stage, user: String = "alice", ip: String? = "192.0.2.1", count: Int) async throws -> [StageOutcome] {
        var outcomes: [StageOutcome] = []
        for n in 0..<count {
            var envelope = harness.send(.string("m\(n)"), from: user, clientMsgID: "c\(n)", remoteAddress: ip)
            outcomes.append(try await harness.run(stage, &envelope))
        }
        return outcomes
    }

    @Test func aBurstOverTheLimitIsRateLimitedWithARetryHint() async throws {
        let stage = try stage(#"{"per_user": {"rate": 2, "burst": 3}}"#)
        let results = try await outcomes(stage, count: 5)
        #expect(results.prefix(3).allSatisfy { $0.isContinue })
        for result in results.dropFirst(3) {
            let error = try #require(result.rejection)
            #expect(error.code == .rateLimited)
            // Empty bucket, 2 tokens per second: the next token is 500 ms away.
            #expect(error.retryAfterMs == 500)
        }
    }

    @Test func anotherUserIsUnaffected() async throws {
        let stage = try stage(#"{"per_user": {"rate": 1, "burst": 2}}"#)
        let alice = try await outcomes(stage, user: "alice", count: 4)
        #expect(alice.filter { $0.isContinue }.count == 2)
        let bob = try await outcomes(stage, user: "bob", count: 2)
        #expect(bob.allSatisfy { $0.isContinue })
    }

    @Test func tokensRefillWithTheClock() async throws {
        let stage = try stage(#"{"per_user": {"rate": 0.5, "burst": 2}}"#)
        #expect(try await outcomes(stage, count: 3).map { $0.isContinue } == [true, true, false])
        // 0.5 tokens per second: one token after 2 s, not before.
        harness.clock.advance(by: 1999)
        let early = try await outcomes(stage, count: 1)
        #expect(early.first?.rejection?.retryAfterMs == 1)
        harness.clock.advance(by: 1)
        #expect(try await outcomes(stage, count: 2).map { $0.isContinue } == [true, false])
        // A long quiet spell refills up to the burst, no further.
        harness.clock.advance(by: 3_600_000)
        #expect(try await outcomes(stage, count: 3).map { $0.isContinue } == [true, true, false])
    }

    @Test func aClockThatStepsBackRefillsNothing() async throws {
        let stage = try stage(#"{"per_user": {"rate": 1, "burst": 1}}"#)
        #expect(try await outcomes(stage, count: 1).allSatisfy { $0.isContinue })
        harness.clock.advance(by: -60_000)
        #expect(try await outcomes(stage, count: 1).first?.rejection?.retryAfterMs == 1000)
        harness.clock.advance(by: 1000)
        #expect(try await outcomes(stage, count: 1).allSatisfy { $0.isContinue })
    }

    @Test func perIPLimitsEveryUserBehindOneAddress() async throws {
        let stage = try stage(#"{"per_user": {"rate": 100, "burst": 100}, "per_ip": {"rate": 1, "burst": 2}}"#)
        let first = try await outcomes(stage, user: "u1", ip: "198.51.100.7", count: 1)
        let second = try await outcomes(stage, user: "u2", ip: "198.51.100.7", count: 1)
        let third = try await outcomes(stage, user: "u3", ip: "198.51.100.7", count: 1)
        #expect(first[0].isContinue && second[0].isContinue)
        #expect(third[0].rejection?.code == .rateLimited)
        // Another address, and frames without one (in-process callers), are not held back.
        #expect(try await outcomes(stage, user: "u4", ip: "198.51.100.8", count: 1)[0].isContinue)
        #expect(try await outcomes(stage, user: "u5", ip: nil, count: 3).allSatisfy { $0.isContinue })
    }

    @Test func aRefusedFrameTakesNoTokenFromTheOtherBucket() async throws {
        let settings = RateLimitSettings(perUser: .init(rate: 1, burst: 5), perIP: .init(rate: 1, burst: 1))
        let stage = RateLimitStage(settings: settings)
        _ = try await outcomes(stage, user: "alice", ip: "203.0.113.1", count: 1)
        #expect(stage.tokens(user: "alice") == 4)
        // The IP bucket is empty: alice is refused and keeps her own tokens.
        #expect(try await outcomes(stage, user: "alice", ip: "203.0.113.1", count: 3).allSatisfy { $0.rejection != nil })
        #expect(stage.tokens(user: "alice") == 4)
    }

    @Test func typingSharesTheBucketWhenTheEntryListsIt() async throws {
        let stage = try harness.build(RateLimitStage.factory, settings: #"{"per_user": {"rate": 1, "burst": 2}}"#, on: [.send, .typing])
        var typing = harness.typing()
        #expect(try await harness.run(stage, &typing).isContinue)
        var typingAgain = harness.typing()
        #expect(try await harness.run(stage, &typingAgain).isContinue)
        #expect(try await outcomes(stage, count: 1)[0].rejection?.code == .rateLimited)
    }

    @Test func memoryStaysBoundedWith100kDistinctUsers() async throws {
        let stage = RateLimitStage(settings: RateLimitSettings(perUser: .init(rate: 1, burst: 1), perIP: .init(rate: 1_000_000, burst: 1_000_000), maxTracked: 10_000))
        let now = harness.clock.nowMillis()
        for n in 0..<100_000 {
            // Every user new, from a handful of addresses.
            _ = stage.admit(user: "user-\(n)", ip: "10.0.0.\(n % 8)", now: now + Int64(n / 1000))
            if n % 1000 == 999 { #expect(stage.trackedCount <= 10_000) }
        }
        #expect(stage.trackedCount == 10_000)
        // The most recent users are tracked (their buckets are spent); the oldest were forgotten.
        #expect(stage.tokens(user: "user-99999") == 0)
        #expect(stage.tokens(user: "user-0") == nil)
    }

    @Test func theDefaultBoundHolds() async throws {
        let stage = try #require(try stage(#"{"per_user": {"rate": 1}}"#) as? RateLimitStage)
        #expect(stage.settings.maxTracked == 100_000)
        #expect(stage.settings.perUser?.burst == 1)
        for n in 0..<120_000 {
            _ = stage.admit(user: "u\(n)", ip: nil, now: 0)
        }
        #expect(stage.trackedCount == 100_000)
    }

    // MARK: Settings

    /// Each problem as the config loader reports it (`StageSettings`: the loader's own decoder),
    /// at the key's dotted path.
    @Test(arguments: [
        (#"{}"#, "settings", "set 'per_user', 'per_ip' or both (for example per_user: { rate: 5, burst: 10 })"),
        (#"{"per_user": {"rate": 0}}"#, "settings.per_user.rate", "must be a number of tokens per second above 0 and at most 1000000 (was 0.0)"),
        (#"{"per_ip": {"rate": 1, "burst": 0}}"#, "settings.per_ip.burst", "must be 1...1000000 (was 0)"),
        (#"{"per_user": {"burst": 3}}"#, "settings.per_user", "missing required key 'rate'"),
        (#"{"per_user": {"rate": 1}, "max_tracked": 10}"#, "settings.max_tracked", "must be 100...10000000 (was 10)"),
        (#"{"per_user": {"rate": 1, "brust": 2}}"#, "settings.per_user.brust", "unknown key 'brust' (did you mean 'burst'?)"),
    ])
    func invalidSettingsNameTheirKey(yaml: String, path: String, message: String) {
        #expect(StageSettings.problems(RateLimitSettings.self, in: yaml) == [.init(path: path, message: message)])
    }

    @Test func fractionalRatesAndDefaults() throws {
        let settings = try StageSettings.decode(RateLimitSettings.self, from: #"{"per_ip": {"rate": 2.5}}"#)
        #expect(settings.perIP == .init(rate: 2.5, burst: 3))
        #expect(settings.perUser == nil)
        #expect(settings.maxTracked == 100_000)
    }
}
