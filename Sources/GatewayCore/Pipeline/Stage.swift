import ServiceLifecycle

/// A step of the pipeline: auth, id stamping, persistence, fanout, push, or one you write.
///
/// A stage is built once per pipeline from its typed settings and shared by every session, so
/// it is an immutable value; mutable state lives in an actor or a `Mutex` it owns. The runner,
/// not the stage, counts outcomes and measures latency, and stops at the first `reject`.
///
/// ```swift
/// struct ShoutStage: Stage {
///     func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
///         if case .string(let text)? = envelope.body { envelope.body = .string(text.uppercased()) }
///         return .continue
///     }
/// }
/// ```
///
/// Implementation requirements:
/// - `process` runs for every frame whose kind is in the stage's `on:` list (default `[send]`).
///   Frames of one session arrive in order; frames of different sessions concurrently.
/// - Throwing is an error of the stage (counted as such); the sender gets `internal`, or the
///   error's own code when it is `ClientErrorConvertible`. Return `.reject` for a decision.
/// - `committed` runs after the message is durable and the sender has its `ack`; use it for
///   work that must not delay or undo the ack (push notifications, analytics).
/// - Long-lived resources (pools, clients) are returned from `services`, which the executable
///   runs in its `ServiceGroup`; never start a `Task` in `init`.
public protocol Stage: Sendable {
    func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome

    /// Called once the message is stored and acknowledged. Default: nothing.
    func committed(_ envelope: Envelope, outcome: CommitOutcome, context: StageContext) async

    /// Services this stage needs running (connection pools, retry queues). Default: none.
    var services: [any Service] { get }
}

extension Stage {
    public func committed(_ envelope: Envelope, outcome: CommitOutcome, context: StageContext) async {}
    public var services: [any Service] { [] }
}
