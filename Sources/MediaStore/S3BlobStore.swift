import AsyncHTTPClient
import Crypto
import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// Blobs as objects in an S3-compatible bucket (AWS S3, MinIO, R2, Ceph, moto), through
/// async-http-client with AWS Signature V4. Files up to `partBytes` go up in one `PUT`; larger
/// ones by multipart upload, one part in memory at a time. Reads stream the object's body.
///
/// `Sendable`: immutable; the HTTP client is shared and shut down by its owner.
public struct S3BlobStore: BlobStore {
    public let endpoint: URL
    public let bucket: String
    public let pathStyle: Bool
    public let partBytes: Int
    let signer: SigV4Signer
    let client: HTTPClient
    let timeout: TimeAmount

    /// - Parameter environment: where `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    ///   `AWS_REGION` are read when the settings give no value.
    public init(settings: MediaSettings.S3Settings, client: HTTPClient, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let url = URL(string: settings.endpoint), url.host != nil else { throw BlobStoreError("media.s3.endpoint is not a URL") }
        guard let key = settings.accessKeyID?.value ?? environment["AWS_ACCESS_KEY_ID"],
            let secret = settings.secretAccessKey?.value ?? environment["AWS_SECRET_ACCESS_KEY"]
        else {
            throw BlobStoreError("media.s3: no credentials (access_key_id/secret_access_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
        }
        let region = settings.region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        self.endpoint = url
        self.bucket = settings.bucket
        self.pathStyle = settings.pathStyle
        self.partBytes = settings.partBytes
        self.signer = SigV4Signer(accessKeyID: key, secretAccessKey: secret, region: region, service: "s3")
        self.client = client
        self.timeout = .seconds(60)
    }

    // MARK: Requests

    /// Host header value and path of an object (or of the bucket with `key` nil).
    func location(_ key: String?) -> (host: String, path: String, base: String) {
        let scheme = endpoint.scheme ?? "https"
        var host = endpoint.host!
        if let port = endpoint.port, !((scheme == "http" && port == 80) || (scheme == "https" && port == 443)) {
            host += ":\(port)"
        }
        let prefix = endpoint.path.hasSuffix("/") ? String(endpoint.path.dropLast()) : endpoint.path
        let objectPath = key.map { "/" + SigV4Signer.encode($0, keepSlash: true) } ?? ""
        if pathStyle {
            let path = prefix + "/" + SigV4Signer.encode(bucket) + objectPath
            return (host, path, "\(scheme)://\(host)")
        }
        host = "\(bucket).\(host)"
        let path = prefix + (objectPath.isEmpty ? "/" : objectPath)
        return (host, path, "\(scheme)://\(host)")
    }

    func send(
        _ method: HTTPMethod, key: String?, query: [(String, String)] = [], headers extra: [(String, String)] = [], body: ByteBuffer? = nil
    ) async throws -> HTTPClientResponse {
        let (host, path, base) = location(key)
        let payloadHash: String
        if let body {
            payloadHash = body.withUnsafeReadableBytes { SigV4Signer.hex(SHA256.hash(data: $0)) }
        } else {
            payloadHash = SigV4Signer.emptySHA256
        }
        let toSign = [("host", host)] + extra.map { ($0.0.lowercased(), $0.1) }
        let auth = signer.sign(method: method.rawValue, path: path, query: query, headers: toSign, payloadSHA256: payloadHash, date: Date())
        let queryText = query.map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")
        var request = HTTPClientRequest(url: base + path + (queryText.isEmpty ? "" : "?" + queryText))
        request.method = method
        for (name, value) in extra + auth { request.headers.add(name: name, value: value) }
        if let body {
            request.body = .bytes(body)
        }
        return try await client.execute(request, timeout: timeout)
    }

    func expect(_ response: HTTPClientResponse, _ what: String, _ ok: Set<UInt> = [200]) async throws {
        guard ok.contains(response.status.code) else {
            let text = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            throw BlobStoreError("s3 \(what): HTTP \(response.status.code) \(text.prefix(300))")
        }
    }

    /// Creates the bucket unless it exists (tests and first starts).
    public func createBucketIfMissing() async throws {
        let head = try await send(.HEAD, key: nil)
        if head.status.code == 200 { return }
        var body: ByteBuffer?
        if signer.region != "us-east-1" {
            body = ByteBuffer(
                string: "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>\(signer.region)</LocationConstraint></CreateBucketConfiguration>"
            )
        }
        let response = try await send(.PUT, key: nil, body: body)
        try await expect(response, "create bucket", [200, 409])
        _ = try? await response.body.collect(upTo: 65536)
    }

    // MARK: BlobStore

    public func put(key: String, file path: String, size: Int64) async throws {
        try BlobKey.check(key)
        defer { try? FileManager.default.removeItem(atPath: path) }
        if try await self.size(of: key) != nil { return }
        if size <= Int64(partBytes) {
            let data = try await NIOThreadPool.singleton.runIfActive { try Data(contentsOf: URL(fileURLWithPath: path)) }
            let response = try await send(.PUT, key: key, headers: [("content-type", "application/octet-stream")], body: ByteBuffer(bytes: data))
            try await expect(response, "put")
            _ = try? await response.body.collect(upTo: 65536)
            return
        }
        try await multipartPut(key: key, path: path)
    }

    func multipartPut(key: String, path: String) async throws {
        let create = try await send(.POST, key: key, query: [("uploads", "")], headers: [("content-type", "application/octet-stream")])
        try await expect(create, "create multipart upload")
        let xml = String(buffer: try await create.body.collect(upTo: 65536))
        guard let uploadID = Self.element("UploadId", in: xml) else { throw BlobStoreError("s3: no UploadId in \(xml.prefix(200))") }
        do {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw BlobStoreError("upload file missing") }
            defer { try? handle.close() }
            var parts: [(Int, String)] = []
            var number = 1
            let partBytes = self.partBytes
            while true {
                let data = try await NIOThreadPool.singleton.runIfActive { try handle.read(upToCount: partBytes) ?? Data() }
                if data.isEmpty { break }
                let response = try await send(
                    .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)], body: ByteBuffer(bytes: data))
                try await expect(response, "upload part \(number)")
                guard let etag = response.headers.first(name: "etag") else { throw BlobStoreError("s3: part \(number) has no ETag") }
                _ = try? await response.body.collect(upTo: 65536)
                parts.append((number, etag))
                number += 1
            }
            var body = "<CompleteMultipartUpload>"
            for (n, etag) in parts { body += "<Part><PartNumber>\(n)</PartNumber><ETag>\(etag)</ETag></Part>" }
            body += "</CompleteMultipartUpload>"
            let complete = try await send(.POST, key: key, query: [("uploadId", uploadID)], body: ByteBuffer(string: body))
            try await expect(complete, "complete multipart upload")
            // S3 may answer 200 with an <Error> body.
            let answer = String(buffer: try await complete.body.collect(upTo: 65536))
            if answer.contains("<Error>") { throw BlobStoreError("s3 complete multipart upload: \(answer.prefix(300))") }
        } catch {
            if let abort = try? await send(.DELETE, key: key, query: [("uploadId", uploadID)]) {
                _ = try? await abort.body.collect(upTo: 65536)
            }
            throw error
        }
    }

    public func size(of key: String) async throws -> Int64? {
        try BlobKey.check(key)
        let response = try await send(.HEAD, key: key)
        if response.status.code == 404 { return nil }
        try await expect(response, "head")
        return response.headers.first(name: "content-length").flatMap { Int64($0) }
    }

    public func read(key: String, range: ClosedRange<Int64>?) async throws -> MediaByteStream {
        try BlobKey.check(key)
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        let response = try await send(.GET, key: key, headers: headers)
        try await expect(response, "get", range == nil ? [200] : [206])
        let box = ResponseBodyBox(response.body.makeAsyncIterator())
        return MediaByteStream { try await box.next() }
    }

    public func delete(key: String) async throws {
        try BlobKey.check(key)
        let response = try await send(.DELETE, key: key)
        try await expect(response, "delete", [200, 204])
    }

    /// The text of the first `<name>` element.
    static func element(_ name: String, in xml: String) -> String? {
        guard let start = xml.range(of: "<\(name)>"), let end = xml.range(of: "</\(name)>", range: start.upperBound..<xml.endIndex) else { return nil }
        return String(xml[start.upperBound..<end.lowerBound])
    }
}

/// The streamed body of one response, pulled by one consumer at a time (the download it
/// belongs to), which is why the unchecked `Sendable` holds.
final class ResponseBodyBox: @unchecked Sendable {
    private var iterator: HTTPClientResponse.Body.AsyncIterator

    init(_ iterator: HTTPClientResponse.Body.AsyncIterator) { self.iterator = iterator }

    func next() async throws -> ByteBuffer? { try await iterator.next() }
}
