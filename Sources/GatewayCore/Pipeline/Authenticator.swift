/// A stage that turns tokens into identities; the `auth` stage is one. Transports call it for
/// handshake tokens, `auth` frames and HTTP API bearer tokens.
public protocol Authenticator: Sendable {
    func authenticate(token: String) async throws(GatewayError) -> Identity
}
