/// What the `push` stage in force lets `/v1/devices` register: the transports find it among
/// the pipeline's stages (the core knows no particular stage).
public protocol PushRegistrationPolicy: Sendable {
    /// Targets one user may hold.
    var maxDevicesPerUser: Int { get }
    /// Whether plain `http://` Web Push endpoints are accepted (development only).
    var allowHTTP: Bool { get }
    /// Platforms with a configured provider.
    var platforms: Set<PushPlatform> { get }
    /// Refuses a valid registration the policy does not allow (a webhook host not in an
    /// allow-list, say) with a `bad_frame` naming why. Default: allows everything.
    func check(_ registration: PushRegistration) throws(GatewayError)
}

extension PushRegistrationPolicy {
    public func check(_ registration: PushRegistration) throws(GatewayError) {}
}

/// A validated `POST /v1/devices` body (PROTOCOL.md section 9).
public struct PushRegistration: Sendable, Hashable {
    public var platform: PushPlatform
    /// The `device` field, when the body named one.
    public var device: String?
    /// The url, endpoint or token that identifies the target.
    public var address: String
    /// The platform's fields, normalised (only the known keys).
    public var fields: JSONObject

    /// Validates a registration body; every problem is a `bad_frame` naming the field.
    public static func parse(_ value: JSONValue, allowHTTP: Bool) throws(GatewayError) -> PushRegistration {
        guard case .object(let object) = value else { throw .badFrame("body must be a JSON object") }
        guard let name = object["platform"]?.stringValue else {
            throw .badFrame("'platform' must be one of webhook, webpush, apns, fcm")
        }
        guard let platform = PushPlatform(rawValue: name) else {
            throw .badFrame("unknown platform '\(name.prefix(32))': use webhook, webpush, apns or fcm")
        }
        var device: String?
        if let value = object["device"], !value.isNull {
            guard let id = value.stringValue, Address.isValidID(id) else {
                throw .badFrame("'device' must be 1 to 64 characters of [A-Za-z0-9_.@-]")
            }
            device = id
        }
        switch platform {
        case .webhook:
            let url = try Self.url(object["url"], field: "url", allowHTTP: true)
            return PushRegistration(platform: platform, device: device, address: url, fields: ["url": .string(url)])
        case .webpush:
            let endpoint = try Self.url(object["endpoint"], field: "endpoint", allowHTTP: allowHTTP)
            guard let keys = object["keys"]?.objectValue else {
                throw .badFrame("'keys' must be an object with 'p256dh' and 'auth' (PushSubscription.toJSON())")
            }
            let p256dh = try Self.base64URL(keys["p256dh"], field: "keys.p256dh", length: 65)
            guard p256dh.bytes.first == 0x04 else {
                throw .badFrame("'keys.p256dh' must be an uncompressed P-256 point (65 bytes starting with 0x04)")
            }
            let auth = try Self.base64URL(keys["auth"], field: "keys.auth", length: 16)
            return PushRegistration(
                platform: platform, device: device, address: endpoint,
                fields: ["endpoint": .string(endpoint), "keys": ["p256dh": .string(p256dh.text), "auth": .string(auth.text)]])
        case .apns:
            guard let token = object["token"]?.stringValue, token.utf8.count % 2 == 0, (64...200).contains(token.utf8.count),
                token.utf8.allSatisfy({ Self.isHexDigit($0) })
            else {
                throw .badFrame("'token' must be the APNs device token in hex (64 to 200 hex digits)")
            }
            guard let topic = object["topic"]?.stringValue, (1...255).contains(topic.utf8.count),
                topic.utf8.allSatisfy({ Self.isTopicByte($0) })
            else {
                throw .badFrame("'topic' must be the app's bundle id (1 to 255 characters of [A-Za-z0-9.-_])")
            }
            var sandbox = false
            if let value = object["sandbox"], !value.isNull {
                guard let flag = value.boolValue else { throw .badFrame("'sandbox' must be true or false") }
                sandbox = flag
            }
            let lower = token.lowercased()
            return PushRegistration(
                platform: platform, device: device, address: lower,
                fields: ["token": .string(lower), "topic": .string(topic), "sandbox": .bool(sandbox)])
        case .fcm:
            guard let token = object["token"]?.stringValue, (1...4096).contains(token.utf8.count),
                token.utf8.allSatisfy({ Self.isFCMTokenByte($0) })
            else {
                throw .badFrame("'token' must be the FCM registration token (1 to 4096 characters of [A-Za-z0-9_:.-])")
            }
            return PushRegistration(platform: platform, device: device, address: token, fields: ["token": .string(token)])
        }
    }

    /// An absolute http(s) URL with a host, at most 2048 bytes, no whitespace or controls.
    static func url(_ value: JSONValue?, field: String, allowHTTP: Bool) throws(GatewayError) -> String {
        let expected = allowHTTP ? "an http:// or https:// URL" : "an https:// URL"
        guard let text = value?.stringValue else { throw .badFrame("'\(field)' must be \(expected)") }
        guard text.utf8.count <= 2048, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .badFrame("'\(field)' must be \(expected) of at most 2048 printable ASCII characters")
        }
        let lower = text.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") {
            rest = text.dropFirst(8)
        } else if lower.hasPrefix("http://") {
            guard allowHTTP else { throw .badFrame("'\(field)' must be an https:// URL (plain http only with the push stage's allow_http: true)") }
            rest = text.dropFirst(7)
        } else {
            throw .badFrame("'\(field)' must be \(expected)")
        }
        let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let hostname = host.split(separator: "@").last.map { $0.prefix { $0 != ":" } } ?? ""
        guard !hostname.isEmpty || host.hasPrefix("[") else { throw .badFrame("'\(field)' must be \(expected) with a host") }
        return text
    }

    /// The host of an absolute http(s) URL, lowercased, without user info, port or brackets.
    public static func host(of url: String) -> String? {
        guard let schemeEnd = url.firstRange(of: "://") else { return nil }
        let authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        var host = Substring(authority.split(separator: "@", omittingEmptySubsequences: false).last ?? "")
        if host.hasPrefix("[") {
            host = host.dropFirst().prefix { $0 != "]" }
        } else {
            host = host.prefix { $0 != ":" }
        }
        return host.isEmpty ? nil : host.lowercased()
    }

    /// Decodes base64url (padding optional) and checks the decoded length.
    static func base64URL(_ value: JSONValue?, field: String, length: Int) throws(GatewayError) -> (bytes: [UInt8], text: String) {
        guard let text = value?.stringValue, let bytes = Base64URLCoder.decode(text), bytes.count == length else {
            throw .badFrame("'\(field)' must be base64url of exactly \(length) bytes")
        }
        return (bytes, Base64URLCoder.encode(bytes))
    }

    static func isHexDigit(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46) }

    static func isTopicByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x2D || b == 0x5F
    }

    static func isFCMTokenByte(_ b: UInt8) -> Bool { isTopicByte(b) || b == 0x3A }
}

/// Base64url (RFC 4648 section 5) without padding, as Web Push and JWTs use it.
public enum Base64URLCoder {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let b0 = iterator.next() {
            let b1 = iterator.next()
            let b2 = iterator.next()
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
            if let b1 { out.append(alphabet[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)]) }
            if let b2 { out.append(alphabet[Int(b2 & 0x3F)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes base64url; accepts `=` padding and the standard alphabet's `+` and `/` too.
    /// Nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        var padding = 0
        for c in text.utf8 {
            if c == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            guard padding == 0 else { return nil }
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(c - 65)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(c - 97 + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(c - 48 + 52)
            case UInt8(ascii: "-"), UInt8(ascii: "+"): values.append(62)
            case UInt8(ascii: "_"), UInt8(ascii: "/"): values.append(63)
            default: return nil
            }
        }
        guard values.count % 4 != 1, padding <= 2 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index < values.count {
            let chunk = values[index..<min(index + 4, values.count)]
            let v = Array(chunk) + Array(repeating: 0, count: 4 - chunk.count)
            let n = UInt32(v[0]) << 18 | UInt32(v[1]) << 12 | UInt32(v[2]) << 6 | UInt32(v[3])
            out.append(UInt8(n >> 16 & 0xFF))
            if chunk.count > 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if chunk.count > 3 { out.append(UInt8(n & 0xFF)) }
            index += 4
        }
        return out
    }
}
