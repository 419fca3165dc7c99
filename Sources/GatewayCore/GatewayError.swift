/// A client-visible error: one of the codes of PROTOCOL.md section 3, or a custom stage's `x_name`.
///
/// Anything that is not a `GatewayError` (and not `ClientErrorConvertible`) reaches the client as
/// `internal`, with the details only in the server log.
public struct GatewayError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The wire code, e.g. `bad_frame`.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String

        private init(_ rawValue: String) { self.rawValue = rawValue }

        public static let badFrame = Code("bad_frame")
        public static let unauthorized = Code("unauthorized")
        public static let tokenExpired = Code("token_expired")
        public static let forbidden = Code("forbidden")
        public static let notFound = Code("not_found")
        public static let tooLarge = Code("too_large")
        public static let rateLimited = Code("rate_limited")
        public static let conflict = Code("conflict")
        public static let unavailable = Code("unavailable")
        public static let `internal` = Code("internal")

        public static let builtIn: [Code] = [
            .badFrame, .unauthorized, .tokenExpired, .forbidden, .notFound, .tooLarge, .rateLimited, .conflict,
            .unavailable, .internal,
        ]

        /// A custom code from a stage: `x_` followed by `[a-z0-9_]`, at most 64 characters.
        public static func custom(_ name: String) -> Code? {
            let full = name.hasPrefix("x_") ? name : "x_" + name
            guard full.count <= 64, full.count > 2,
                full.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F })
            else { return nil }
            return Code(full)
        }

        /// A code from its wire form: a built-in one or a valid `x_` code.
        public init?(wire: String) {
            if let builtIn = Code.builtIn.first(where: { $0.rawValue == wire }) {
                self = builtIn
            } else if wire.hasPrefix("x_"), let custom = Code.custom(wire) {
                self = custom
            } else {
                return nil
            }
        }

        public var description: String { rawValue }

        /// The HTTP status for this code (PROTOCOL.md section 5).
        public var httpStatus: Int {
            switch self {
            case .badFrame: 400
            case .unauthorized, .tokenExpired: 401
            case .forbidden: 403
            case .notFound: 404
            case .conflict: 409
            case .tooLarge: 413
            case .rateLimited: 429
            case .unavailable: 503
            case .internal: 500
            default: 400
            }
        }
    }

    public var code: Code
    public var message: String
    public var retryAfterMs: Int?

    public init(_ code: Code, _ message: String, retryAfterMs: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfterMs = retryAfterMs
    }

    public var description: String { "\(code): \(message)" }

    public static func badFrame(_ message: String) -> GatewayError { .init(.badFrame, message) }
    public static func forbidden(_ message: String) -> GatewayError { .init(.forbidden, message) }
    public static func unauthorized(_ message: String) -> GatewayError { .init(.unauthorized, message) }
    public static func notFound(_ message: String) -> GatewayError { .init(.notFound, message) }
    public static func unavailable(_ message: String, retryAfterMs: Int = 1000) -> GatewayError {
        .init(.unavailable, message, retryAfterMs: retryAfterMs)
    }
    public static let internalError = GatewayError(.internal, "internal error")
}

/// An error type that knows which client-visible error it stands for.
public protocol ClientErrorConvertible: Error {
    var gatewayError: GatewayError { get }
}

extension GatewayError: ClientErrorConvertible {
    public var gatewayError: GatewayError { self }
}

extension GatewayError {
    /// Maps any error to what the client may see.
    public static func from(_ error: any Error) -> GatewayError {
        (error as? any ClientErrorConvertible)?.gatewayError ?? .internalError
    }
}

/// WebSocket close codes used by the gateway (PROTOCOL.md section 3).
public enum CloseCode: UInt16, Sendable {
    case normal = 1000
    case goingAway = 1001
    case protocolError = 1002
    case invalidData = 1007
    case policy = 1008
    case tooLarge = 1009
    case tryAgainLater = 1013
    case badFrame = 4000
    case unauthorized = 4001
    case slowConsumer = 4008
}
