import Foundation
import GatewayCore
import GatewayTesting
import NIOCore
import Testing

@testable import GatewayServer
@testable import chatgate

/// The gateway-wide timers that replaced per-connection ones: the heartbeat sweep
/// (`presence.offline_after_ms`) and the token deadlines (expiry, then the grace for a fresh
/// `auth`); and the handshake's header trimming without Foundation.
@Suite("Session timers and handshake text", .timeLimit(.minutes(2)))
struct SessionTimerTests {
    /// The close frame's code and reason (skipping anything before it), and when it came.
    func closeFrame(_ stream: WebSocketStream, timeout: Double = 10) async throws -> (code: UInt16?, reason: String, at: Date) {
        while true {
            switch try await stream.next(timeout: timeout) {
            case .close(let code, let reason): return (code, reason, Date())
            case .disconnected: return (nil, "", Date())
            default: continue
            }
        }
    }

    @Test func silentSessionsAreSweptAndAnyFrameKeepsOneOpen() async throws {
        // The sweep runs on the gateway's clock: a test clock makes who is silent, and when the
        // sweep runs, exact however loaded the machine. offline_after_ms 2000: a sweep every
        // max(100, 500) / 2 = 250 ms of clock time.
        let clock = TestClock()
        let start = clock.nowMillis()
        let gateway = try await TestGateway.start(extra: "presence: { heartbeat_ms: 50, offline_after_ms: 2000 }", clock: clock)
        #expect(gateway.bootstrap.application.heartbeats.intervalMs == 250)
        try await clock.waitForTimer(at: start + 250)
        let (silent, _) = try await gateway.connect("alice")
        let (pinging, _) = try await gateway.connect("bob")
        let (texting, _) = try await gateway.connect("carol")
        // 1.5 s later (a sweep runs: nobody is silent yet) bob sends a WebSocket ping, carol a
        // JSON frame: both count as heartbeats.
        clock.advance(by: 1500)
        pinging.raw.sendFrame(opcode: 0x9, payload: ByteBuffer(string: "hb"))
        texting.send(["type": "ping", "ref": "c1"])
        while true {
            if case .pong = try await pinging.next() { break }
        }
        #expect(try await texting.nextFrame()["ref"]?.stringValue == "c1")
        // 2.5 s after the start: alice has been silent past the timeout, the others 1 s.
        clock.advance(by: 1000)
        let close = try await closeFrame(silent)
        #expect(close.code == 1000)
        #expect(close.reason == "heartbeat timeout")
        // The next sweep (one interval after the last, missed ones skipped) runs at 2.9 s, bob
        // and carol 1.4 s silent: they stay open.
        try await clock.waitForTimer(at: start + 2750)
        try await clock.advanceAndWait(by: 400)
        for (stream, ref) in [(pinging, "b"), (texting, "c")] {
            stream.send(["type": "ping", "ref": .string(ref)])
            #expect(try await stream.nextFrame()["ref"]?.stringValue == ref)
        }
        await gateway.stop()
    }

    @Test func tokenDeadlinesOfManySessions() async throws {
        // Deadlines are times on the gateway's clock: each step below lands exactly on one.
        let clock = TestClock()
        let gateway = try await TestGateway.start(extra: "limits: { auth_timeout_ms: 2000 }", clock: clock)
        func open(_ user: String, ttl: Int) async throws -> WebSocketStream {
            let token = try await gateway.token(user, ttl: ttl)
            let (stream, status, _) = try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(token)")])
            #expect(status == 101)
            #expect(try await stream.nextFrame()["type"]?.stringValue == "hello")
            return stream
        }
        // The clock stands on a whole second, so a ttl of n expires exactly n s from now. alice
        // is refreshed at once, bob closes early, carol and erin never refresh, dave refreshes in
        // the grace (auth_timeout_ms: 2 s).
        let refreshed = try await open("alice", ttl: 3)
        refreshed.send(["type": "auth", "token": .string(try await gateway.token("alice")), "ref": "r"])
        #expect(try await refreshed.nextFrame()["ref"]?.stringValue == "r")
        let gone = try await open("bob", ttl: 1)
        let expiring = try await open("carol", ttl: 1)
        let late = try await open("dave", ttl: 1)
        let later = try await open("erin", ttl: 2)
        gone.close()
        // 1 s: carol's and dave's tokens expire; dave sends a fresh auth within the grace.
        clock.advance(by: 1000)
        #expect(try await expiring.nextFrame()["code"]?.stringValue == "token_expired")
        #expect(try await late.nextFrame()["code"]?.stringValue == "token_expired")
        late.send(["type": "auth", "token": .string(try await gateway.token("dave")), "ref": "d"])
        #expect(try await late.nextFrame()["ref"]?.stringValue == "d")
        // 2 s: erin's expires.
        clock.advance(by: 1000)
        #expect(try await later.nextFrame()["code"]?.stringValue == "token_expired")
        // 3 s: carol's grace ends (4001); alice's first token expires, but she refreshed it.
        clock.advance(by: 1000)
        let close = try await closeFrame(expiring)
        #expect(close.code == 4001)
        #expect(close.reason == "token expired")
        // 4 s: erin's grace ends.
        clock.advance(by: 1000)
        #expect(try await closeFrame(later).code == 4001)
        // Nothing but their answers reached the refreshed sessions.
        for (stream, ref) in [(refreshed, "a"), (late, "d2")] {
            stream.send(["type": "ping", "ref": .string(ref)])
            #expect(try await stream.nextFrame()["ref"]?.stringValue == ref)
        }
        // Nothing left behind by closed sessions; the two open ones wait for their new expiry.
        #expect(gateway.bootstrap.application.tokenDeadlines.count == 2)
        await gateway.stop()
    }

    @Test func bearerTokensAndTrimmingMatchFoundation() {
        func foundation(_ authorization: String) -> String? {
            let trimmed = authorization.trimmingCharacters(in: .whitespaces)
            guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else { return nil }
            let token = trimmed.dropFirst(7).trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : token
        }
        let pieces = [
            " ", "\t", "\u{A0}", "\u{200B}", "\u{3000}", "\u{2009}", "\u{301}", "\u{200D}", "\r\n", "b", "B", "e", "E", "a", "A",
            "r", "R", "x", "y.z", "İ", "e\u{301}", "\u{1F600}", "Bearer", "bearer ", "BEARER ", "Bearer\t", "\u{0903}",
        ]
        var inputs = ["Bearer abc", " bEaReR  abc\t", "Bearer", "Bearer ", "Bearer  ", "Bearer \u{301}x", "\u{200B}Bearer x\u{3000}", "Basic abc"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var text = ["", "Bearer ", " bearer", "\u{A0}BEARER "].randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 0...6, using: &generator) { text += pieces.randomElement(using: &generator)! }
            inputs.append(text)
        }
        for input in inputs {
            #expect(WebSocketHandshake.bearer(input) == foundation(input), "\(Array(input.unicodeScalars))")
            #expect(String(HeaderText.trimmed(input)) == input.trimmingCharacters(in: .whitespaces), "\(Array(input.unicodeScalars))")
        }
    }
}
