import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore

/// The request context of the public and admin routes: Hummingbird's core storage plus the
/// client's address (per-IP limits use it): the peer's, or the one a trusted proxy forwarded
/// (`ForwardedForMiddleware`).
struct GatewayRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var remoteAddress: String?
    let eventLoop: any EventLoop

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
        eventLoop = source.channel.eventLoop
    }
}

/// JSON responses and errors in the shape of PROTOCOL.md section 5.
enum HTTPReply {
    static func json(_ buffer: ByteBuffer, status: HTTPResponse.Status = .ok, noStore: Bool = false) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if noStore { headers[.cacheControl] = "no-store" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: buffer))
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, noStore: Bool = false) -> Response {
        json(ByteBuffer(bytes: value.jsonBytes), status: status, noStore: noStore)
    }

    /// `{"error": {"code", "message"}}` with the code's HTTP status (`Retry-After` on 429/503).
    static func error(_ error: GatewayError, status: Int? = nil, headers extra: [(String, String)] = []) -> Response {
        let parts = errorParts(error, status: status, headers: extra)
        return Response(status: parts.status, headers: parts.headers, body: .init(byteBuffer: parts.body))
    }

    static func errorParts(_ error: GatewayError, status: Int? = nil, headers extra: [(String, String)] = [])
        -> (status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer)
    {
        var object: JSONObject = ["code": .string(error.code.rawValue), "message": .string(error.message)]
        if let retry = error.retryAfterMs { object["retry_after_ms"] = .int(retry) }
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
        if let retry = error.retryAfterMs, [429, 503].contains(status ?? error.code.httpStatus) {
            headers[.retryAfter] = String(max(1, (retry + 999) / 1000))
        }
        for (name, value) in extra {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        let body: JSONValue = ["error": .object(object)]
        return (HTTPResponse.Status(code: status ?? error.code.httpStatus), headers, ByteBuffer(bytes: body.jsonBytes))
    }

    /// `{"frames": [...]}` from already encoded frames.
    static func frames(_ frames: [ByteBuffer]) -> Response {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(16 + frames.reduce(0) { $0 + $1.readableBytes + 1 })
        buffer.writeStaticString("{\"frames\":[")
        for (index, var frame) in frames.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            buffer.writeBuffer(&frame)
        }
        buffer.writeStaticString("]}")
        return json(buffer, noStore: true)
    }
}

/// Maps thrown errors to the JSON error response; anything unknown is `internal`.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any ClientErrorConvertible {
            return HTTPReply.error(error.gatewayError)
        } catch let error as HTTPError {
            let code: GatewayError.Code
            switch error.status.code {
            case 400: code = .badFrame
            case 401: code = .unauthorized
            case 403: code = .forbidden
            case 404: code = .notFound
            case 405: return HTTPReply.error(GatewayError(.badFrame, "method not allowed"), status: 405)
            case 413: code = .tooLarge
            default: code = .internal
            }
            return HTTPReply.error(GatewayError(code, error.body ?? error.status.reasonPhrase), status: error.status.code)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            return HTTPReply.error(.internalError)
        }
    }
}

/// CORS for browsers: headers only for allow-listed origins (never `*`), preflights answered here.
struct CORSAllowListMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowed: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let permitted = allowed.contains(origin)
        if request.method == .options {
            guard permitted else { return Response(status: .forbidden) }
            return Response(
                status: .noContent,
                headers: [
                    .accessControlAllowOrigin: origin, .accessControlAllowMethods: "GET, POST, DELETE, OPTIONS",
                    .accessControlAllowHeaders: "Authorization, Content-Type", .accessControlAllowCredentials: "true",
                    .accessControlMaxAge: "600", .vary: "Origin",
                ])
        }
        var response = try await next(request, context)
        if permitted {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlAllowCredentials] = "true"
            response.headers[.vary] = "Origin"
        }
        return response
    }
}

extension Request {
    /// The bearer token of `Authorization`.
    var bearerToken: String? {
        headers[.authorization].flatMap(WebSocketHandshake.bearer)
    }

    func query(_ name: String) -> String? {
        uri.queryParameters.get(name)
    }
}
