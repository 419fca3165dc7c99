import ChatClient
import Testing

@Suite("ChatClient: reconnect backoff", .timeLimit(.minutes(1)))
struct BackoffTests {
    @Test func capsDoubleFromTheBaseUpToTheMaximum() {
        let backoff = Backoff(baseMs: 500, maxMs: 30_000)
        #expect((0...7).map(backoff.cap(attempt:)) == [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000])
    }

    @Test func hugeAttemptsNeitherOverflowNorPassTheMaximum() {
        let backoff = Backoff(baseMs: 3, maxMs: 1000)
        #expect(backoff.cap(attempt: 10_000) == 1000)
        #expect(backoff.cap(attempt: -5) == 3)
    }

    @Test func delaysStayBelowTheirCap() {
        let backoff = Backoff(baseMs: 10, maxMs: 80)
        for attempt in 0..<10 {
            let delay = backoff.delay(attempt: attempt)
            #expect(delay >= 0 && delay < backoff.cap(attempt: attempt))
        }
    }

    @Test func configurationDefaultsAreThoseDocumented() {
        let configuration = ChatClientConfiguration()
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.transport == .auto)
        #expect(configuration.backoff == Backoff(baseMs: 500, maxMs: 30_000))
        #expect(configuration.maxPendingSends == 10_000)
    }
}
