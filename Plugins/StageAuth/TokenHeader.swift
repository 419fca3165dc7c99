import GatewayCore

/// The JOSE header of a token, read by us before jwt-kit sees the token, so that hostile headers
/// are refused without any key lookup, file, database or network access.
struct TokenHeader {
    /// Headers that point at keys (a URL, an embedded key or certificate chain): a token must
    /// never choose the key that verifies it.
    static let forbiddenParameters = ["jku", "x5u", "jwk", "x5c"]

    let algorithm: String
    let kid: String?

    init(_ segment: ArraySlice<UInt8>) throws(GatewayError) {
        let object = try CompactToken.object(segment, name: "header")
        if let parameter = Self.forbiddenParameters.first(where: { object[$0] != nil }) {
            throw .unauthorized("header parameter '\(parameter)' is not accepted")
        }
        // RFC 7515 4.1.11: extensions listed in `crit` must be understood; we understand none.
        guard object["crit"] == nil else { throw .unauthorized("critical header extensions are not supported") }
        guard let algorithm = object["alg"]?.stringValue else { throw .unauthorized("token header has no alg") }
        guard algorithm.lowercased() != "none" else { throw .unauthorized("unsigned tokens are not accepted") }
        switch object["kid"] {
        case nil:
            kid = nil
        case .string(let kid)? where Self.isValidKID(kid):
            self.kid = kid
        default:
            throw .unauthorized("invalid kid")
        }
        self.algorithm = algorithm
    }

    /// Key ids: 1 to 128 characters of `[A-Za-z0-9_.-]` (no path separators, quotes or spaces).
    static func isValidKID(_ kid: String) -> Bool {
        let utf8 = kid.utf8
        guard !utf8.isEmpty, utf8.count <= 128 else { return false }
        return utf8.allSatisfy { byte in
            (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
    }
}
