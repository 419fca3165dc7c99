import AsyncHTTPClient
import Foundation
import GatewayCore
import GatewayTesting
import Logging
import NIOCore
import Testing

@testable import MediaStore

enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case fs, s3
    var testDescription: String { rawValue }
}

/// A media service on a real backend (a temporary directory, or moto's S3 on 127.0.0.1) and an
/// in-memory metadata store.
struct MediaHarness {
    let service: MediaService
    let store: InMemoryStore
    let directory: URL
    let moto: MotoServer?

    static func with<T>(
        _ backend: Backend, configure: (inout MediaSettings) -> Void = { _ in }, _ body: (MediaHarness) async throws -> T
    ) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("media-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var settings = MediaSettings()
        settings.dir = directory.path
        settings.backend = backend == .fs ? .fs : .s3
        var moto: MotoServer?
        let blobs: any BlobStore
        switch backend {
        case .fs:
            blobs = try FileBlobStore(directory: directory.path)
        case .s3:
            let server = try await MotoServer.start()
            moto = server
            settings.s3 = .init(
                endpoint: server.endpoint, bucket: server.bucket, region: "us-east-1", pathStyle: true, accessKeyID: Secret(server.accessKey),
                secretAccessKey: Secret(server.secretKey), partBytes: 5 * 1024 * 1024)
            blobs = try S3BlobStore(settings: settings.s3!, client: HTTPClient.shared, environment: [:])
        }
        configure(&settings)
        let store = InMemoryStore()
        let service = try MediaService(settings: settings, blobs: blobs, metadata: store, groups: store, clock: SystemClock(), logger: Logger(label: "media-test"))
        let harness = MediaHarness(service: service, store: store, directory: directory, moto: moto)
        do {
            let result = try await body(harness)
            await moto?.stop()
            try? FileManager.default.removeItem(at: directory)
            return result
        } catch {
            await moto?.stop()
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    func upload(_ bytes: [UInt8], type: String, user: String = "alice", name: String? = nil) async throws -> MediaRecord {
        try await service.store(MediaByteStream(ByteBuffer(bytes: bytes)), declaredLength: Int64(bytes.count), contentType: type, name: name, uploader: user)
    }

    /// The original bytes, as a reader without zstd gets them.
    func download(_ record: MediaRecord, range: ClosedRange<Int64>? = nil) async throws -> [UInt8] {
        try await collect(service.open(record, acceptZstd: false, range: range).body)
    }

    /// The blob as stored.
    func stored(_ record: MediaRecord) async throws -> [UInt8] {
        try await collect(service.blobs.read(key: record.blobKey, range: nil))
    }

    func collect(_ stream: MediaByteStream) async throws -> [UInt8] {
        var out: [UInt8] = []
        for try await chunk in stream { out += chunk.readableBytesView }
        return out
    }
}

func text(bytes: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(bytes + 100)
    var line = 0
    while out.count < bytes {
        out += Array("\(line)\tuser_\(line % 311) said: lorem ipsum dolor sit amet, \(line * 7 % 1013) consectetur\n".utf8)
        line += 1
    }
    return Array(out.prefix(bytes))
}

func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { raw in
        let words = raw.bindMemory(to: UInt64.self)
        for i in words.indices { words[i] = generator.next() }
    }
    return out
}

@Suite("Media service on both backends")
struct MediaServiceTests {
    @Test("5 MiB of text round-trips byte-identical, stored smaller, and the zstd CLI decompresses the stored blob", arguments: Backend.allCases)
    func textRoundTrip(backend: Backend) async throws {
        try await MediaHarness.with(backend) { h in
            let input = text(bytes: 5 * 1024 * 1024)
            let record = try await h.upload(input, type: "text/plain; charset=utf-8", name: "log.txt")
            #expect(record.compression == .zstd)
            #expect(record.contentType == "text/plain")
            #expect(record.size == Int64(input.count))
            #expect(record.storedSize < record.size / 3)
            #expect(try await h.download(record) == input)

            let stored = try await h.stored(record)
            #expect(Int64(stored.count) == record.storedSize)
            let file = h.directory.appendingPathComponent("copy.zst")
            let plain = h.directory.appendingPathComponent("copy.txt")
            try Data(stored).write(to: file)
            #expect(try await runCommand("/usr/bin/zstd", ["-d", "-q", "-f", "-o", plain.path, file.path]) == 0)
            #expect(try Data(contentsOf: plain) == Data(input))

            let passed = try await h.service.open(record, acceptZstd: true, range: nil)
            #expect(passed.contentEncoding == "zstd")
            #expect(try await h.collect(passed.body) == stored)

            // Identical content is stored once.
            let again = try await h.upload(input, type: "text/plain")
            #expect(again.id != record.id)
            #expect(again.blobKey == record.blobKey)
            if backend == .fs {
                let shard = h.directory.appendingPathComponent("blobs/\(record.blobKey.prefix(2))")
                #expect(try FileManager.default.contentsOfDirectory(atPath: shard.path) == [record.blobKey])
            }
            let stats = try await h.service.statistics()
            #expect(stats.uploads == 2)
            #expect(stats.bytesIn == 2 * record.size)
        }
    }

    @Test("PNG and JPEG are stored as they are, read back identical, with a bounded thumbnail", arguments: Backend.allCases)
    func images(backend: Backend) async throws {
        try await MediaHarness.with(backend) { h in
            for (format, type, width, height) in [(".png", "image/png", 1200, 800), (".jpg", "image/jpeg", 640, 960)] {
                let bytes = try Thumbnailer.syntheticImage(width: width, height: height, format: format)
                let record = try await h.upload(bytes, type: type)
                #expect(record.compression == .none)
                #expect(record.contentType == type)
                #expect(record.width == width && record.height == height)
                #expect(try await h.download(record) == bytes)
                #expect(try await h.download(record, range: 10...19) == Array(bytes[10...19]))

                let thumbID = try #require(record.thumbnailID)
                let thumb = try #require(try await h.service.record(thumbID))
                #expect(thumb.originalID == record.id)
                #expect(thumb.contentType == "image/jpeg")
                let thumbBytes = try await h.download(thumb)
                let file = h.directory.appendingPathComponent("thumb\(format).jpg")
                try Data(thumbBytes).write(to: file)
                let decoded = try Thumbnailer.headerSize(ofFile: file.path)
                #expect(decoded.width == thumb.width && decoded.height == thumb.height)
                #expect(max(decoded.width, decoded.height) == 320)
                #expect(abs(Double(decoded.width) / Double(decoded.height) - Double(width) / Double(height)) < 0.02)
                // The thumbnail carries no metadata block (EXIF) of the original.
                #expect(!thumbBytes.starts(with: [0xFF, 0xD8, 0xFF, 0xE1]))

                let answer = try await h.service.uploadResponse(record)
                #expect(answer["thumbnail"]?["media_id"]?.stringValue == thumbID)
                #expect(answer["width"]?.int64Value == Int64(width))
            }
        }
    }

    @Test("a large incompressible file goes up in parts and reads back identical", arguments: Backend.allCases)
    func largeIncompressible(backend: Backend) async throws {
        try await MediaHarness.with(backend) { h in
            let input = randomBytes(11 * 1024 * 1024 + 12345)
            // Streamed in 64 KiB chunks, as an HTTP body arrives.
            let chunks = Chunks(input, size: 65536)
            let record = try await h.service.store(
                MediaByteStream { chunks.next() }, declaredLength: nil, contentType: "application/x-unknown", name: nil, uploader: "alice")
            #expect(record.compression == .none, "random bytes do not compress by min_ratio")
            #expect(record.storedSize == record.size)
            #expect(try await h.download(record) == input)
            #expect(try await h.service.blobs.size(of: record.blobKey) == record.size)
        }
    }

    @Test("the bytes decide: markup declared as an image, an image declared as HTML", arguments: Backend.allCases)
    func sniffing(backend: Backend) async throws {
        try await MediaHarness.with(backend) { h in
            let html = Array("<!DOCTYPE html><html><script>alert(1)</script></html>".utf8)
            let fake = try await h.upload(html, type: "image/png")
            #expect(fake.contentType == "application/octet-stream")
            #expect(fake.thumbnailID == nil)
            let svg = try await h.upload(Array("<svg xmlns='http://www.w3.org/2000/svg'><script>x</script></svg>".utf8), type: "image/jpeg")
            #expect(svg.contentType == "application/octet-stream")
            let png = try Thumbnailer.syntheticImage(width: 40, height: 30, format: ".png")
            let disguised = try await h.upload(png, type: "text/html")
            #expect(disguised.contentType == "application/octet-stream")
            await #expect(throws: GatewayError.self) { _ = try await h.upload([1, 2, 3], type: "not a type") }
        }
    }

    @Test("who may read: the uploader, members of a conversation it was sent in; a thumbnail follows its original")
    func authorization() async throws {
        try await MediaHarness.with(.fs) { h in
            let png = try Thumbnailer.syntheticImage(width: 64, height: 64, format: ".png")
            let record = try await h.upload(png, type: "image/png", user: "alice")
            let thumbID = try #require(record.thumbnailID)
            let thumb = try #require(try await h.service.record(thumbID))
            try await h.service.authorize(record, user: "alice")
            await #expect(throws: GatewayError.self) { try await h.service.authorize(record, user: "bob") }
            try await h.service.recordSent([record.id], conversation: Address.user("bob").conversationKey(sender: "alice"))
            try await h.service.authorize(record, user: "bob")
            try await h.service.authorize(thumb, user: "bob")
            await #expect(throws: GatewayError.self) { try await h.service.authorize(thumb, user: "carol") }
            try await h.store.createGroup(GroupInfo(id: "g1", name: "g", owner: "alice", members: ["alice", "dave"], createdAt: 0))
            await #expect(throws: GatewayError.self) { try await h.service.authorize(record, user: "dave") }
            try await h.service.recordSent([record.id], conversation: Address.group("g1").conversationKey(sender: "alice"))
            try await h.service.authorize(record, user: "dave")
            #expect(try await h.service.record("../../etc/passwd") == nil)
            #expect(try await h.service.record("m" + String(repeating: "0", count: 32)) == nil)
        }
    }

    @Test("max_bytes: refused from the declared length unread, or as soon as the stream passes it; the quota too")
    func limits() async throws {
        try await MediaHarness.with(.fs, configure: { $0.maxBytes = 1 << 20; $0.quotaBytes = 3 << 20 }) { h in
            let endless = Endless()
            await #expect(throws: GatewayError.self) {
                _ = try await h.service.store(MediaByteStream { endless.next() }, declaredLength: 10 << 20, contentType: "text/plain", name: nil, uploader: "alice")
            }
            #expect(endless.pulled == 0)
            do {
                _ = try await h.service.store(MediaByteStream { endless.next() }, declaredLength: nil, contentType: "text/plain", name: nil, uploader: "alice")
                Issue.record("an endless upload was accepted")
            } catch let error as GatewayError {
                #expect(error.code == .tooLarge)
            }
            #expect(endless.pulled <= (1 << 20) + 65536)
            // Nothing of the refused uploads stays behind.
            let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: h.directory.appendingPathComponent("tmp").path)) ?? []
            #expect(leftovers.isEmpty)

            for _ in 0..<3 { _ = try await h.upload(randomBytes(1 << 20), type: "application/octet-stream") }
            do {
                _ = try await h.upload(randomBytes(10), type: "application/octet-stream")
                Issue.record("the quota was not enforced")
            } catch let error as GatewayError {
                #expect(error.code == .tooLarge)
                #expect(error.message.contains("quota"))
            }
            _ = try await h.upload(randomBytes(10), type: "application/octet-stream", user: "bob")
        }
    }

    @Test("a 20,000 x 20,000 PNG bomb is refused from its header, without decoding it")
    func pngBomb() async throws {
        try await MediaHarness.with(.fs) { h in
            let bomb = h.directory.appendingPathComponent("bomb.png")
            let script = """
                import struct, sys, zlib
                w = h = 20000
                def chunk(kind, data):
                    c = struct.pack(">I", len(data)) + kind + data
                    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
                z = zlib.compressobj(9)
                row = b"\\x00" * (1 + w // 8)
                body = b"".join(z.compress(row) for _ in range(h)) + z.flush()
                png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
                open(sys.argv[1], "wb").write(png)
                """
            #expect(try await runCommand("/usr/bin/env", ["python3", "-c", script, bomb.path]) == 0)
            let bytes = try [UInt8](Data(contentsOf: bomb))
            #expect(bytes.count < 1 << 20)
            let before = peakRSS()
            do {
                _ = try await h.upload(bytes, type: "image/png")
                Issue.record("the PNG bomb was accepted")
            } catch let error as GatewayError {
                #expect(error.code == .tooLarge)
                #expect(error.message.contains("20000 x 20000"))
            }
            // Decoding would take 400 MB (8-bit gray) at least; the margin is for the tests
            // running concurrently in this process.
            #expect(peakRSS() - before < 300 << 20)
            #expect(try await h.service.statistics().uploads == 0)
        }
    }

    @Test("the S3 server checks signatures: a wrong secret is refused")
    func s3RefusesBadSignature() async throws {
        try await MediaHarness.with(.s3) { h in
            let moto = try #require(h.moto)
            let bad = try S3BlobStore(
                settings: .init(endpoint: moto.endpoint, bucket: moto.bucket, region: "us-east-1", accessKeyID: Secret(moto.accessKey), secretAccessKey: Secret("wrong")),
                client: HTTPClient.shared, environment: [:])
            await #expect(throws: (any Error).self) { _ = try await bad.size(of: String(repeating: "a", count: 64)) }
            let good = try #require(h.service.blobs as? S3BlobStore)
            #expect(try await good.size(of: String(repeating: "a", count: 64)) == nil)
        }
    }
}

/// Peak resident set size of this process (VmHWM), bytes.
func peakRSS() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * 1024
    }
    return 0
}

/// A buffer handed out in chunks.
final class Chunks: @unchecked Sendable {
    // Pulled by one consumer.
    private let bytes: [UInt8]
    private let size: Int
    private var offset = 0

    init(_ bytes: [UInt8], size: Int) {
        self.bytes = bytes
        self.size = size
    }

    func next() -> ByteBuffer? {
        guard offset < bytes.count else { return nil }
        let end = min(offset + size, bytes.count)
        defer { offset = end }
        return ByteBuffer(bytes: bytes[offset..<end])
    }
}

/// An upload that never ends, counting what was pulled.
final class Endless: @unchecked Sendable {
    // Pulled by one consumer at a time.
    private(set) var pulled = 0
    func next() -> ByteBuffer? {
        pulled += 65536
        return ByteBuffer(repeating: UInt8(ascii: "a"), count: 65536)
    }
}
