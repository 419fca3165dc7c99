#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import HTTPTypes
import Hummingbird

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `::1/128` (a bare address is a /32 or /128).
struct CIDR: Sendable, Hashable, CustomStringConvertible {
    /// The address in 16 bytes (IPv4 as an IPv4-mapped IPv6 address, `::ffff:a.b.c.d`).
    let network: [UInt8]
    /// Prefix length over the 16 bytes (an IPv4 /8 is 96 + 8).
    let prefix: Int
    let description: String

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = Self.bytes(String(parts[0])) else { return nil }
        let isIPv4 = !parts[0].contains(":")
        let width = isIPv4 ? 32 : 128
        var length = width
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...width).contains(given) else { return nil }
            length = given
        }
        self.prefix = length + (isIPv4 ? 96 : 0)
        self.network = address
        self.description = text
    }

    func contains(_ address: [UInt8]) -> Bool {
        var bits = prefix
        for index in 0..<16 where bits > 0 {
            let take = min(8, bits)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if address[index] & mask != network[index] & mask { return false }
            bits -= take
        }
        return true
    }

    /// The 16-byte form of an IPv4 or IPv6 address in text, or nil when it is not one.
    static func bytes(_ text: String) -> [UInt8]? {
        var trimmed = Substring(text)
        if trimmed.hasPrefix("["), trimmed.hasSuffix("]") { trimmed = trimmed.dropFirst().dropLast() }
        var result = [UInt8](repeating: 0, count: 16)
        if trimmed.contains(":") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, String(trimmed), &address) == 1 else { return nil }
            withUnsafeBytes(of: &address) { for index in 0..<16 { result[index] = $0[index] } }
        } else {
            var address = in_addr()
            guard inet_pton(AF_INET, String(trimmed), &address) == 1 else { return nil }
            result[10] = 0xFF
            result[11] = 0xFF
            withUnsafeBytes(of: &address) { for index in 0..<4 { result[12 + index] = $0[index] } }
        }
        return result
    }
}

/// Decides a client's address: the peer's, unless the peer is a trusted proxy
/// (`listen.public.trusted_proxies`), in which case `X-Forwarded-For` names it: the rightmost
/// address in the header that is not itself a trusted proxy. Never taken from the header
/// otherwise, since any client can write one. Per-address caps, rate limits and logs use it.
struct ClientAddressResolver: Sendable {
    let trustedProxies: [CIDR]

    init(trustedProxies: [String]) {
        self.trustedProxies = trustedProxies.compactMap(CIDR.init)
    }

    func isTrustedProxy(_ address: String?) -> Bool {
        guard !trustedProxies.isEmpty, let address, let bytes = CIDR.bytes(address) else { return false }
        return trustedProxies.contains { $0.contains(bytes) }
    }

    /// - Parameter forwardedFor: every `X-Forwarded-For` value of the request, in order.
    func resolve(peer: String?, forwardedFor: [String]) -> String? {
        guard isTrustedProxy(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { String(HeaderText.trimmed($0)) }
        for hop in hops.reversed() {
            guard let bytes = CIDR.bytes(hop) else { return peer }  // garbage: keep the proxy's own address
            if !trustedProxies.contains(where: { $0.contains(bytes) }) { return hop }
        }
        return hops.first ?? peer
    }
}

/// Sets `GatewayRequestContext.remoteAddress` to the client's address (`ClientAddressResolver`)
/// before any route sees it.
struct ForwardedForMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let resolver: ClientAddressResolver

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard resolver.isTrustedProxy(context.remoteAddress) else { return try await next(request, context) }
        var context = context
        context.remoteAddress = resolver.resolve(peer: context.remoteAddress, forwardedFor: request.headers[values: .xForwardedFor])
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
}
