import Logging
import ServiceLifecycle

/// What a stage decides about an envelope.
public enum StageOutcome: Sendable {
    /// Pass the (possibly changed) envelope to the next stage.
    case `continue`
    /// Stop here and answer the sender with this error; nothing is stored.
    case reject(GatewayError)
    /// Stop here and answer the sender with this frame instead of the usual reply.
    case reply(JSONObject)
}

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

/// A stage that turns tokens into identities; the `auth` stage is one. Transports call it for
/// handshake tokens, `auth` frames and HTTP API bearer tokens.
public protocol Authenticator: Sendable {
    func authenticate(token: String) async throws(GatewayError) -> Identity
}

/// The user a token speaks for.
public struct Identity: Sendable, Hashable {
    public var user: String
    /// When the token expires, in milliseconds since the Unix epoch.
    public var expiresAt: Int64?

    public init(user: String, expiresAt: Int64?) {
        self.user = user
        self.expiresAt = expiresAt
    }
}

/// What a stage can reach while it processes a frame.
public struct StageContext: Sendable {
    /// The stage's name in the pipeline (its `name:` or its kind).
    public let name: String
    public let logger: Logger
    public let clock: any GatewayClock
    public let stores: Stores
    /// Who is online on this node.
    public let presence: any PresenceQuery

    public init(name: String, logger: Logger, clock: any GatewayClock, stores: Stores, presence: any PresenceQuery) {
        self.name = name
        self.logger = logger
        self.clock = clock
        self.stores = stores
        self.presence = presence
    }
}

/// Which users have a live session (on this node).
public protocol PresenceQuery: Sendable {
    func isOnline(_ user: String) -> Bool
}
