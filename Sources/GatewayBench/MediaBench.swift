import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import MediaStore
import NIOCore

/// `chatgate bench media`: the media store's throughput, in process (no HTTP): upload and
/// download MiB/s of 10 MiB compressible (text) and incompressible (random) files, compression
/// ratio and CPU per MiB at the default zstd level, and thumbnails per second of a
/// 12-megapixel JPEG; on `fs` (a temporary directory) and, when `MEDIA_BENCH_S3_ENDPOINT` is
/// set, on `s3` (`MEDIA_BENCH_S3_BUCKET`, default `chat-media`, created when missing;
/// credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
struct MediaBench {
    let rounds: Int
    let log: @Sendable (String) -> Void

    func run() async throws -> String {
        let environment = ProcessInfo.processInfo.environment
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-media-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var settings = MediaSettings()
        settings.dir = directory.path
        var backends: [(String, any BlobStore)] = [("fs", try FileBlobStore(directory: directory.path + "/fs"))]
        if let endpoint = environment["MEDIA_BENCH_S3_ENDPOINT"] {
            let s3 = try S3BlobStore(
                settings: .init(endpoint: endpoint, bucket: environment["MEDIA_BENCH_S3_BUCKET"] ?? "chat-media"), client: HTTPClient.shared)
            try await s3.createBucketIfMissing()
            backends.append(("s3", s3))
        }
        let mib = 10
        let text = Self.text(bytes: mib << 20)
        let random = Self.random(bytes: mib << 20)
        var lines = [
            "media bench: \(rounds) rounds per figure (medians), zstd level \(settings.zstdLevel), files of \(mib) MiB", "",
            "| backend | file | upload MiB/s | download MiB/s | stored / original | upload CPU ms per MiB |",
            "|---|---|---|---|---|---|",
        ]
        for (name, blobs) in backends {
            let service = try MediaService(
                settings: settings, blobs: blobs, metadata: BenchMediaMetadata(), groups: BenchNoGroups(), clock: SystemClock(),
                logger: Logger(label: "media-bench"))
            for (kind, base, type) in [("text", text, "text/plain"), ("random", random, "application/octet-stream")] {
                var up: [Double] = []
                var down: [Double] = []
                var cpu: [Double] = []
                var ratio = 0.0
                for round in 0..<rounds {
                    // Each round's file differs, so nothing is deduplicated.
                    var bytes = base
                    withUnsafeBytes(of: UInt64(round).bigEndian) { for (i, b) in $0.enumerated() { bytes[i] = b } }
                    let cpu0 = Self.cpuSeconds()
                    let t0 = Date()
                    let record = try await service.store(
                        MediaByteStream(ByteBuffer(bytes: bytes)), declaredLength: Int64(bytes.count), contentType: type, name: nil, uploader: "bench")
                    let t1 = Date()
                    cpu.append((Self.cpuSeconds() - cpu0) * 1000 / Double(mib))
                    up.append(Double(mib) / t1.timeIntervalSince(t0))
                    ratio = Double(record.storedSize) / Double(record.size)
                    var read = 0
                    let t2 = Date()
                    for try await chunk in try await service.open(record, acceptZstd: false, range: nil).body { read += chunk.readableBytes }
                    down.append(Double(mib) / Date().timeIntervalSince(t2))
                    guard read == bytes.count else { throw BenchError("media bench: read \(read) of \(bytes.count) bytes") }
                }
                lines.append("| \(name) | \(kind) | \(Self.f(Self.median(up))) | \(Self.f(Self.median(down))) | \(Self.f(ratio, 3)) | \(Self.f(Self.median(cpu))) |")
                log("media bench: \(name) \(kind) done")
            }
        }
        let jpeg = try Thumbnailer.syntheticImage(width: 4000, height: 3000, format: ".jpg")
        let path = directory.appendingPathComponent("12mp.jpg").path
        try Data(jpeg).write(to: URL(fileURLWithPath: path))
        let thumbnailer = Thumbnailer(maxSide: settings.thumbnail.maxSide, maxPixels: settings.thumbnail.maxPixels, concurrency: 1)
        let count = max(3, rounds * 2)
        let cpu0 = Self.cpuSeconds()
        let t0 = Date()
        for _ in 0..<count { _ = try await thumbnailer.thumbnail(ofFile: path) }
        let seconds = Date().timeIntervalSince(t0)
        lines += [
            "",
            "thumbnails of a 4000 x 3000 JPEG (\(jpeg.count / 1024) KiB) to \(settings.thumbnail.maxSide) px, one at a time: \(Self.f(Double(count) / seconds)) per second, \(Self.f((Self.cpuSeconds() - cpu0) * 1000 / Double(count))) ms CPU each",
        ]
        if backends.count == 1 { lines.append("(s3 not measured: set MEDIA_BENCH_S3_ENDPOINT)") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func text(bytes: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes + 128)
        var line = 0
        while out.count < bytes {
            out += Array("\(line)\t2026-12-06T10:\(line % 60):00Z user_\(line % 311) joined the conversation about release \(line % 1013)\n".utf8)
            line += 1
        }
        return Array(out.prefix(bytes))
    }

    static func random(bytes: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes / 8).flatMap { _ in withUnsafeBytes(of: generator.next() as UInt64) { Array($0) } }
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    static func f(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
}

/// Media records for the benchmark, in memory.
actor BenchMediaMetadata: MediaMetadataStore {
    private var records: [String: MediaRecord] = [:]
    func insertMedia(_ record: MediaRecord) async throws { records[record.id] = record }
    func media(_ id: String) async throws -> MediaRecord? { records[id] }
    func recordMediaSent(_ ids: [String], conversation: String) async throws {}
    func mediaConversations(_ id: String) async throws -> [String] { [] }
    func mediaBytes(uploadedBy user: String) async throws -> Int64 { 0 }
    func mediaStatistics() async throws -> MediaStatistics { MediaStatistics(uploads: records.count, bytesIn: 0, bytesStored: 0) }
}

/// No groups (the benchmark authorizes nobody but the uploader).
struct BenchNoGroups: GroupStore {
    func createGroup(_ group: GroupInfo) async throws {}
    func group(_ id: String) async throws -> GroupInfo? { nil }
    func members(of group: String) async throws -> [String]? { nil }
    func isMember(_ user: String, of group: String) async throws -> Bool { false }
    func groups(of user: String) async throws -> [GroupInfo] { [] }
    func updateMembers(of group: String, add: [String], remove: [String], maxMembers: Int) async throws -> GroupInfo { throw GatewayError.notFound("no groups") }
}
