import AsyncHTTPClient
import GatewayTesting
import Foundation
import GatewayCore
import MediaStore
import NIOCore
import NIOHTTP1
import Testing

@testable import chatgate

/// Media over the real wiring: uploads and downloads over HTTP, inline attachments over
/// WebSocket, the media stage, SQLite metadata and blobs on disk.
@Suite("Media end to end")
struct MediaTests {
    static let pipeline = """
          - stage: auth
            settings: { hs256_secret: "\(TestGateway.secret)", leeway_s: 30 }
          - stage: id
          - stage: media
          - stage: persist
          - stage: fanout
        """

    static func start(directory: URL? = nil) async throws -> TestGateway {
        let directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-media-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let extra = "media: { dir: \"\(directory.path)/media\", shared_dir: true, max_bytes: 2097152, inline_max_bytes: 32768 }"
        return try await TestGateway.start(extra: extra, pipeline: pipeline, directory: directory)
    }

    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
        var json: JSONObject? { (try? JSONParser.parse(String(decoding: body, as: UTF8.self)))?.objectValue }
    }

    static func fetch(
        _ gateway: TestGateway, _ method: HTTPMethod, _ path: String, token: String?, headers: [(String, String)] = [], body: [UInt8]? = nil,
        admin: Bool = false
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(admin ? gateway.adminPort : gateway.port)\(path)")
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await gateway.http.execute(request, timeout: .seconds(30))
        let collected = try await response.body.collect(upTo: 64 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Array(collected.readableBytesView))
    }

    @Test("an inline attachment arrives as a media_id the recipient downloads; a third user is forbidden; bad ids are refused")
    func inlineAttachment() async throws {
        let gateway = try await Self.start()
        do {
            let (alice, _) = try await gateway.connect("alice")
            let (bob, _) = try await gateway.connect("bob")
            let content = Array("hello media, hello bob".utf8)
            let attachment: JSONValue = ["content_type": "text/plain", "data": .string(Data(content).base64EncodedString()), "name": "hi.txt"]
            var frame = sendFrame(to: .user("bob"), body: "see attached", id: "c1", ref: "r1").objectValue!
            frame["attachments"] = [attachment]
            alice.send(JSONValue.object(frame))
            let ack = try #require(try await alice.frames(until: "ack").last)
            #expect(ack["ref"]?.stringValue == "r1")
            let message = try #require(try await bob.frames(until: "message").last)
            let delivered = try #require(message["attachments"]?.arrayValue?.first?.objectValue)
            let id = try #require(delivered["media_id"]?.stringValue)
            #expect(MediaRecord.isValidID(id))
            #expect(delivered["content_type"]?.stringValue == "text/plain")
            #expect(delivered["size"]?.int64Value == Int64(content.count))
            #expect(delivered["name"]?.stringValue == "hi.txt")
            #expect(delivered["url"]?.stringValue == "/v1/media/\(id)")
            #expect(delivered["data"] == nil)

            let bobToken = try await gateway.token("bob")
            let got = try await Self.fetch(gateway, .GET, "/v1/media/\(id)", token: bobToken)
            #expect(got.status == 200)
            #expect(got.body == content)
            #expect(got.headers.first(name: "x-content-type-options") == "nosniff")
            #expect(got.headers.first(name: "content-security-policy") == "default-src 'none'; sandbox")
            #expect(got.headers.first(name: "etag") != nil)
            #expect(got.headers.first(name: "content-type") == "text/plain")

            let carol = try await Self.fetch(gateway, .GET, "/v1/media/\(id)", token: try await gateway.token("carol"))
            #expect(carol.status == 403)
            #expect(carol.json?["error"]?["code"]?.stringValue == "forbidden")
            let forged = try await Self.fetch(gateway, .GET, "/v1/media/m\(String(repeating: "ab", count: 16))", token: bobToken)
            #expect(forged.status == 404)
            #expect(forged.json?["error"]?["code"]?.stringValue == "not_found")
            for bad in ["..%2F..%2Fetc%2Fpasswd", "..", "m\(String(repeating: "0", count: 31))%2F", "M\(String(repeating: "A", count: 32))"] {
                let answer = try await Self.fetch(gateway, .GET, "/v1/media/\(bad)", token: bobToken)
                #expect(answer.status == 400 || answer.status == 404, "\(bad): \(answer.status)")
                #expect(answer.status != 200)
            }
            let traversal = try await Self.fetch(gateway, .GET, "/v1/media/..%2F..%2Fetc%2Fpasswd", token: bobToken)
            #expect(traversal.status == 400)
            #expect(traversal.json?["error"]?["code"]?.stringValue == "bad_frame")
            let anonymous = try await Self.fetch(gateway, .GET, "/v1/media/\(id)", token: nil)
            #expect(anonymous.status == 401)

            // A reference to someone else's upload is refused.
            frame = sendFrame(to: .user("alice"), body: "mine now", id: "c2", ref: "r2").objectValue!
            frame["attachments"] = [["media_id": .string(id)]]
            bob.send(JSONValue.object(frame))
            let refusal = try #require(try await bob.frames(until: "error").last)
            #expect(refusal["code"]?.stringValue == "forbidden")

            let stats = try await Self.fetch(gateway, .GET, "/admin/stats", token: "admin-test-token", admin: true)
            #expect(stats.json?["media"]?["uploads"]?.int64Value == 1)
            #expect(stats.json?["media"]?["bytes_in"]?.int64Value == Int64(content.count))
            alice.close()
            bob.close()
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test("POST /v1/media: images stored as they are with a thumbnail, zstd passed through, ranges, attachments for markup")
    func uploadAndDownload() async throws {
        let gateway = try await Self.start()
        do {
            let token = try await gateway.token("alice")
            let png = try Thumbnailer.syntheticImage(width: 900, height: 600, format: ".png")
            let up = try await Self.fetch(gateway, .POST, "/v1/media?name=pic.png", token: token, headers: [("Content-Type", "image/png")], body: png)
            #expect(up.status == 201)
            let json = try #require(up.json)
            let id = try #require(json["media_id"]?.stringValue)
            #expect(json["size"]?.int64Value == Int64(png.count))
            #expect(json["stored_size"]?.int64Value == Int64(png.count))
            #expect(json["content_type"]?.stringValue == "image/png")
            #expect(json["width"]?.int64Value == 900 && json["height"]?.int64Value == 600)
            let thumbID = try #require(json["thumbnail"]?["media_id"]?.stringValue)
            #expect(json["thumbnail"]?["width"]?.int64Value == 320)

            let down = try await Self.fetch(gateway, .GET, "/v1/media/\(id)", token: token, headers: [("Accept-Encoding", "zstd, gzip")])
            #expect(down.status == 200)
            #expect(down.body == png)
            #expect(down.headers.first(name: "content-encoding") == nil)
            #expect(down.headers.first(name: "content-disposition") == nil)
            let part = try await Self.fetch(gateway, .GET, "/v1/media/\(id)", token: token, headers: [("Range", "bytes=100-199")])
            #expect(part.status == 206)
            #expect(part.body == Array(png[100...199]))
            #expect(part.headers.first(name: "content-range") == "bytes 100-199/\(png.count)")
            let etag = try #require(down.headers.first(name: "etag"))
            let cached = try await Self.fetch(gateway, .GET, "/v1/media/\(id)", token: token, headers: [("If-None-Match", etag)])
            #expect(cached.status == 304)
            let thumb = try await Self.fetch(gateway, .GET, "/v1/media/\(thumbID)", token: token)
            #expect(thumb.status == 200)
            #expect(thumb.body.starts(with: [0xFF, 0xD8, 0xFF]))

            let text = Array(String(repeating: "compressible text line\n", count: 20000).utf8)
            let textUp = try await Self.fetch(gateway, .POST, "/v1/media", token: token, headers: [("Content-Type", "text/plain")], body: text)
            let textID = try #require(textUp.json?["media_id"]?.stringValue)
            let stored = try #require(textUp.json?["stored_size"]?.int64Value)
            #expect(stored < Int64(text.count) / 10)
            let zstd = try await Self.fetch(gateway, .GET, "/v1/media/\(textID)", token: token, headers: [("Accept-Encoding", "zstd")])
            #expect(zstd.headers.first(name: "content-encoding") == "zstd")
            #expect(Int64(zstd.body.count) == stored)
            let inflated = try ZstdDecompressor.decompress(ByteBuffer(bytes: zstd.body), maxSize: text.count)
            #expect(Array(inflated.readableBytesView) == text)
            let plain = try await Self.fetch(gateway, .GET, "/v1/media/\(textID)", token: token)
            #expect(plain.body == text)
            #expect(plain.headers.first(name: "content-encoding") == nil)

            let html = Array("<html><body><script>alert(document.cookie)</script></body></html>".utf8)
            let htmlUp = try await Self.fetch(gateway, .POST, "/v1/media?name=page.html", token: token, headers: [("Content-Type", "text/html")], body: html)
            let htmlID = try #require(htmlUp.json?["media_id"]?.stringValue)
            let page = try await Self.fetch(gateway, .GET, "/v1/media/\(htmlID)", token: token)
            #expect(page.headers.first(name: "content-disposition") == "attachment; filename=\"page.html\"")
            let disguised = try await Self.fetch(gateway, .POST, "/v1/media", token: token, headers: [("Content-Type", "image/png")], body: html)
            #expect(disguised.json?["content_type"]?.stringValue == "application/octet-stream")

            let noType = try await Self.fetch(gateway, .POST, "/v1/media", token: token, body: html)
            #expect(noType.status == 400)
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test("an upload over max_bytes gets 413 before the body is sent")
    func overLimit() async throws {
        let gateway = try await Self.start()
        do {
            let token = try await gateway.token("alice")
            // Declares 100 MiB, sends 64 KiB, and waits for the answer: it comes although most of
            // the body never does.
            let head = "POST /v1/media HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Type: text/plain\r\nContent-Length: 104857600\r\n\r\n"
            let answer = try await RawHTTP.send(port: gateway.port, head + String(repeating: "a", count: 65536), timeout: 30)
            #expect(answer.hasPrefix("HTTP/1.1 413"), "\(answer.prefix(200))")
            #expect(answer.contains("too_large"))
        } catch {
            await gateway.stop()
            throw error
        }
        await gateway.stop()
    }

    @Test("a restart keeps media and metadata")
    func restart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-media-\(UUID().uuidString)")
        let first = try await Self.start(directory: directory)
        let token = try await first.token("alice")
        let jpeg = try Thumbnailer.syntheticImage(width: 300, height: 200, format: ".jpg")
        let up = try await Self.fetch(first, .POST, "/v1/media", token: token, headers: [("Content-Type", "image/jpeg")], body: jpeg)
        let id = try #require(up.json?["media_id"]?.stringValue)
        await first.stop(removeFiles: false)

        let second = try await Self.start(directory: directory)
        do {
            let again = try await Self.fetch(second, .GET, "/v1/media/\(id)", token: try await second.token("alice"))
            #expect(again.status == 200)
            #expect(again.body == jpeg)
            let stats = try await Self.fetch(second, .GET, "/admin/stats", token: "admin-test-token", admin: true)
            #expect(stats.json?["media"]?["uploads"]?.int64Value == 1)
            #expect(stats.json?["media"]?["bytes_stored"]?.int64Value == Int64(jpeg.count))
        } catch {
            await second.stop()
            throw error
        }
        await second.stop()
    }
}
