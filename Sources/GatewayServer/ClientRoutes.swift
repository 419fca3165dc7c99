import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore

/// Mints a development token for a user (`POST /demo/token`): the executable signs it with the
/// `auth` stage's HS256 secret. Arguments: the user id and the lifetime in seconds.
public typealias DemoTokenMinter = @Sendable (_ user: String, _ ttlSeconds: Int) async throws -> String

/// The browser client (`GET /client.js`, `GET /client.d.ts`), always served, and, in demo
/// mode only, the demo chat page (`GET /`, `/demo.js`, `/demo.css`) and the development tokens
/// it signs in with (`POST /demo/token {"user"}`). With demo mode off none of the demo routes
/// exist (404).
struct ClientRoutes: Sendable {
    let demo: DemoSettings
    let mintToken: DemoTokenMinter?

    func register(on router: Router<GatewayRequestContext>) {
        router.get("/client.js") { _, _ in Self.asset(PublicAssets.clientJS, type: "text/javascript; charset=utf-8") }
        router.get("/client.d.ts") { _, _ in Self.asset(PublicAssets.clientTypes, type: "application/typescript; charset=utf-8") }
        guard demo.enabled, let mintToken else { return }
        let ttl = demo.tokenTTLSeconds
        router.get("/") { _, _ in Self.asset(PublicAssets.demoHTML, type: "text/html; charset=utf-8", page: true) }
        router.get("/demo.js") { _, _ in Self.asset(PublicAssets.demoJS, type: "text/javascript; charset=utf-8") }
        router.get("/demo.css") { _, _ in Self.asset(PublicAssets.demoCSS, type: "text/css; charset=utf-8") }
        router.post("/demo/token") { request, _ in
            var request = request
            let buffer: ByteBuffer
            do {
                buffer = try await request.collectBody(upTo: 4096)
            } catch {
                throw GatewayError(.tooLarge, "request body larger than 4096 bytes")
            }
            let value: JSONValue
            do {
                value = try buffer.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
            } catch {
                throw GatewayError.badFrame("\(error)")
            }
            guard let user = value["user"]?.stringValue, Address.isValidID(user) else {
                throw GatewayError.badFrame("'user' must be 1 to 64 characters of [A-Za-z0-9_.@-]")
            }
            let token = try await mintToken(user, ttl)
            return HTTPReply.json(["token": .string(token), "user": .string(user), "expires_in": .int(Int64(ttl))], noStore: true)
        }
    }

    static func asset(_ text: String, type: String, page: Bool = false) -> Response {
        var headers: HTTPFields = [
            .contentType: type, .cacheControl: "no-cache",
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        ]
        if page {
            // The page loads only its own script and style; media thumbnails arrive as blob: URLs.
            headers[.contentSecurityPolicy] =
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' blob: data:; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
            headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
