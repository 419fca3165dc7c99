import GatewayCore

/// What a webhook answered (PROTOCOL.md section 8), or why the answer is malformed.
enum WebhookAnswer: Equatable {
    /// Go on, with a new body and attributes to merge when given.
    case `continue`(body: JSONValue?, attributes: JSONObject?)
    /// Refuse the frame with this error.
    case reject(GatewayError)

    struct Malformed: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Reads a `200` answer's body.
    ///
    /// - `{"action":"continue"}`, optionally with `body` (any JSON value) and `attributes` (an
    ///   object; a `null` member removes that attribute).
    /// - `{"action":"reject","code":…,"message":…}`: `code` is a PROTOCOL.md section 3 code or
    ///   `x_name`; `message` a string (default: "refused by <stage>"). `retry_after_ms` (an
    ///   optional integer) is passed on with `rate_limited` and `unavailable`, which otherwise
    ///   carry 1000.
    /// Anything else is `Malformed`.
    static func parse(_ bytes: [UInt8], stage: String) throws(Malformed) -> WebhookAnswer {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw Malformed("not JSON: \(error)")
        }
        guard case .object(let object) = value else { throw Malformed("not a JSON object") }
        switch object["action"] {
        case .string("continue")?:
            var attributes: JSONObject?
            switch object["attributes"] {
            case nil, .null?: attributes = nil
            case .object(let given)?: attributes = given
            case let other?: throw Malformed("'attributes' must be an object, not \(other.typeName)")
            }
            return .continue(body: object["body"], attributes: attributes)
        case .string("reject")?:
            guard case .string(let wire)? = object["code"] else { throw Malformed("a reject needs a string 'code'") }
            guard let code = GatewayError.Code(wire: wire) else {
                throw Malformed("'\(wire)' is neither a PROTOCOL.md code nor x_<name> ([a-z0-9_], at most 64 characters)")
            }
            let message: String
            switch object["message"] {
            case nil, .null?: message = "refused by \(stage)"
            case .string(let text)?: message = text
            case let other?: throw Malformed("'message' must be a string, not \(other.typeName)")
            }
            var retryAfterMs: Int?
            if code == .rateLimited || code == .unavailable {
                switch object["retry_after_ms"] {
                case nil, .null?: retryAfterMs = 1000
                case let given?:
                    guard let ms = given.int64Value, ms >= 0, ms <= 86_400_000 else {
                        throw Malformed("'retry_after_ms' must be an integer 0...86400000")
                    }
                    retryAfterMs = Int(ms)
                }
            }
            return .reject(GatewayError(code, message, retryAfterMs: retryAfterMs))
        case .string(let other)?:
            throw Malformed("unknown action '\(other)' (continue or reject)")
        default:
            throw Malformed("a string 'action' is required")
        }
    }
}
