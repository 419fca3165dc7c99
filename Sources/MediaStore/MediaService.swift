import Crypto
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOFoundationCompat
import NIOPosix

/// The media feature: stores uploads and inline attachments (sniffed, compressed where that
/// pays, thumbnailed when images), authorizes readers and streams blobs back.
///
/// An upload is streamed to a temporary file under `media.dir/tmp` while its SHA-256 is
/// computed and its size checked against `media.max_bytes`, so a 25 MiB upload is never in
/// memory whole; then compressed (streaming) to a second temporary file when the policy says
/// so, thumbnailed, and handed to the `BlobStore` under its content address.
///
/// `Sendable`: immutable; the stores and the thumbnailer are `Sendable`.
public struct MediaService: MediaLibrary {
    public let settings: MediaSettings
    public let blobs: any BlobStore
    public let metadata: any MediaMetadataStore
    let groups: any GroupStore
    let thumbnailer: Thumbnailer
    let clock: any GatewayClock
    let logger: Logger
    let temporaryDirectory: String

    public var inlineMaxBytes: Int { settings.inlineMaxBytes }

    public init(
        settings: MediaSettings, blobs: any BlobStore, metadata: any MediaMetadataStore, groups: any GroupStore, clock: any GatewayClock,
        logger: Logger
    ) throws {
        self.settings = settings
        self.blobs = blobs
        self.metadata = metadata
        self.groups = groups
        self.clock = clock
        self.logger = logger
        self.thumbnailer = Thumbnailer(
            maxSide: settings.thumbnail.maxSide, maxPixels: settings.thumbnail.maxPixels, concurrency: settings.thumbnail.concurrency)
        self.temporaryDirectory = settings.dir + "/tmp"
        Self.removeStaleTemporaryFiles(in: temporaryDirectory, olderThan: 3600)
    }

    /// A new media id: `m` and 128 random bits in hex (the system's CSPRNG).
    public static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        let bits = (generator.next() as UInt64, generator.next() as UInt64)
        return "m" + String(format: "%016llx%016llx", bits.0, bits.1)
    }

    // MARK: Storing

    public func store(_ body: MediaByteStream, declaredLength: Int64?, contentType: String, name: String?, uploader: String) async throws -> MediaRecord {
        let maxBytes = Int64(settings.maxBytes)
        if let declaredLength, declaredLength > maxBytes {
            throw GatewayError(.tooLarge, "the file has \(declaredLength) bytes, more than media.max_bytes (\(maxBytes))")
        }
        guard let declared = ContentSniffer.normalize(contentType) else {
            throw GatewayError.badFrame("Content-Type must be a media type such as image/png (was '\(contentType.prefix(80))')")
        }
        let used = try await metadata.mediaBytes(uploadedBy: uploader)
        if used + (declaredLength ?? 0) > settings.quotaBytes {
            throw GatewayError(.tooLarge, "this upload would exceed your media quota of \(settings.quotaBytes) bytes (\(used) used)")
        }
        let raw = temporaryFile()
        var cleanup = [raw]
        defer {
            for path in cleanup { try? FileManager.default.removeItem(atPath: path) }
        }
        let received = try await receive(body, into: raw, maxBytes: maxBytes)
        if used + received.size > settings.quotaBytes {
            throw GatewayError(.tooLarge, "this upload would exceed your media quota of \(settings.quotaBytes) bytes (\(used) used)")
        }
        let detected = ContentSniffer.detect(received.head)
        let served = ContentSniffer.servedType(declared: declared, detected: detected)

        let id = Self.newID()
        var thumbnail: MediaRecord?
        var width: Int?
        var height: Int?
        if ContentSniffer.images.contains(served) {
            let made = try await thumbnailer.thumbnail(ofFile: raw)
            width = made.width
            height = made.height
            thumbnail = try await storeThumbnail(made, uploader: uploader, originalID: id)
        }

        var compression = MediaCompression.none
        var storedPath = raw
        var storedSize = received.size
        if !ContentSniffer.compressed.contains(served) && !ContentSniffer.compressed.contains(detected ?? "") && received.size > 0 {
            let packed = temporaryFile()
            cleanup.append(packed)
            let packedSize = try await compressFile(raw, into: packed)
            let ratio = Double(received.size) / Double(max(packedSize, 1))
            let keep = ContentSniffer.isCompressible(served) ? packedSize < received.size : ratio >= settings.minRatio
            if keep {
                compression = .zstd
                storedPath = packed
                storedSize = packedSize
            }
        }
        let key = received.sha256 + (compression == .zstd ? ".zst" : "")
        try await blobs.put(key: key, file: storedPath, size: storedSize)
        let record = MediaRecord(
            id: id, uploader: uploader, contentType: served, name: name, size: received.size, storedSize: storedSize,
            compression: compression, sha256: received.sha256, blobKey: key, width: width, height: height, thumbnailID: thumbnail?.id,
            createdAt: clock.nowMillis())
        if let thumbnail { try await metadata.insertMedia(thumbnail) }
        try await metadata.insertMedia(record)
        logger.debug(
            "media stored",
            metadata: ["gateway.media.id": "\(record.id)", "gateway.media.size": "\(record.size)", "gateway.media.stored": "\(storedSize)"])
        return record
    }

    private func storeThumbnail(_ made: Thumbnail, uploader: String, originalID: String) async throws -> MediaRecord {
        let sha = SigV4Signer.hex(SHA256.hash(data: made.jpeg))
        let path = temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = made.jpeg
        try await NIOThreadPool.singleton.runIfActive { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
        let key = sha + ".jpg"
        try await blobs.put(key: key, file: path, size: Int64(bytes.count))
        let record = MediaRecord(
            id: Self.newID(), uploader: uploader, contentType: "image/jpeg", size: Int64(bytes.count), storedSize: Int64(bytes.count),
            compression: .none, sha256: sha, blobKey: key, width: made.thumbnailWidth, height: made.thumbnailHeight,
            originalID: originalID, createdAt: clock.nowMillis())
        return record
    }

    /// Removes upload spool files a crash left behind (older than `age` seconds, so uploads in
    /// flight in another process sharing the directory are spared).
    static func removeStaleTemporaryFiles(in directory: String, olderThan age: TimeInterval) {
        let manager = FileManager.default
        guard let names = try? manager.contentsOfDirectory(atPath: directory) else { return }
        let limit = Date().addingTimeInterval(-age)
        for name in names where name.hasSuffix(".part") {
            let path = directory + "/" + name
            if let modified = (try? manager.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified < limit {
                try? manager.removeItem(atPath: path)
            }
        }
    }

    /// A new file name under `media.dir/tmp` (created with the first upload).
    func temporaryFile() -> String {
        try? FileManager.default.createDirectory(atPath: temporaryDirectory, withIntermediateDirectories: true)
        return "\(temporaryDirectory)/\(Self.newID()).part"
    }

    struct Received {
        var size: Int64
        var sha256: String
        var head: [UInt8]
    }

    /// Streams `body` into a new file, hashing it; throws `too_large` past `maxBytes` without
    /// reading further.
    func receive(_ body: MediaByteStream, into path: String, maxBytes: Int64) async throws -> Received {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw GatewayError.unavailable("cannot create a temporary file in media.dir")
        }
        let sink = FileSink(handle)
        var hasher = SHA256()
        var size: Int64 = 0
        var head: [UInt8] = []
        do {
            for try await chunk in body {
                size += Int64(chunk.readableBytes)
                if size > maxBytes {
                    throw GatewayError(.tooLarge, "the file is larger than media.max_bytes (\(maxBytes))")
                }
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                if head.count < 512 { head += chunk.getBytes(at: chunk.readerIndex, length: min(512 - head.count, chunk.readableBytes)) ?? [] }
                try await sink.write(chunk)
            }
            try await sink.finish()
        } catch {
            try? await sink.finish()
            throw error
        }
        return Received(size: size, sha256: SigV4Signer.hex(hasher.finalize()), head: head)
    }

    /// zstd of the file at `source` into `target` (streaming); returns the compressed size.
    func compressFile(_ source: String, into target: String) async throws -> Int64 {
        let level = settings.zstdLevel
        return try await NIOThreadPool.singleton.runIfActive {
            guard let input = FileHandle(forReadingAtPath: source), FileManager.default.createFile(atPath: target, contents: nil),
                let output = FileHandle(forWritingAtPath: target)
            else { throw GatewayError.unavailable("cannot create a temporary file in media.dir") }
            defer {
                try? input.close()
                try? output.close()
            }
            let compressor = try ZstdCompressor(level: level)
            var total: Int64 = 0
            var out = ByteBuffer()
            while let data = try input.read(upToCount: 1 << 20), !data.isEmpty {
                try compressor.compress(ByteBuffer(bytes: data), into: &out)
                total += Int64(out.readableBytes)
                try output.write(contentsOf: out.readableBytesView)
                out.clear()
            }
            try compressor.finish(into: &out)
            total += Int64(out.readableBytes)
            try output.write(contentsOf: out.readableBytesView)
            try output.synchronize()
            return total
        }
    }

    // MARK: Reading

    public func record(_ id: String) async throws -> MediaRecord? {
        guard MediaRecord.isValidID(id) else { return nil }
        return try await metadata.media(id)
    }

    public func authorize(_ record: MediaRecord, user: String) async throws {
        if let original = record.originalID {
            guard let parent = try await metadata.media(original) else { throw GatewayError.forbidden("you may not read this media") }
            return try await authorize(parent, user: user)
        }
        if record.uploader == user { return }
        for conversation in try await metadata.mediaConversations(record.id) {
            if conversation.hasPrefix("u:") {
                let pair = conversation.dropFirst(2).split(separator: "|", maxSplits: 1)
                if pair.contains(where: { $0 == user }) { return }
            } else if conversation.hasPrefix("g:") {
                if try await groups.isMember(user, of: String(conversation.dropFirst(2))) { return }
            }
        }
        throw GatewayError.forbidden("you may not read this media")
    }

    public func recordSent(_ ids: [String], conversation: String) async throws {
        try await metadata.recordMediaSent(ids, conversation: conversation)
    }

    public func open(_ record: MediaRecord, acceptZstd: Bool, range: ClosedRange<Int64>?) async throws -> MediaDownload {
        if record.compression == .zstd {
            let stored = try await blobs.read(key: record.blobKey, range: nil)
            if acceptZstd {
                return MediaDownload(record: record, body: stored, contentLength: record.storedSize, contentEncoding: "zstd", range: nil)
            }
            let inflater = try StreamInflater(stored, maxSize: Int(record.size))
            return MediaDownload(record: record, body: MediaByteStream { try await inflater.next() }, contentLength: record.size, contentEncoding: nil, range: nil)
        }
        let body = try await blobs.read(key: record.blobKey, range: range)
        let length = range.map { $0.upperBound - $0.lowerBound + 1 } ?? record.size
        return MediaDownload(record: record, body: body, contentLength: length, contentEncoding: nil, range: range)
    }

    public func attachment(_ record: MediaRecord) -> JSONValue {
        var object: JSONObject = [
            "media_id": .string(record.id), "content_type": .string(record.contentType), "size": .int(record.size),
        ]
        if let name = record.name { object["name"] = .string(name) }
        object["url"] = .string("/v1/media/\(record.id)")
        if let width = record.width, let height = record.height, record.originalID == nil {
            object["width"] = .int(width)
            object["height"] = .int(height)
            if let thumb = record.thumbnailID { object["thumbnail_url"] = .string("/v1/media/\(thumb)") }
        }
        return .object(object)
    }

    public func uploadResponse(_ record: MediaRecord) async throws -> JSONValue {
        var object: JSONObject = [
            "media_id": .string(record.id), "size": .int(record.size), "stored_size": .int(record.storedSize),
            "content_type": .string(record.contentType), "sha256": .string(record.sha256),
        ]
        if let name = record.name { object["name"] = .string(name) }
        if let width = record.width, let height = record.height {
            object["width"] = .int(width)
            object["height"] = .int(height)
        }
        if let id = record.thumbnailID, let thumb = try await metadata.media(id) {
            object["thumbnail"] = [
                "media_id": .string(thumb.id), "width": .int(thumb.width ?? 0), "height": .int(thumb.height ?? 0),
                "content_type": .string(thumb.contentType),
            ]
        }
        return .object(object)
    }

    public func statistics() async throws -> MediaStatistics {
        try await metadata.mediaStatistics()
    }
}

/// Writes chunks to a file on the blocking pool.
final class FileSink: @unchecked Sendable {
    // One writer (the upload that owns it) at a time, hence unchecked.
    private let handle: FileHandle
    private var closed = false

    init(_ handle: FileHandle) { self.handle = handle }

    func write(_ chunk: ByteBuffer) async throws {
        let handle = self.handle
        try await NIOThreadPool.singleton.runIfActive { try handle.write(contentsOf: chunk.readableBytesView) }
    }

    func finish() async throws {
        guard !closed else { return }
        closed = true
        let handle = self.handle
        try await NIOThreadPool.singleton.runIfActive {
            try handle.synchronize()
            try handle.close()
        }
    }
}

/// Decompresses a stored zstd blob while it streams, capped at the original's size.
final class StreamInflater: @unchecked Sendable {
    // Pulled by one consumer (the download it belongs to) at a time, hence unchecked.
    private var source: MediaByteStream.AsyncIterator
    private let decompressor: ZstdDecompressor
    private var done = false

    init(_ stream: MediaByteStream, maxSize: Int) throws {
        source = stream.makeAsyncIterator()
        decompressor = try ZstdDecompressor(maxSize: maxSize)
    }

    func next() async throws -> ByteBuffer? {
        while !done {
            guard let chunk = try await source.next() else {
                done = true
                try decompressor.finish()
                return nil
            }
            var out = ByteBuffer()
            try decompressor.decompress(chunk, into: &out)
            if out.readableBytes > 0 { return out }
        }
        return nil
    }
}
