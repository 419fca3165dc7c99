import Crypto
import Foundation
import GatewayCore
import _CryptoExtras

/// `providers.webpush`: RFC 8030 requests with RFC 8291 encryption and RFC 8292 VAPID.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `vapid.private_key` | string (secret) | required | the application server's P-256 private key: base64url of the 32-byte scalar (as `web-push generate-vapid-keys` prints) or a PEM |
/// | `vapid.subject` | string | required | `mailto:` or `https:` contact for the push service (the JWT's `sub`) |
/// | `ttl_s` | int | 86400 | 0...2419200: how long the push service keeps an undelivered notification (`TTL`) |
/// | `urgency` | string | `high` | `very-low`, `low`, `normal`, `high` (`Urgency`) |
public struct WebPushProviderSettings: Codable, Sendable {
    /// The application server's identity (RFC 8292).
    public struct VAPID: Codable, Sendable {
        public var subject: String
        public var privateKey: Secret

        enum CodingKeys: String, CodingKey {
            case subject
            case privateKey = "private_key"
        }

        public init(subject: String, privateKey: Secret) {
            self.subject = subject
            self.privateKey = privateKey
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            privateKey = try c.decode(Secret.self, forKey: .privateKey)
            guard WebPushProviderSettings.signingKey(privateKey.value) != nil else {
                throw DecodingError.dataCorruptedError(
                    forKey: .privateKey, in: c, debugDescription: "must be a P-256 private key: base64url of 32 bytes, or a PEM")
            }
            subject = try c.decode(String.self, forKey: .subject)
            guard subject.hasPrefix("mailto:") || subject.hasPrefix("https://") else {
                throw DecodingError.dataCorruptedError(forKey: .subject, in: c, debugDescription: "must be a mailto: or https: URL (was '\(subject)')")
            }
        }
    }

    public var vapid: VAPID
    public var ttlSeconds: Int
    public var urgency: String

    enum CodingKeys: String, CodingKey {
        case vapid
        case ttlSeconds = "ttl_s"
        case urgency
    }

    public init(vapid: VAPID, ttlSeconds: Int = 86_400, urgency: String = "high") {
        self.vapid = vapid
        self.ttlSeconds = ttlSeconds
        self.urgency = urgency
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vapid = try c.decode(VAPID.self, forKey: .vapid)
        ttlSeconds = try c.decodeIfPresent(Int.self, forKey: .ttlSeconds) ?? 86_400
        guard (0...2_419_200).contains(ttlSeconds) else {
            throw DecodingError.dataCorruptedError(forKey: .ttlSeconds, in: c, debugDescription: "must be 0...2419200 (was \(ttlSeconds))")
        }
        urgency = try c.decodeIfPresent(String.self, forKey: .urgency) ?? "high"
        guard ["very-low", "low", "normal", "high"].contains(urgency) else {
            throw DecodingError.dataCorruptedError(forKey: .urgency, in: c, debugDescription: "must be very-low, low, normal or high (was '\(urgency)')")
        }
    }

    /// The key from base64url of the raw scalar or from a PEM.
    static func signingKey(_ text: String) -> P256.Signing.PrivateKey? {
        if text.contains("-----BEGIN") { return try? P256.Signing.PrivateKey(pemRepresentation: text) }
        guard let raw = Base64URLCoder.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 32 else { return nil }
        return try? P256.Signing.PrivateKey(rawRepresentation: raw)
    }
}

/// `providers.apns`: Apple Push Notification service over HTTP/2 with token authentication.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `team_id` | string | required | the 10-character Team ID |
/// | `key_id` | string | required | the 10-character Key ID of the `.p8` key |
/// | `private_key` | string (secret) | required | the `.p8` key's PEM text (ES256) |
/// | `push_type` | string | `alert` | `alert` or `background` (`apns-push-type`) |
/// | `priority` | int | 10 | 1, 5 or 10 (`apns-priority`) |
/// | `expiration_s` | int | 86400 | 0...2592000: how long APNs keeps it (`apns-expiration`, 0: deliver once or drop) |
/// | `production_url` | string | `https://api.push.apple.com` | base URL for targets without `sandbox` |
/// | `sandbox_url` | string | `https://api.sandbox.push.apple.com` | base URL for targets with `sandbox: true` |
/// | `ca_file` | string | none | a PEM file of extra trusted roots (a test server's certificate) |
public struct APNsProviderSettings: Codable, Sendable {
    public var teamID: String
    public var keyID: String
    public var privateKey: Secret
    public var pushType: String
    public var priority: Int
    public var expirationSeconds: Int
    public var productionURL: String
    public var sandboxURL: String
    public var caFile: String?

    enum CodingKeys: String, CodingKey {
        case teamID = "team_id"
        case keyID = "key_id"
        case privateKey = "private_key"
        case pushType = "push_type"
        case priority
        case expirationSeconds = "expiration_s"
        case productionURL = "production_url"
        case sandboxURL = "sandbox_url"
        case caFile = "ca_file"
    }

    public init(
        teamID: String, keyID: String, privateKey: Secret, pushType: String = "alert", priority: Int = 10, expirationSeconds: Int = 86_400,
        productionURL: String = "https://api.push.apple.com", sandboxURL: String = "https://api.sandbox.push.apple.com", caFile: String? = nil
    ) {
        self.teamID = teamID
        self.keyID = keyID
        self.privateKey = privateKey
        self.pushType = pushType
        self.priority = priority
        self.expirationSeconds = expirationSeconds
        self.productionURL = productionURL
        self.sandboxURL = sandboxURL
        self.caFile = caFile
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        teamID = try c.decode(String.self, forKey: .teamID)
        guard !teamID.isEmpty, teamID.utf8.count <= 32 else {
            throw DecodingError.dataCorruptedError(forKey: .teamID, in: c, debugDescription: "must be the Team ID (1 to 32 characters)")
        }
        keyID = try c.decode(String.self, forKey: .keyID)
        guard !keyID.isEmpty, keyID.utf8.count <= 32 else {
            throw DecodingError.dataCorruptedError(forKey: .keyID, in: c, debugDescription: "must be the Key ID (1 to 32 characters)")
        }
        privateKey = try c.decode(Secret.self, forKey: .privateKey)
        guard (try? P256.Signing.PrivateKey(pemRepresentation: privateKey.value)) != nil else {
            throw DecodingError.dataCorruptedError(forKey: .privateKey, in: c, debugDescription: "must be the PEM text of an ES256 (.p8) key")
        }
        pushType = try c.decodeIfPresent(String.self, forKey: .pushType) ?? "alert"
        guard ["alert", "background"].contains(pushType) else {
            throw DecodingError.dataCorruptedError(forKey: .pushType, in: c, debugDescription: "must be alert or background (was '\(pushType)')")
        }
        priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 10
        guard [1, 5, 10].contains(priority) else {
            throw DecodingError.dataCorruptedError(forKey: .priority, in: c, debugDescription: "must be 1, 5 or 10 (was \(priority))")
        }
        expirationSeconds = try c.decodeIfPresent(Int.self, forKey: .expirationSeconds) ?? 86_400
        guard (0...2_592_000).contains(expirationSeconds) else {
            throw DecodingError.dataCorruptedError(forKey: .expirationSeconds, in: c, debugDescription: "must be 0...2592000 (was \(expirationSeconds))")
        }
        productionURL = try c.decodeIfPresent(String.self, forKey: .productionURL) ?? "https://api.push.apple.com"
        sandboxURL = try c.decodeIfPresent(String.self, forKey: .sandboxURL) ?? "https://api.sandbox.push.apple.com"
        caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw DecodingError.dataCorruptedError(forKey: .caFile, in: c, debugDescription: "cannot read '\(caFile)'")
        }
    }
}

/// `providers.fcm`: Firebase Cloud Messaging's HTTP v1 API with a service account.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `service_account_file` | string | required | the service account's JSON key file (`project_id`, `client_email`, `private_key`, `token_uri`) |
/// | `project_id` | string | the file's `project_id` | the Firebase project |
/// | `base_url` | string | `https://fcm.googleapis.com` | where `POST /v1/projects/{project}/messages:send` goes |
public struct FCMProviderSettings: Codable, Sendable {
    public var serviceAccountFile: String
    public var projectID: String?
    public var baseURL: String
    /// The parsed service account (not a YAML key).
    var account: ServiceAccount

    struct ServiceAccount: Sendable {
        var projectID: String
        var clientEmail: String
        var privateKeyPEM: String
        var tokenURI: String
    }

    enum CodingKeys: String, CodingKey {
        case serviceAccountFile = "service_account_file"
        case projectID = "project_id"
        case baseURL = "base_url"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        serviceAccountFile = try c.decode(String.self, forKey: .serviceAccountFile)
        projectID = try c.decodeIfPresent(String.self, forKey: .projectID)
        baseURL = try c.decodeIfPresent(String.self, forKey: .baseURL) ?? "https://fcm.googleapis.com"
        do {
            account = try Self.loadAccount(serviceAccountFile)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .serviceAccountFile, in: c, debugDescription: "\(error)")
        }
    }

    public init(serviceAccountFile: String, projectID: String? = nil, baseURL: String = "https://fcm.googleapis.com") throws {
        self.serviceAccountFile = serviceAccountFile
        self.projectID = projectID
        self.baseURL = baseURL
        account = try Self.loadAccount(serviceAccountFile)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(serviceAccountFile, forKey: .serviceAccountFile)
        try c.encode(projectID ?? account.projectID, forKey: .projectID)
        try c.encode(baseURL, forKey: .baseURL)
    }

    struct AccountError: Error, CustomStringConvertible {
        let description: String
    }

    static func loadAccount(_ path: String) throws -> ServiceAccount {
        guard let data = FileManager.default.contents(atPath: path) else { throw AccountError(description: "cannot read '\(path)'") }
        guard let object = (try? JSONParser.parse(Array(data)))?.objectValue else {
            throw AccountError(description: "'\(path)' is not a JSON object")
        }
        func field(_ key: String) throws -> String {
            guard let value = object[key]?.stringValue, !value.isEmpty else {
                throw AccountError(description: "'\(path)' has no '\(key)' (download the key of a service account from the Firebase console)")
            }
            return value
        }
        let account = ServiceAccount(
            projectID: try field("project_id"), clientEmail: try field("client_email"), privateKeyPEM: try field("private_key"),
            tokenURI: object["token_uri"]?.stringValue ?? "https://oauth2.googleapis.com/token")
        guard (try? _RSA.Signing.PrivateKey(pemRepresentation: account.privateKeyPEM)) != nil else {
            throw AccountError(description: "'\(path)': 'private_key' is not an RSA private key in PEM")
        }
        return account
    }
}
