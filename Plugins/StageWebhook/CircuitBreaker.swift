import Synchronization

/// Stops calling a service that keeps failing, so a dead service costs a frame nothing instead
/// of a timeout.
///
/// Closed: every frame calls; `failures` consecutive failures open it. Open: no calls for
/// `openMs`. Then half-open: the next frame makes one trial call (others still skip); its
/// success closes the breaker, its failure opens it for another `openMs`. Any success while
/// closed resets the count. Time is the stage context's clock, so tests step it.
final class CircuitBreaker: Sendable {
    /// What a frame may do.
    enum Permit: Equatable {
        /// Call the service.
        case call
        /// Call the service as the half-open trial; its result decides the breaker's state.
        case trial
        /// Do not call; the breaker is open for about this many more milliseconds.
        case skip(retryAfterMs: Int)
    }

    struct State {
        var consecutiveFailures = 0
        /// When the open breaker allows a trial; nil while closed.
        var openUntil: Int64?
        var trialInFlight = false
    }

    let failures: Int
    let openMs: Int
    /// Guards the failure count and the open/half-open state.
    private let state = Mutex(State())

    init(failures: Int, openMs: Int) {
        self.failures = failures
        self.openMs = openMs
    }

    func permit(now: Int64) -> Permit {
        state.withLock { state in
            guard let openUntil = state.openUntil else { return .call }
            if now < openUntil { return .skip(retryAfterMs: Int(openUntil - now)) }
            if state.trialInFlight { return .skip(retryAfterMs: 1000) }
            state.trialInFlight = true
            return .trial
        }
    }

    /// Records the result of a call made with `permit` (`.call` or `.trial`).
    func record(success: Bool, permit: Permit, now: Int64) {
        state.withLock { state in
            if permit == .trial { state.trialInFlight = false }
            if success {
                state.consecutiveFailures = 0
                state.openUntil = nil
                return
            }
            state.consecutiveFailures += 1
            if permit == .trial || (state.openUntil == nil && state.consecutiveFailures >= failures) {
                state.openUntil = now + Int64(openMs)
            }
        }
    }

    /// Whether the breaker is open now (half-open counts as open).
    var isOpen: Bool { state.withLock { $0.openUntil != nil } }
}
