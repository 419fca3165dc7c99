import GatewayCore
import Synchronization

/// Refuses frames that come faster than the configured rates, per user and per client IP,
/// with `rate_limited` and `retry_after_ms` (the time until the next token).
///
/// It only answers: the WebSocket transport closes a session with 1008 after 20 `rate_limited`
/// answers in a row. It counts the frames of the kinds its pipeline entry lists (`on:`, default
/// `[send]`); `on: [send, typing]` makes typing frames share the bucket. For separate limits per
/// kind, add a second entry with its own `name:`. Time comes from the context's clock.
public final class RateLimitStage: Stage {
    public let settings: RateLimitSettings
    /// Guards the buckets: one lock per frame, for the user's and the IP's bucket together.
    private let table: Mutex<BucketTable>

    public init(settings: RateLimitSettings) {
        self.settings = settings
        table = Mutex(BucketTable(capacity: settings.maxTracked))
    }

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        let now = context.clock.nowMillis()
        let wait = admit(user: envelope.sender.user, ip: envelope.sender.remoteAddress, now: now)
        guard wait > 0 else { return .continue }
        return .reject(GatewayError(.rateLimited, "too many frames: retry in \(wait) ms", retryAfterMs: wait))
    }

    /// Takes a token from each bucket that applies when all of them hold one; otherwise takes
    /// nothing and returns the milliseconds until they will (0 when admitted).
    func admit(user: String, ip: String?, now: Int64) -> Int {
        let perUser = settings.perUser
        let perIP = settings.perIP
        return table.withLock { table in
            var wait = 0
            var userSlot: Int32 = -1
            var ipSlot: Int32 = -1
            if let perUser {
                userSlot = table.refill(.user(user), limit: perUser, now: now)
                wait = table.wait(userSlot, limit: perUser)
            }
            if let perIP, let ip {
                ipSlot = table.refill(.ip(ip), limit: perIP, now: now)
                wait = max(wait, table.wait(ipSlot, limit: perIP))
            }
            guard wait == 0 else { return wait }
            if userSlot >= 0 { table.take(userSlot) }
            if ipSlot >= 0 { table.take(ipSlot) }
            return 0
        }
    }

    /// Users and IPs tracked now (at most `max_tracked`).
    public var trackedCount: Int { table.withLock { $0.count } }

    /// The tokens left in a user's bucket, if it is tracked (for tests and debugging).
    public func tokens(user: String) -> Double? { table.withLock { $0.tokens(.user(user)) } }

    public static let factory = StageFactory(kind: "ratelimit", settings: RateLimitSettings.self) { settings, _ in
        RateLimitStage(settings: settings)
    }
}
