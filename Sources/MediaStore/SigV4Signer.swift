import Crypto
import Foundation

/// AWS Signature Version 4 for requests to S3-compatible services (and any AWS service):
/// canonical request, string to sign, derived key, `Authorization` header.
///
/// ```swift
/// let signer = SigV4Signer(accessKeyID: "AKID", secretAccessKey: "secret", region: "us-east-1", service: "s3")
/// let headers = signer.sign(method: "GET", path: "/bucket/key", query: [], headers: ["host": "s3.example.com"],
///                           payloadSHA256: SigV4Signer.emptySHA256, date: Date())
/// ```
///
/// `Sendable`: immutable.
public struct SigV4Signer: Sendable {
    public let accessKeyID: String
    let secretAccessKey: String
    public let region: String
    public let service: String

    /// Hex SHA-256 of no bytes.
    public static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public init(accessKeyID: String, secretAccessKey: String, region: String, service: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.region = region
        self.service = service
    }

    /// The headers to add to the request: `x-amz-date` and `authorization` (plus
    /// `x-amz-content-sha256` for S3).
    ///
    /// - Parameters:
    ///   - path: the URI path as sent, each segment already percent-encoded (S3 encodes once).
    ///   - query: name/value pairs, not encoded.
    ///   - headers: every header to sign, `host` included; names in any case.
    public func sign(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadSHA256: String, date: Date
    ) -> [(String, String)] {
        let amzDate = Self.timestamp(date)
        var signed = headers.map { ($0.0.lowercased(), $0.1) }
        signed.append(("x-amz-date", amzDate))
        var extra = [("x-amz-date", amzDate)]
        if service == "s3" {
            signed.append(("x-amz-content-sha256", payloadSHA256))
            extra.append(("x-amz-content-sha256", payloadSHA256))
        }
        let authorization = self.authorization(
            method: method, path: path, query: query, headers: signed, payloadSHA256: payloadSHA256, amzDate: amzDate)
        return extra + [("authorization", authorization)]
    }

    /// The `Authorization` value for headers that already carry `x-amz-date` (`amzDate`).
    public func authorization(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadSHA256: String, amzDate: String
    ) -> String {
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let (canonical, signedHeaders) = Self.canonicalRequest(
            method: method, path: path, query: query, headers: headers, payloadSHA256: payloadSHA256)
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(Self.hex(SHA256.hash(data: Data(canonical.utf8))))"
        var key = SymmetricKey(data: Data("AWS4\(secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        return "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    /// The canonical request and the signed header list.
    static func canonicalRequest(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadSHA256: String
    ) -> (String, String) {
        let encoded: [(name: String, value: String)] = query.map { pair in (encode(pair.0), encode(pair.1)) }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        let canonicalQuery = sorted.map { pair in pair.name + "=" + pair.value }.joined(separator: "&")
        var grouped: [String: [String]] = [:]
        for (name, value) in headers {
            let trimmed = value.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            grouped[name.lowercased(), default: []].append(trimmed)
        }
        let names = grouped.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(grouped[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonical = [method, path.isEmpty ? "/" : path, canonicalQuery, canonicalHeaders, signedHeaders, payloadSHA256].joined(separator: "\n")
        return (canonical, signedHeaders)
    }

    /// RFC 3986 percent-encoding of everything but unreserved characters (`/` too).
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
    public static func timestamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
