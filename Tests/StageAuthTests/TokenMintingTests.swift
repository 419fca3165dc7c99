import GatewayCore
import GatewayTesting
import StageAuth
import Testing

@Suite("AuthStageFactory.mintHS256")
struct TokenMintingTests {
    @Test func mintedTokenIsAccepted() async throws {
        let clock = TestClock()
        let settings = Fixtures.hs256Settings(issuer: "chatgate", audience: "chat")
        let token = try await AuthStageFactory.mintHS256(settings: settings, user: "alice", ttlSeconds: 3600, now: clock.nowMillis())
        let identity = try await Fixtures.stage(settings, clock: clock).authenticate(token: token)
        #expect(identity == Identity(user: "alice", expiresAt: clock.nowMillis() + 3_600_000))
    }

    @Test func mintedTokenExpires() async throws {
        let clock = TestClock()
        let settings = Fixtures.hs256Settings(leeway: 0)
        let token = try await AuthStageFactory.mintHS256(
            secret: Fixtures.hs256Secret, user: "bob", ttlSeconds: 60, now: clock.nowMillis(), issuer: nil, audience: nil)
        clock.advance(by: 60_000)
        #expect(await rejection(try Fixtures.stage(settings, clock: clock), token)?.code == .tokenExpired)
    }

    @Test func refusesWhatWouldMakeABadToken() async {
        let now = TestClock().nowMillis()
        await #expect(throws: AuthStageFactory.MintingError.self) {
            try await AuthStageFactory.mintHS256(secret: "short", user: "alice", ttlSeconds: 60, now: now, issuer: nil, audience: nil)
        }
        await #expect(throws: AuthStageFactory.MintingError.self) {
            try await AuthStageFactory.mintHS256(
                secret: Fixtures.hs256Secret, user: "not valid", ttlSeconds: 60, now: now, issuer: nil, audience: nil)
        }
        await #expect(throws: AuthStageFactory.MintingError.self) {
            try await AuthStageFactory.mintHS256(
                secret: Fixtures.hs256Secret, user: "alice", ttlSeconds: 0, now: now, issuer: nil, audience: nil)
        }
        #expect(throws: AuthStageFactory.MintingError.self) {
            try AuthStageFactory.hs256Secret(in: AuthSettings(rs256PublicKey: Fixtures.rsaPublicPEM))
        }
    }
}
