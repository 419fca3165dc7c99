import GatewayCore
import JWTKit

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The `auth` stage: verifies JWTs for the transports, and keeps every frame to its sender's
/// own identity and groups.
///
/// As an ``Authenticator`` it turns a token (from the WebSocket handshake, an `auth` frame or an
/// HTTP bearer header) into the user it speaks for; see ``authenticate(token:)`` for the checks.
/// As a ``Stage`` it refuses frames that claim another sender in `from`, or that address a group
/// the sender is not a member of.
///
/// Times come from the injected clock, so tests step through `exp` and `nbf` exactly. `Sendable`:
/// immutable apart from the key ring, whose lazily made jwt-kit collections sit behind a `Mutex`.
public struct AuthStage: Stage, Authenticator {
    /// Longer tokens are refused before any decoding.
    public static let maxTokenBytes = 8 * 1024
    /// Largest `exp`/`nbf` accepted: 9999-12-31T23:59:59Z, far beyond any real token, and small
    /// enough that milliseconds never overflow.
    static let maxNumericDate: Double = 253_402_300_799

    private let clock: any GatewayClock
    private let keyRing: KeyRing
    private let leewayMillis: Int64
    private let issuer: String?
    private let audience: String?
    private let requireExp: Bool

    /// Builds the stage, reading `jwks_file` if configured.
    ///
    /// - Throws: ``AuthSettingsError`` naming the settings key at fault.
    public init(settings: AuthSettings, clock: any GatewayClock) throws(AuthSettingsError) {
        let inline = try settings.validate()
        var jwks: [String: VerificationKey]?
        if let path = settings.jwksFile {
            let key = AuthSettings.CodingKeys.jwksFile.stringValue
            jwks = try VerificationKey.jwks(try Self.read(path, settingsKey: key), settingsKey: key)
        }
        self.keyRing = KeyRing(inline: inline, jwks: jwks)
        self.clock = clock
        self.leewayMillis = Int64(settings.leewaySeconds) * 1000
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.requireExp = settings.requireExp
    }

    /// A JWKS file is small; anything over 1 MiB is a wrong path, not a key set.
    private static let maxJWKSBytes = 1 << 20

    private static func read(_ path: String, settingsKey: String) throws(AuthSettingsError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read '\(path)'" : "no file at '\(path)'"
            throw AuthSettingsError(key: settingsKey, reason: reason)
        }
        guard data.count <= maxJWKSBytes else {
            throw AuthSettingsError(key: settingsKey, reason: "'\(path)' is larger than \(maxJWKSBytes) bytes")
        }
        return [UInt8](data)
    }

    // MARK: Authenticator

    /// Verifies a compact JWS token and returns its user.
    ///
    /// The checks, in order; each failure is an `unauthorized` error with a short reason that
    /// never repeats the token, except expiry, which is `token_expired`:
    /// 1. at most ``maxTokenBytes``, only base64url characters, exactly three non-empty segments,
    ///    each the canonical encoding of its bytes;
    /// 2. the header, read here: `alg` (never `none`, in any case) must be one a configured key
    ///    verifies; `jku`, `x5u`, `jwk`, `x5c` and `crit` are refused; `kid`, if any, must be
    ///    1 to 128 characters of `[A-Za-z0-9_.-]` and, with a JWKS, name one of its keys;
    /// 3. the signature, verified by jwt-kit with the key chosen in step 2 (never one the
    ///    header points at, and only for that key's own algorithm);
    /// 4. the claims, at the injected clock's time: `exp` (required unless `require_exp` is
    ///    false) and `nbf` within `leeway_s`; `iss` and `aud` when configured; `sub` a valid
    ///    user id (1 to 64 characters of `[A-Za-z0-9_.@-]`).
    public func authenticate(token: String) async throws(GatewayError) -> Identity {
        let parts = try CompactToken(token, maxBytes: Self.maxTokenBytes)
        let header = try TokenHeader(parts.header)
        let slot = try keyRing.slot(for: header)
        guard let collection = await keyRing.collection(for: slot) else { throw .unauthorized("no key for this token") }
        do {
            _ = try await collection.verify(token, as: SignatureOnly.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            throw .unauthorized("invalid signature")
        } catch {
            throw .unauthorized("malformed token")
        }
        return try identity(from: CompactToken.object(parts.payload, name: "payload"))
    }

    /// Checks the claims of a token whose signature is verified.
    ///
    /// The claims are read here (strictly: a NumericDate must be a non-negative number, `aud` a
    /// string or an array) and checked with jwt-kit's claim types, at the injected clock's time
    /// shifted by the leeway: `ExpirationClaim.verifyNotExpired(currentDate:)` (valid while
    /// now - leeway < exp), `NotBeforeClaim.verifyNotBefore(currentDate:)` (valid once
    /// nbf <= now + leeway; jwt-kit's test is strict, hence the one millisecond) and
    /// `AudienceClaim.verifyIntendedAudience(includes:)`.
    private func identity(from claims: JSONObject) throws(GatewayError) -> Identity {
        let now = clock.nowMillis()
        let expiresAt = try Self.numericDate(claims["exp"], name: "exp")
        if let expiresAt {
            do {
                try ExpirationClaim(value: Self.date(millis: expiresAt)).verifyNotExpired(currentDate: Self.date(millis: now - leewayMillis))
            } catch {
                throw GatewayError(.tokenExpired, "token expired")
            }
        } else if requireExp {
            throw .unauthorized("token has no exp")
        }
        if let notBefore = try Self.numericDate(claims["nbf"], name: "nbf") {
            do {
                try NotBeforeClaim(value: Self.date(millis: notBefore)).verifyNotBefore(currentDate: Self.date(millis: now + leewayMillis + 1))
            } catch {
                throw .unauthorized("token not valid yet")
            }
        }
        if let issuer, claims["iss"] != .string(issuer) {
            throw .unauthorized("wrong issuer")
        }
        if let audience {
            let named: [String] =
                switch claims["aud"] {
                case .string(let single)?: [single]
                case .array(let many)?: many.compactMap(\.stringValue)
                default: []
                }
            do {
                try AudienceClaim(value: named).verifyIntendedAudience(includes: audience)
            } catch {
                throw .unauthorized("wrong audience")
            }
        }
        guard let user = claims["sub"]?.stringValue, Address.isValidID(user) else {
            throw .unauthorized("sub must be 1 to 64 characters of [A-Za-z0-9_.@-]")
        }
        return Identity(user: user, expiresAt: expiresAt)
    }

    /// Milliseconds since the epoch as the `Date` jwt-kit's claims take.
    private static func date(millis: Int64) -> Date { Date(timeIntervalSince1970: Double(millis) / 1000) }

    /// A NumericDate claim (seconds since the epoch, fractions allowed) in milliseconds.
    private static func numericDate(_ value: JSONValue?, name: String) throws(GatewayError) -> Int64? {
        guard let value else { return nil }
        guard case .number(let text) = value, let seconds = Double(text), seconds >= 0, seconds <= maxNumericDate else {
            throw .unauthorized("invalid \(name)")
        }
        return Int64((seconds * 1000).rounded(.down))
    }

    // MARK: Stage

    /// Refuses a frame whose `from` is not its sender, or addressed to a group the sender is not in.
    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        if let from = envelope.frame["from"], from != .string(envelope.sender.user) {
            return .reject(.forbidden("'from' must be the authenticated user"))
        }
        if case .group(let group)? = envelope.to {
            guard try await context.stores.groups.isMember(envelope.sender.user, of: group) else {
                return .reject(.forbidden("not a member of group '\(group)'"))
            }
        }
        return .continue
    }
}

/// jwt-kit decodes a payload type after checking the signature; the claims are read and checked
/// by `AuthStage` itself (with the injected clock), so this type takes nothing from them.
private struct SignatureOnly: JWTPayload {
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
