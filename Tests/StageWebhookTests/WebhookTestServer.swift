import Crypto
import Foundation
import GatewayCore
import GatewayTesting

/// A webhook service (`LocalHTTPService`) whose answers the test sets, seen as the webhook
/// stage's calls: each request's JSON and whether its signature is the HMAC-SHA256 of the raw
/// body with `secret`.
final class WebhookTestServer: Sendable {
    /// A webhook answer; by default 200 with `{"action":"continue"}`.
    struct Reply: Sendable {
        var status: Int = 200
        var body: String = #"{"action":"continue"}"#
        var delayMs: Int = 0
        /// Answer only once `release()` or `stop()` is called: a service that is too slow for
        /// any timeout, however loaded the machine.
        var hold = false
    }

    struct Call: Sendable {
        var request: JSONObject
        /// The `X-ChatGateway-Signature` header, if any.
        var signature: String?
        /// Whether the signature is the HMAC-SHA256 of the raw body with `secret`.
        var signatureValid: Bool
        var contentType: String?
    }

    let secret: String?
    let service: LocalHTTPService

    var port: Int { service.port }
    var url: String { service.baseURL + "/hook" }

    /// Boots the server; `answer` decides each reply from the request JSON.
    static func start(secret: String? = nil, answer: @escaping @Sendable (JSONObject) -> Reply = { _ in Reply() }) async throws -> WebhookTestServer {
        WebhookTestServer(secret: secret, service: try await LocalHTTPService.start(answer: translate(answer)))
    }

    private init(secret: String?, service: LocalHTTPService) {
        self.secret = secret
        self.service = service
    }

    private static func translate(_ answer: @escaping @Sendable (JSONObject) -> Reply) -> @Sendable (LocalHTTPService.Request) -> LocalHTTPService.Reply {
        { request in
            let reply = answer(request.json?.objectValue ?? [:])
            return .init(status: reply.status, headers: ["Content-Type": "application/json"], body: reply.body, delayMs: reply.delayMs, hold: reply.hold)
        }
    }

    var calls: [Call] {
        service.requests.map { request in
            let signature = request.headers["x-chatgateway-signature"]
            var valid = false
            if let secret, let signature {
                let mac = HMAC<SHA256>.authenticationCode(for: request.body, using: SymmetricKey(data: Array(secret.utf8)))
                valid = signature == "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
            }
            return Call(request: request.json?.objectValue ?? [:], signature: signature, signatureValid: valid, contentType: request.headers["content-type"])
        }
    }

    var callCount: Int { service.requestCount }

    /// Changes the answer for the calls from now on.
    func answer(_ answer: @escaping @Sendable (JSONObject) -> Reply) {
        service.answer(Self.translate(answer))
    }

    func answer(status: Int = 200, body: String = #"{"action":"continue"}"#, delayMs: Int = 0) {
        answer { _ in Reply(status: status, body: body, delayMs: delayMs) }
    }

    /// Waits until `count` calls have arrived, up to `seconds`; whether they did.
    func waitForCalls(_ count: Int, seconds: Int = 10) async throws -> Bool {
        await service.waitForRequests(count, timeout: .seconds(seconds))
    }

    /// Lets held answers go.
    func release() {
        service.release()
    }

    func stop() async {
        await service.stop()
    }
}
