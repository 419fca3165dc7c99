import GatewayCore
import Logging

/// What every WebSocket connection of the public port shares: the gateway, the settings a
/// connection obeys, the gateway-wide timers and lists it joins, and the outboxes of the event
/// loops. Made once by `GatewayApplication` and handed to each connection's owner
/// (`WebSocketSessionHandler`), so a connection reads no setting or timer through `Gateway`.
/// A class: each connection and its owner hold one reference, not a copy of every field.
final class WebSocketEnvironment: Sendable {
    let gateway: Gateway
    /// Where frames for the clients of each event loop wait for it.
    let outboxes: LoopOutboxes
    /// Token expiry of the sessions; silence is swept by `HeartbeatSweeper`.
    let deadlines: TokenDeadlines
    /// WebSocket connections that are not sessions (closed from there at shutdown).
    let sessionless: SessionlessWebSockets
    let clock: any GatewayClock
    let stats: GatewayStats
    let logger: Logger
    /// `limits.max_frame_bytes`: the largest message a client may send.
    let maxFrameBytes: Int
    /// `limits.outbound_queue`: frames a connection may have on their way to its socket (sent and
    /// not yet written to it) while frames wait for the client, counted in one place,
    /// `WebSocketConnection`. Past it the client is a slow consumer (4008).
    let outboundQueue: Int
    /// `limits.inbound_queue`: complete messages waiting for the gateway before reading pauses.
    let inboundQueue: Int
    /// `limits.auth_timeout_ms`: the wait for `auth` on a connection without a token, and the
    /// grace for a fresh one after `token_expired`.
    let authTimeoutMs: Int
    /// `presence.offline_after_ms`: silence before a connection is closed (1000).
    let offlineAfterMs: Int

    init(gateway: Gateway, outboxes: LoopOutboxes, deadlines: TokenDeadlines, sessionless: SessionlessWebSockets, logger: Logger) {
        self.gateway = gateway
        self.outboxes = outboxes
        self.deadlines = deadlines
        self.sessionless = sessionless
        self.clock = gateway.clock
        self.stats = gateway.stats
        self.logger = logger
        self.maxFrameBytes = gateway.limits.maxFrameBytes
        self.outboundQueue = gateway.limits.outboundQueue
        self.inboundQueue = gateway.limits.inboundQueue
        self.authTimeoutMs = gateway.limits.authTimeoutMs
        self.offlineAfterMs = gateway.presenceSettings.offlineAfterMs
    }
}
