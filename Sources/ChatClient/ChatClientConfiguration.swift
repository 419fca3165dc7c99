import NIOSSL

/// Where and how a `ChatClient` connects.
public struct ChatClientConfiguration: Sendable {
    /// Which transport to use.
    public enum TransportPreference: String, Sendable {
        /// WebSocket; long-poll when a WebSocket cannot be opened but long-poll can.
        case auto
        case webSocket = "websocket"
        case longPoll = "longpoll"
    }

    public var host: String
    public var port: Int
    /// TLS for wss:// and https://; nil for plain ws:// and http://.
    public var tls: TLSConfiguration?
    public var transport: TransportPreference
    /// This device's id (`auth`'s `device`); nil lets the gateway pick one per session.
    public var device: String?
    public var backoff: Backoff
    /// How long a request (`sync`, `history`, ...) waits for its reply.
    public var requestTimeoutMs: Int
    /// A send unacked this long on an open connection means the connection is dead: reconnect.
    public var ackTimeoutMs: Int
    /// Long-poll `timeout_ms`.
    public var pollTimeoutMs: Int
    /// Messages per `sync` page.
    public var syncLimit: Int
    /// Unacked sends kept at most; more are refused (`rate_limited`).
    public var maxPendingSends: Int
    /// Events buffered for an app that reads `events` slowly. A message that does not fit is
    /// not handed over (and not reported `delivered`); it comes again through `sync`.
    public var eventBuffer: Int
    /// Largest frame accepted from the gateway.
    public var maxFrameBytes: Int
    /// Before each (re)connect, ask `host:port` for `GET /v1/discover` and connect to the node
    /// it names (a cluster's least-loaded live node, never a draining one); `host:port` is then
    /// the cluster's entry point (a load balancer). When discovery fails, `host:port` itself.
    public var discover = false

    public init(
        host: String = "127.0.0.1", port: Int = 8080, tls: TLSConfiguration? = nil, transport: TransportPreference = .auto,
        device: String? = nil, backoff: Backoff = Backoff(), requestTimeoutMs: Int = 15000, ackTimeoutMs: Int = 15000,
        pollTimeoutMs: Int = 25000, syncLimit: Int = 500, maxPendingSends: Int = 10000, eventBuffer: Int = 10000,
        maxFrameBytes: Int = 16 << 20
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.transport = transport
        self.device = device
        self.backoff = backoff
        self.requestTimeoutMs = requestTimeoutMs
        self.ackTimeoutMs = ackTimeoutMs
        self.pollTimeoutMs = pollTimeoutMs
        self.syncLimit = syncLimit
        self.maxPendingSends = maxPendingSends
        self.eventBuffer = eventBuffer
        self.maxFrameBytes = maxFrameBytes
    }

    var httpBase: String { "\(tls == nil ? "http" : "https")://\(host):\(port)" }
}
