import GatewayCore

/// A compact JWT split into its three segments, checked for shape before anything is decoded.
struct CompactToken {
    let header: ArraySlice<UInt8>
    let payload: ArraySlice<UInt8>
    let signature: ArraySlice<UInt8>

    init(_ token: String, maxBytes: Int) throws(GatewayError) {
        let utf8 = token.utf8
        // Counted before copying, so a 64 KiB token costs nothing but this check.
        guard utf8.count <= maxBytes else { throw .unauthorized("token too large") }
        guard !utf8.isEmpty else { throw .unauthorized("missing token") }
        guard utf8.allSatisfy(Base64URL.isTokenByte) else { throw .unauthorized("malformed token") }
        let bytes = Array(utf8)
        let segments = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard segments.count == 3 else { throw .unauthorized("malformed token: expected 3 segments") }
        guard segments.allSatisfy({ !$0.isEmpty }) else { throw .unauthorized("malformed token: empty segment") }
        guard segments.allSatisfy(Base64URL.isCanonical) else { throw .unauthorized("malformed token") }
        header = segments[0]
        payload = segments[1]
        signature = segments[2]
    }

    /// A segment decoded as a JSON object whose keys are unique (parsers disagree on which of
    /// two equal keys wins, so a token with both is refused rather than read one way here and
    /// another way elsewhere).
    static func object(_ segment: ArraySlice<UInt8>, name: String) throws(GatewayError) -> JSONObject {
        guard let bytes = Base64URL.decode(segment), let value = try? JSONParser.parse(bytes, maxDepth: 8),
            let object = value.objectValue, Set(object.keys).count == object.count
        else { throw .unauthorized("malformed token \(name)") }
        return object
    }
}
