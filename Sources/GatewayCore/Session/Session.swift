import NIOCore
import Synchronization

/// The transport side of a live session: how frames reach the client.
///
/// Implementation requirements: `send` never blocks and never waits for the network; it queues
/// the frame and returns false when the session's outbound queue is full, in which case the
/// transport closes the session as a slow consumer (4008). Both may be called from any thread.
public protocol SessionConnection: AnyObject, Sendable {
    func send(_ frame: ByteBuffer) -> Bool
    func close(code: CloseCode, reason: String)
}

/// An authenticated connection of one user's device, on any transport.
public final class Session: Sendable {
    public let principal: Principal
    public let connection: any SessionConnection
    /// Milliseconds since the Unix epoch.
    public let openedAt: Int64
    /// When the token it authenticated with expires (ms), updated by a fresh `auth`.
    /// (`Atomic`, stored inline: no separate heap object per session.)
    public let tokenExpiresAt: Atomic<Int64>
    /// Last frame from the client (ms), for presence `last_active_at` and, over WebSocket, the
    /// heartbeat timeout (`presence.offline_after_ms`).
    public let lastActiveAt: Atomic<Int64>
    /// Counts this session while it exists (`GatewayStats.LiveObjects.sessions`).
    private let liveCount: GatewayStats.LiveObjects?

    public init(
        principal: Principal, connection: any SessionConnection, openedAt: Int64, tokenExpiresAt: Int64?,
        live: GatewayStats.LiveObjects? = nil
    ) {
        self.principal = principal
        self.connection = connection
        self.openedAt = openedAt
        self.tokenExpiresAt = Atomic(tokenExpiresAt ?? Int64.max)
        self.lastActiveAt = Atomic(openedAt)
        self.liveCount = live
        live?.sessions.wrappingIncrement(ordering: .relaxed)
    }

    deinit {
        liveCount?.sessions.wrappingDecrement(ordering: .relaxed)
    }

    public var id: String { principal.session }
    public var user: String { principal.user }
}
