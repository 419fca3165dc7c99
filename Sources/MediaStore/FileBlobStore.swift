import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import Synchronization

/// Blobs as files under `dir/blobs/ab/<key>` (content-addressed: identical uploads are one
/// file). New files are written elsewhere in `dir/tmp`, fsynced, then renamed into place, so a
/// blob is either whole or absent after a crash.
///
/// Blocking file calls run on NIO's blocking thread pool, never on an event loop.
/// `Sendable`: immutable.
public struct FileBlobStore: BlobStore {
    public let directory: String
    /// Bytes per chunk read.
    static let chunk = 128 * 1024

    /// Directories are created with the first blob.
    public init(directory: String) throws {
        self.directory = directory
    }

    func path(_ key: String) -> String {
        "\(directory)/blobs/\(key.prefix(2))/\(key)"
    }

    public func put(key: String, file source: String, size: Int64) async throws {
        try BlobKey.check(key)
        let target = path(key)
        try await NIOThreadPool.singleton.runIfActive {
            let manager = FileManager.default
            if manager.fileExists(atPath: target) {
                try? manager.removeItem(atPath: source)
                return
            }
            try manager.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if rename(source, target) != 0 {
                let code = errno
                try? manager.removeItem(atPath: source)
                throw BlobStoreError("rename into the media directory failed (errno \(code))")
            }
        }
    }

    public func size(of key: String) async throws -> Int64? {
        try BlobKey.check(key)
        let target = path(key)
        return try await NIOThreadPool.singleton.runIfActive {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: target) else { return nil }
            return (attributes[.size] as? NSNumber)?.int64Value
        }
    }

    public func read(key: String, range: ClosedRange<Int64>?) async throws -> MediaByteStream {
        try BlobKey.check(key)
        let target = path(key)
        let reader = try await NIOThreadPool.singleton.runIfActive { try FileChunkReader(path: target, range: range) }
        return MediaByteStream { try await reader.next() }
    }

    public func delete(key: String) async throws {
        try BlobKey.check(key)
        let target = path(key)
        try await NIOThreadPool.singleton.runIfActive { try? FileManager.default.removeItem(atPath: target) }
    }
}

/// Reads a file (or a range of it) chunk by chunk on the blocking pool; closes it at the end
/// or when released.
final class FileChunkReader: Sendable {
    /// Guards the open handle and the bytes left to read.
    private let state: Mutex<(handle: FileHandle?, left: Int64)>

    init(path: String, range: ClosedRange<Int64>?) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BlobStoreError("blob missing") }
        var left = Int64.max
        if let range {
            try handle.seek(toOffset: UInt64(range.lowerBound))
            left = range.upperBound - range.lowerBound + 1
        }
        state = Mutex((handle, left))
    }

    func next() async throws -> ByteBuffer? {
        try await NIOThreadPool.singleton.runIfActive { [self] in
            try state.withLock { state -> ByteBuffer? in
                guard let handle = state.handle, state.left > 0 else { return nil }
                let want = Int(min(Int64(FileBlobStore.chunk), state.left))
                let data = try handle.read(upToCount: want) ?? Data()
                if data.isEmpty {
                    try? handle.close()
                    state.handle = nil
                    return nil
                }
                state.left -= Int64(data.count)
                return ByteBuffer(bytes: data)
            }
        }
    }

    deinit {
        state.withLock { try? $0.handle?.close() }
    }
}
