import GatewayCore
import JWTKit
import Synchronization

/// The keys of one `auth` stage, and the jwt-kit collections that verify with them.
///
/// jwt-kit 5's `JWTKeyCollection` is an actor whose `add` methods are async, while a
/// `StageFactory` builds synchronously. So the keys are parsed and checked synchronously when
/// the stage is built (a bad key is a config error at start or reload), and the collections are
/// made from those parsed keys the first time a token is verified, then kept. Two first
/// verifications racing may both make collections; that costs a few microseconds once, and the
/// first set stored is the one kept, so no `Task` or once-only machinery is needed.
final class KeyRing: Sendable {
    /// Where a token's key comes from: the inline key of its `alg`, or the JWKS key of its `kid`.
    enum Slot: Hashable, Sendable {
        case algorithm(String)
        case kid(String)
    }

    let keys: [Slot: VerificationKey]
    /// Whether a JWKS file is configured: then a token's `kid` must name one of its keys.
    let hasJWKS: Bool
    /// Every `alg` some key verifies.
    let algorithms: Set<String>

    /// Guards the collections, one per entry of `keys`, once made.
    private let collections = Mutex<[Slot: JWTKeyCollection]?>(nil)

    init(inline: [VerificationKey], jwks: [String: VerificationKey]?) {
        var keys: [Slot: VerificationKey] = [:]
        for key in inline { keys[.algorithm(key.algorithm)] = key }
        for (kid, key) in jwks ?? [:] { keys[.kid(kid)] = key }
        self.keys = keys
        self.hasJWKS = jwks != nil
        self.algorithms = Set(keys.values.map(\.algorithm))
    }

    /// The key for a token's header: never one the header merely points at, and always one
    /// whose algorithm is the header's `alg`.
    func slot(for header: TokenHeader) throws(GatewayError) -> Slot {
        guard algorithms.contains(header.algorithm) else { throw .unauthorized("algorithm not allowed") }
        if hasJWKS, let kid = header.kid {
            guard let key = keys[.kid(kid)] else { throw .unauthorized("unknown kid") }
            guard key.algorithm == header.algorithm else { throw .unauthorized("algorithm not allowed for this kid") }
            return .kid(kid)
        }
        guard keys[.algorithm(header.algorithm)] != nil else { throw .unauthorized("token has no kid") }
        return .algorithm(header.algorithm)
    }

    func collection(for slot: Slot) async -> JWTKeyCollection? {
        if let made = collections.withLock({ $0 }) { return made[slot] }
        var made: [Slot: JWTKeyCollection] = [:]
        for (slot, key) in keys { made[slot] = await key.makeCollection() }
        return collections.withLock { stored in
            if stored == nil { stored = made }
            return stored?[slot]
        }
    }
}
