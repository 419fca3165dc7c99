import NIOCore

/// A timer from `GatewayClock.schedule(at:on:_:)`: cancel it when what it guards ends sooner.
///
/// `Sendable`; cancelling is idempotent and may race the timer firing (the task then either runs
/// or not, never twice).
public struct ClockTimer: Sendable {
    private enum Backing: Sendable {
        case loop(Scheduled<Void>)
        case custom(@Sendable () -> Void)
    }

    private let backing: Backing

    /// A timer on an event loop's scheduler.
    public init(_ scheduled: Scheduled<Void>) {
        backing = .loop(scheduled)
    }

    /// A timer a custom clock keeps itself; `cancel` is called by `cancel()`.
    public init(cancel: @escaping @Sendable () -> Void) {
        backing = .custom(cancel)
    }

    public func cancel() {
        switch backing {
        case .loop(let scheduled): scheduled.cancel()
        case .custom(let cancel): cancel()
        }
    }
}
