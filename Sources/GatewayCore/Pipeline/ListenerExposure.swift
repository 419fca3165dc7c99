/// Who can reach a listener: this machine only, or the network.
public enum ListenerExposure: Sendable, Hashable {
    case loopback
    case network

    /// The exposure of a listener bound to `host` (`127.0.0.1`, `::1` and `localhost` are
    /// loopback; everything else, `0.0.0.0` included, is the network).
    public init(host: String) {
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        self = loopback ? .loopback : .network
    }
}
