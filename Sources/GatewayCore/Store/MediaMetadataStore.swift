import NIOCore
import Synchronization

/// How a media blob is stored.
public enum MediaCompression: String, Sendable, Hashable, Codable {
    /// The bytes as uploaded.
    case none
    /// One zstd frame of the uploaded bytes.
    case zstd
}

/// What the gateway knows about one stored file (an upload, an inline attachment or a
/// thumbnail).
public struct MediaRecord: Sendable, Hashable {
    /// The media id: `m` followed by 32 lowercase hex characters (128 random bits).
    public var id: String
    public var uploader: String
    /// The content type served (the declared one, or `application/octet-stream` when the
    /// bytes contradict it).
    public var contentType: String
    /// The file name the client gave, if any.
    public var name: String?
    /// Bytes of the original file.
    public var size: Int64
    /// Bytes of the stored blob.
    public var storedSize: Int64
    public var compression: MediaCompression
    /// Lowercase hex SHA-256 of the original bytes.
    public var sha256: String
    /// The blob's key in the media backend (content-addressed: identical uploads share it).
    public var blobKey: String
    /// Pixel size of an image.
    public var width: Int?
    public var height: Int?
    /// The thumbnail's media id, for images.
    public var thumbnailID: String?
    /// For a thumbnail: the media id it was made from (readers of that may read this).
    public var originalID: String?
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64

    public init(
        id: String, uploader: String, contentType: String, name: String? = nil, size: Int64, storedSize: Int64,
        compression: MediaCompression, sha256: String, blobKey: String, width: Int? = nil, height: Int? = nil,
        thumbnailID: String? = nil, originalID: String? = nil, createdAt: Int64
    ) {
        self.id = id
        self.uploader = uploader
        self.contentType = contentType
        self.name = name
        self.size = size
        self.storedSize = storedSize
        self.compression = compression
        self.sha256 = sha256
        self.blobKey = blobKey
        self.width = width
        self.height = height
        self.thumbnailID = thumbnailID
        self.originalID = originalID
        self.createdAt = createdAt
    }

    /// Whether `id` has the shape of a media id (checked before any store or file access).
    public static func isValidID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        guard bytes.count == 33, bytes[0] == UInt8(ascii: "m") else { return false }
        return bytes.dropFirst().allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}

/// Totals for `/admin/stats` (`media`) and `/metrics`.
public struct MediaStatistics: Sendable, Hashable {
    /// Media records created by uploads and inline attachments (thumbnails not counted).
    public var uploads: Int
    /// Original bytes received.
    public var bytesIn: Int64
    /// Bytes of the stored blobs of those records.
    public var bytesStored: Int64

    public init(uploads: Int, bytesIn: Int64, bytesStored: Int64) {
        self.uploads = uploads
        self.bytesIn = bytesIn
        self.bytesStored = bytesStored
    }
}

/// Media metadata: the records of stored files and the conversations each was sent in.
///
/// Implementations: `SQLiteStore`'s `EmbeddedStore`, `GatewayTesting`'s `InMemoryStore` and the
/// PostgreSQL backend. The blobs themselves live in the media backend (docs/MEDIA.md); this
/// store only holds what is needed to find and authorize them.
///
/// ```swift
/// try await store.insertMedia(record)
/// try await store.recordMediaSent([record.id], conversation: Address.user("bob").conversationKey(sender: "alice"))
/// let rooms = try await store.mediaConversations(record.id)   // ["u:alice|bob"]
/// ```
///
/// Implementation requirements:
/// - `insertMedia` is atomic; a second record with the same id throws `GatewayError(.conflict)`.
/// - `recordMediaSent` is idempotent (the same pair twice is one row) and ignores unknown ids.
/// - The totals of `mediaStatistics` count records whose `originalID` is nil (thumbnails are
///   not uploads) and survive a restart.
public protocol MediaMetadataStore: Sendable {
    func insertMedia(_ record: MediaRecord) async throws
    /// The record of `id`, or nil.
    func media(_ id: String) async throws -> MediaRecord?
    /// Notes that each media id was sent in `conversation` (see `Address.conversationKey`).
    func recordMediaSent(_ ids: [String], conversation: String) async throws
    /// The conversations a media id was sent in.
    func mediaConversations(_ id: String) async throws -> [String]
    /// Sum of `size` over `user`'s uploads (thumbnails excluded), for the per-user quota.
    func mediaBytes(uploadedBy user: String) async throws -> Int64
    func mediaStatistics() async throws -> MediaStatistics
}

/// Chunks of bytes pulled one at a time (an upload's body, a blob being read): backpressure by
/// construction, since nothing is read before the consumer asks for it.
public struct MediaByteStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    private let pull: @Sendable () async throws -> ByteBuffer?

    /// - Parameter pull: the next chunk, or nil at the end; called by one consumer at a time.
    public init(pull: @escaping @Sendable () async throws -> ByteBuffer?) {
        self.pull = pull
    }

    /// One buffer, then the end.
    public init(_ buffer: ByteBuffer) {
        let box = OneShot(buffer)
        self.init(pull: { box.take() })
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let pull: @Sendable () async throws -> ByteBuffer?
        public mutating func next() async throws -> ByteBuffer? { try await pull() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(pull: pull) }
}


private final class OneShot: Sendable {
    /// Guards the buffer not yet handed out.
    private let value: Mutex<ByteBuffer?>
    init(_ buffer: ByteBuffer) { value = Mutex(buffer) }
    func take() -> ByteBuffer? { value.withLock { v in defer { v = nil }; return v } }
}

/// A blob opened for reading, with what the response needs to describe it.
public struct MediaDownload: Sendable {
    public var record: MediaRecord
    /// The bytes to send.
    public var body: MediaByteStream
    /// Length of `body`, when known (always for uncompressed blobs and zstd passed through).
    public var contentLength: Int64?
    /// `zstd` when the body is the stored zstd frame.
    public var contentEncoding: String?
    /// The byte range served (`206`), inclusive, of the original.
    public var range: ClosedRange<Int64>?

    public init(record: MediaRecord, body: MediaByteStream, contentLength: Int64?, contentEncoding: String?, range: ClosedRange<Int64>?) {
        self.record = record
        self.body = body
        self.contentLength = contentLength
        self.contentEncoding = contentEncoding
        self.range = range
    }
}

/// The media feature as stages and routes use it: storing files, checking who may read them,
/// and reading them back. The executable builds one (`MediaStore`'s `MediaService`) from the
/// `media:` settings, a media backend and a `MediaMetadataStore`, and puts it in `Stores.media`.
///
/// Errors thrown are `GatewayError`s with PROTOCOL.md codes (`too_large`, `bad_frame`,
/// `not_found`, `forbidden`, `unavailable`).
public protocol MediaLibrary: Sendable {
    /// Largest inline attachment (decoded bytes).
    var inlineMaxBytes: Int { get }
    /// Stores one file read from `body` for `uploader`; `declaredLength` (a Content-Length)
    /// lets an oversized upload be refused before reading it.
    func store(_ body: MediaByteStream, declaredLength: Int64?, contentType: String, name: String?, uploader: String) async throws -> MediaRecord
    /// The record of a well-formed id, or nil.
    func record(_ id: String) async throws -> MediaRecord?
    /// Throws `forbidden` unless `user` may read `record` (its uploader, or a member of a
    /// conversation it, or for a thumbnail its original, was sent in).
    func authorize(_ record: MediaRecord, user: String) async throws
    /// Records that media were sent in a conversation, so its members may read them.
    func recordSent(_ ids: [String], conversation: String) async throws
    /// Opens a record's blob: zstd passed through when `acceptZstd` and stored so, otherwise
    /// the original bytes (decompressed while streaming), restricted to `range` when given and
    /// the blob is stored uncompressed.
    func open(_ record: MediaRecord, acceptZstd: Bool, range: ClosedRange<Int64>?) async throws -> MediaDownload
    /// The JSON an attachment is delivered as: `{media_id, content_type, size, name?, url}` plus
    /// `width, height, thumbnail_url` for images.
    func attachment(_ record: MediaRecord) -> JSONValue
    /// Upload response body (PROTOCOL.md §5).
    func uploadResponse(_ record: MediaRecord) async throws -> JSONValue
    func statistics() async throws -> MediaStatistics
}
