import AsyncHTTPClient
import Crypto
import GatewayCore
import NIOCore
import Synchronization
import _CryptoExtras

/// `fcm`: Firebase Cloud Messaging's HTTP v1 API. An OAuth 2 access token comes from the
/// service account: an RS256 JWT grant (`iss` the account's email, `scope` firebase.messaging,
/// `aud` its `token_uri`) POSTed to `token_uri`; the token is cached until a minute before it
/// expires. Each notification is `POST {base_url}/v1/projects/{project}/messages:send` with
/// `{"message": {"token", "data": {"push": <notification JSON text>}, "android": {...}}}`
/// (FCM data values are strings). 200 is sent; 404 or `UNREGISTERED` mean the target is gone;
/// 401 renews the token and retries; 429 and 5xx are retried (`Retry-After`).
final class FCMProvider: PushProvider {
    let settings: FCMProviderSettings
    let key: _RSA.Signing.PrivateKey
    let http: PushHTTPClient
    let clock: any GatewayClock
    /// The access token: cached with when it expires (ms), or being fetched (one fetch at a
    /// time; concurrent sends wait for it).
    enum TokenState {
        case none
        case cached(value: String, expires: Int64)
        case fetching(Task<(value: String, expires: Int64), any Error>)
    }

    /// Guards the access token state.
    let token = Mutex<TokenState>(.none)

    static let scope = "https://www.googleapis.com/auth/firebase.messaging"

    var platform: PushPlatform { .fcm }

    var projectID: String { settings.projectID ?? settings.account.projectID }

    init(settings: FCMProviderSettings, http: PushHTTPClient, clock: any GatewayClock) throws {
        self.settings = settings
        key = try _RSA.Signing.PrivateKey(pemRepresentation: settings.account.privateKeyPEM)
        self.http = http
        self.clock = clock
    }

    enum TokenError: Error {
        case status(Int, retryAfter: Int64?)
        case malformed
    }

    /// The signed grant assertion.
    func assertion(now: Int64) throws -> String {
        let header: JSONObject = ["alg": "RS256", "typ": "JWT"]
        let claims: JSONObject = [
            "iss": .string(settings.account.clientEmail), "scope": .string(Self.scope), "aud": .string(settings.account.tokenURI),
            "iat": .int(now / 1000), "exp": .int(now / 1000 + 3600),
        ]
        let input = Base64URLCoder.encode(JSONValue.object(header).jsonBytes) + "." + Base64URLCoder.encode(JSONValue.object(claims).jsonBytes)
        let signature = try key.signature(for: Array(input.utf8), padding: .insecurePKCS1v1_5)
        return input + "." + Base64URLCoder.encode(Array(signature.rawRepresentation))
    }

    func accessToken(renew: Bool) async throws -> String {
        let now = clock.nowMillis()
        let (cached, fetch) = token.withLock { state -> (String?, Task<(value: String, expires: Int64), any Error>?) in
            switch state {
            case .cached(let value, let expires) where !renew && expires > now:
                return (value, nil)
            case .fetching(let task):
                return (nil, task)
            default:
                let task = Task { try await self.fetchToken(now: now) }
                state = .fetching(task)
                return (nil, task)
            }
        }
        if let cached { return cached }
        guard let fetch else { throw TokenError.malformed }
        do {
            let fetched = try await fetch.value
            token.withLock { state in
                if case .fetching = state { state = .cached(value: fetched.value, expires: fetched.expires) }
            }
            return fetched.value
        } catch {
            token.withLock { state in
                if case .fetching = state { state = .none }
            }
            throw error
        }
    }

    /// One grant: the signed assertion to `token_uri`, the answer's token and expiry (a minute early).
    func fetchToken(now: Int64) async throws -> (value: String, expires: Int64) {
        var request = HTTPClientRequest(url: settings.account.tokenURI)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        let form = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + (try assertion(now: now))
        request.body = .bytes(ByteBuffer(string: form))
        let reply = try await http.execute(request)
        guard reply.status == 200 else {
            throw TokenError.status(reply.status, retryAfter: retryAfterMillis(reply.headers.first(name: "Retry-After")))
        }
        guard let object = try? JSONParser.parse(reply.body), let value = object["access_token"]?.stringValue else {
            throw TokenError.malformed
        }
        let expiresIn = object["expires_in"]?.int64Value ?? 3600
        return (value, now + max(0, expiresIn - 60) * 1000)
    }

    func body(_ notification: PushNotification, token: String) -> [UInt8] {
        let message: JSONValue = [
            "message": [
                "token": .string(token),
                "data": ["push": .string(String(decoding: notification.json, as: UTF8.self))],
                "android": ["collapse_key": .string(notification.collapseID), "priority": "high"],
                "apns": ["headers": ["apns-collapse-id": .string(notification.collapseID)]],
            ]
        ]
        return message.jsonBytes
    }

    func send(_ notification: PushNotification, to target: PushTarget) async -> PushResult {
        await send(notification, to: target, renewed: false)
    }

    private func send(_ notification: PushNotification, to target: PushTarget, renewed: Bool) async -> PushResult {
        guard let registration = target.fields["token"]?.stringValue else { return .failed("target without token") }
        let access: String
        do {
            access = try await accessToken(renew: renewed)
        } catch TokenError.status(let status, let retryAfter) where status == 429 || status >= 500 {
            return .retry(reason: "token endpoint HTTP \(status)", afterMs: retryAfter)
        } catch TokenError.status(let status, _) {
            return .failed("token endpoint HTTP \(status)")
        } catch {
            return .retry(reason: "token endpoint: \(error)", afterMs: nil)
        }
        var request = HTTPClientRequest(url: settings.baseURL + "/v1/projects/" + projectID + "/messages:send")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer " + access)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body(notification, token: registration)))
        let reply: PushHTTPClient.Reply
        do {
            reply = try await http.execute(request)
        } catch {
            return .retry(reason: "\(error)", afterMs: nil)
        }
        if reply.status == 200 { return .sent }
        let error = (try? JSONParser.parse(reply.body))?["error"]
        let details = error?["details"]?.arrayValue ?? []
        let errorCode = details.lazy.compactMap { $0["errorCode"]?.stringValue }.first ?? error?["status"]?.stringValue ?? ""
        switch reply.status {
        case 404:
            return .gone
        case _ where errorCode == "UNREGISTERED":
            return .gone
        case 401 where !renewed:
            return await send(notification, to: target, renewed: true)
        case 429, 500..<600:
            return .retry(reason: "HTTP \(reply.status) \(errorCode)", afterMs: retryAfterMillis(reply.headers.first(name: "Retry-After")))
        default:
            return .failed("HTTP \(reply.status) \(errorCode)")
        }
    }
}
