import Foundation
import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/media` and `GET /v1/media/{id}` (PROTOCOL.md §5, docs/MEDIA.md).
///
/// Uploads stream into the media service (never collected whole); downloads stream back with
/// the headers that keep a file from harming a reader: `nosniff`, a sandboxing CSP, and
/// `attachment` for anything a browser could execute.
struct MediaRoutes: Sendable {
    let gateway: Gateway

    func register(on router: Router<GatewayRequestContext>) {
        router.post("/v1/media") { request, context in try await self.upload(request, context) }
        router.get("/v1/media/:id") { request, context in try await self.download(request, context) }
        router.head("/v1/media/:id") { request, context in try await self.download(request, context, head: true) }
    }

    private var media: any MediaLibrary {
        get throws {
            guard let media = gateway.stores.media else { throw GatewayError(.notFound, "this gateway serves no media") }
            return media
        }
    }

    private func user(_ request: Request) async throws -> String {
        guard let token = request.bearerToken else { throw GatewayError.unauthorized("missing Authorization: Bearer token") }
        return try await gateway.authenticate(token: token).user
    }

    private func upload(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let user = try await user(request)
        let media = try self.media
        guard let type = request.headers[.contentType] else { throw GatewayError.badFrame("missing Content-Type") }
        var name: String?
        if let given = request.query("name") {
            guard Self.isValidName(given) else { throw GatewayError.badFrame("'name' must be 1 to 255 characters without control characters") }
            name = given
        }
        var declared: Int64?
        if let text = request.headers[.contentLength] {
            guard let value = Int64(text), value >= 0 else { throw GatewayError.badFrame("invalid Content-Length") }
            declared = value
        }
        let body = RequestBodyPull(request.body)
        let record = try await media.store(
            MediaByteStream { try await body.next() }, declaredLength: declared, contentType: type, name: name, uploader: user)
        return HTTPReply.json(try await media.uploadResponse(record), status: .created, noStore: true)
    }

    private func download(_ request: Request, _ context: GatewayRequestContext, head: Bool = false) async throws -> Response {
        let user = try await user(request)
        let media = try self.media
        let id = context.parameters.get("id") ?? ""
        guard MediaRecord.isValidID(id) else { throw GatewayError.badFrame("not a media id") }
        guard let record = try await media.record(id) else { throw GatewayError.notFound("no such media") }
        try await media.authorize(record, user: user)

        let acceptZstd = Self.accepts("zstd", request.headers[.acceptEncoding])
        let zstdServed = record.compression == .zstd && acceptZstd
        let etag = "\"\(record.sha256)\(zstdServed ? "-zst" : "")\""
        var headers = Self.safetyHeaders(record)
        headers[.eTag] = etag
        headers[.vary] = "Accept-Encoding"
        headers[.cacheControl] = "private, max-age=31536000, immutable"
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == etag }) {
            return Response(status: .notModified, headers: headers)
        }
        var range: ClosedRange<Int64>?
        if record.compression == .none {
            headers[.acceptRanges] = "bytes"
            if let text = request.headers[.range] {
                switch Self.parseRange(text, size: record.size) {
                case .none: break
                case .some(.some(let r)): range = r
                case .some(.none):
                    headers[.contentRange] = "bytes */\(record.size)"
                    return Response(status: .rangeNotSatisfiable, headers: headers)
                }
            }
        }
        let download = try await media.open(record, acceptZstd: acceptZstd, range: range)
        if let encoding = download.contentEncoding { headers[.contentEncoding] = encoding }
        if let r = download.range { headers[.contentRange] = "bytes \(r.lowerBound)-\(r.upperBound)/\(record.size)" }
        let status: HTTPResponse.Status = download.range == nil ? .ok : .partialContent
        if head {
            if let length = download.contentLength { headers[.contentLength] = String(length) }
            return Response(status: status, headers: headers)
        }
        let stream = download.body
        let body = ResponseBody(contentLength: download.contentLength.map(Int.init)) { writer in
            for try await chunk in stream { try await writer.write(chunk) }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    /// Headers every media response carries.
    static func safetyHeaders(_ record: MediaRecord) -> HTTPFields {
        var headers: HTTPFields = [
            .contentType: record.contentType,
            .xContentTypeOptions: "nosniff",
            .contentSecurityPolicy: "default-src 'none'; sandbox",
        ]
        if !Self.isInlineSafe(record.contentType) {
            let name = (record.name ?? record.id).unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" && $0 != "\\" ? String($0) : "_" }.joined()
            headers[.contentDisposition] = "attachment; filename=\"\(name)\""
        }
        return headers
    }

    /// Types a browser shows without running anything (the rest are attachments).
    static func isInlineSafe(_ type: String) -> Bool {
        ["image/png", "image/jpeg", "image/gif", "image/webp", "text/plain"].contains(type) || type.hasPrefix("audio/") || type.hasPrefix("video/")
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 255 && !name.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F || $0 == "/" || $0 == "\\" }
    }

    /// Whether an `Accept-Encoding` value accepts `coding` (listed, or `*`, with q > 0).
    static func accepts(_ coding: String, _ header: String?) -> Bool {
        guard let header else { return false }
        var star = false
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let name = parts.first else { continue }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            if name == coding { return q > 0 }
            if name == "*" { star = q > 0 }
        }
        return star
    }

    /// One `bytes=` range: nil when the header is not a single byte range (served whole),
    /// `.some(nil)` when unsatisfiable.
    static func parseRange(_ header: String, size: Int64) -> ClosedRange<Int64>?? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        if parts[0].isEmpty {
            guard let suffix = Int64(parts[1]), suffix > 0 else { return .some(nil) }
            if size == 0 { return .some(nil) }
            return .some(max(0, size - suffix)...(size - 1))
        }
        guard let start = Int64(parts[0]), start >= 0 else { return nil }
        guard start < size else { return .some(nil) }
        var end = size - 1
        if !parts[1].isEmpty {
            guard let given = Int64(parts[1]), given >= start else { return nil }
            end = min(given, size - 1)
        }
        return .some(start...end)
    }
}

/// An upload's body, pulled by the one task storing it (hence the unchecked `Sendable`).
final class RequestBodyPull: @unchecked Sendable {
    private var iterator: RequestBody.AsyncIterator

    init(_ body: RequestBody) { iterator = body.makeAsyncIterator() }

    func next() async throws -> ByteBuffer? { try await iterator.next() }
}
