import AsyncHTTPClient
import GatewayCore
import NIOCore
import NIOHTTP1

/// Requests to the gateway's HTTP API with a bearer token; refusals become `ChatError`s with
/// the body's code, the status and `Retry-After`.
struct HTTPAPI: Sendable {
    let client: HTTPClient
    let base: String

    struct Reply: Sendable {
        var status: Int
        var body: ByteBuffer
        var contentType: String?

        var json: JSONValue? {
            body.withUnsafeReadableBytes { bytes in try? JSONParser.parse(bytes) }
        }
    }

    func request(
        _ method: HTTPMethod, _ path: String, token: String, body: ByteBuffer? = nil, contentType: String? = nil,
        timeoutMs: Int, limit: Int = 64 << 20
    ) async throws(ChatError) -> Reply {
        var request = HTTPClientRequest(url: path.hasPrefix("http") ? path : base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.body = .bytes(body)
            request.headers.add(name: "Content-Type", value: contentType ?? "application/json")
        }
        let reply: Reply
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeoutMs)))
            let collected = try await response.body.collect(upTo: limit)
            reply = Reply(status: Int(response.status.code), body: collected, contentType: response.headers.first(name: "Content-Type"))
            if !(200..<300).contains(reply.status) {
                let error = reply.json?["error"]
                let retry = response.headers.first(name: "Retry-After").flatMap(Int.init).map { $0 * 1000 }
                throw ChatError(
                    code: error?["code"]?.stringValue ?? "http_\(reply.status)", message: error?["message"]?.stringValue ?? "HTTP \(reply.status)",
                    retryAfterMs: retry ?? error?["retry_after_ms"]?.int64Value.map { Int($0) }, status: reply.status)
            }
        } catch let error as ChatError {
            throw error
        } catch {
            throw ChatError.unavailable("the gateway cannot be reached: \(error)")
        }
        return reply
    }

    func json(_ method: HTTPMethod, _ path: String, token: String, body: JSONValue? = nil, timeoutMs: Int) async throws(ChatError) -> JSONValue {
        let reply = try await request(method, path, token: token, body: body.map { ByteBuffer(bytes: $0.jsonBytes) }, timeoutMs: timeoutMs)
        if reply.body.readableBytes == 0 { return .null }
        guard let value = reply.json else { throw ChatError(code: "internal", message: "the gateway answered no JSON") }
        return value
    }
}
