import GatewayCore

/// Where media bytes live: local files (`FileBlobStore`) or an S3-compatible bucket
/// (`S3BlobStore`). Keys are content addresses the media service makes (`MediaService.blobKey`:
/// 64 hex characters, optionally `.zst` or `.jpg`), checked before any use.
///
/// Implementation requirements: `put` is idempotent for a key (identical content is stored
/// once); `read` streams with backpressure and never holds a whole blob in memory.
public protocol BlobStore: Sendable {
    /// Moves (or uploads, then removes) the complete file at `path` into the store as `key`.
    /// A key already stored is kept; the file is removed either way.
    func put(key: String, file path: String, size: Int64) async throws
    /// The stored size of `key`, or nil when it is missing.
    func size(of key: String) async throws -> Int64?
    /// The bytes of `key`, or of the inclusive `range` of it.
    func read(key: String, range: ClosedRange<Int64>?) async throws -> MediaByteStream
    func delete(key: String) async throws
}

/// Errors of the media backends.
public struct BlobStoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

enum BlobKey {
    /// 64 lowercase hex characters, then nothing, `.zst` or `.jpg`.
    static func isValid(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard bytes.count == 64 || bytes.count == 68 else { return false }
        let hex = bytes.prefix(64).allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
        guard hex else { return false }
        if bytes.count == 64 { return true }
        let suffix = String(decoding: bytes.suffix(4), as: UTF8.self)
        return suffix == ".zst" || suffix == ".jpg"
    }

    static func check(_ key: String) throws {
        guard isValid(key) else { throw BlobStoreError("invalid blob key") }
    }
}
