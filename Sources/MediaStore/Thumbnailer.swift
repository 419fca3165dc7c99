import CVips
import Foundation
import GatewayCore
import NIOPosix

/// A thumbnail and the original's size.
public struct Thumbnail: Sendable {
    /// The original's pixel size, EXIF orientation applied.
    public var width: Int
    public var height: Int
    /// JPEG bytes, metadata stripped.
    public var jpeg: [UInt8]
    public var thumbnailWidth: Int
    public var thumbnailHeight: Int
}

/// Makes JPEG thumbnails with libvips, off the event loops (NIO's blocking pool) and at most
/// `concurrency` at a time. The image's header is read first and an image of more than
/// `maxPixels` pixels is refused without decoding it (a decompression bomb costs nothing).
///
/// `Sendable`: immutable apart from the limiter, an actor.
public struct Thumbnailer: Sendable {
    public let maxSide: Int
    public let maxPixels: Int
    let limiter: ConcurrencyLimiter

    public init(maxSide: Int, maxPixels: Int, concurrency: Int) {
        self.maxSide = maxSide
        self.maxPixels = maxPixels
        self.limiter = ConcurrencyLimiter(limit: concurrency)
        _ = Self.vipsReady
    }

    /// libvips wants `vips_init` once per process, before any other call; a lazy static is
    /// the one-time initializer (it holds no state of ours). Loaders of formats we never
    /// thumbnail and that are risky on untrusted input (ImageMagick, PDF, SVG...) are blocked.
    static let vipsReady: Bool = {
        guard vips_init("chatgate") == 0 else { return false }
        vips_block_untrusted_set(1)
        // Caching decoded images helps batch tools, not a server handling each file once.
        vips_cache_set_max(0)
        return true
    }()

    /// The thumbnail of the image file at `path`. Throws `too_large` for an image over the
    /// pixel limit and `bad_frame` for bytes libvips cannot decode.
    public func thumbnail(ofFile path: String) async throws -> Thumbnail {
        guard Self.vipsReady else { throw GatewayError(.unavailable, "the image library failed to start") }
        let maxSide = self.maxSide
        let maxPixels = self.maxPixels
        return try await limiter.run {
            try await NIOThreadPool.singleton.runIfActive {
                try Self.make(path: path, maxSide: maxSide, maxPixels: maxPixels)
            }
        }
    }

    /// The original's (width, height) from its header only, EXIF orientation applied.
    static func dimensions(path: String) throws -> (Int, Int) {
        guard let header = cvips_header_from_file(path) else {
            throw GatewayError(.badFrame, "the image cannot be decoded: \(Self.lastError())")
        }
        defer { cvips_unref(header) }
        var width = Int(vips_image_get_width(header))
        var height = Int(vips_image_get_height(header))
        var orientation: Int32 = 1
        if vips_image_get_typeof(header, "orientation") != 0 {
            _ = vips_image_get_int(header, "orientation", &orientation)
        }
        if (5...8).contains(orientation) { swap(&width, &height) }
        return (width, height)
    }

    static func make(path: String, maxSide: Int, maxPixels: Int) throws -> Thumbnail {
        let (width, height) = try dimensions(path: path)
        guard width > 0, height > 0, width.multipliedReportingOverflow(by: height).partialValue <= maxPixels,
            width <= 100_000, height <= 100_000
        else {
            throw GatewayError(.tooLarge, "the image has \(width) x \(height) pixels, more than media.thumbnail.max_pixels (\(maxPixels))")
        }
        var out: UnsafeMutablePointer<VipsImage>?
        guard cvips_thumbnail(path, &out, Int32(maxSide)) == 0, let image = out else {
            throw GatewayError(.badFrame, "the image cannot be decoded: \(Self.lastError())")
        }
        defer { cvips_unref(image) }
        var buffer: UnsafeMutableRawPointer?
        var length = 0
        guard cvips_jpegsave(image, &buffer, &length, 80) == 0, let buffer else {
            throw GatewayError(.badFrame, "the thumbnail cannot be encoded: \(Self.lastError())")
        }
        defer { g_free(buffer) }
        let bytes = Array(UnsafeRawBufferPointer(start: buffer, count: length))
        return Thumbnail(
            width: width, height: height, jpeg: bytes,
            thumbnailWidth: Int(vips_image_get_width(image)), thumbnailHeight: Int(vips_image_get_height(image)))
    }

    /// A gradient image of `width` x `height` encoded as `format` (`.png`, `.jpg`, `.webp`,
    /// `.gif`): fixtures for tests and the benchmark.
    public static func syntheticImage(width: Int, height: Int, format: String) throws -> [UInt8] {
        guard vipsReady else { throw GatewayError(.unavailable, "the image library failed to start") }
        var buffer: UnsafeMutableRawPointer?
        var length = 0
        guard cvips_test_image(Int32(width), Int32(height), format, &buffer, &length) == 0, let buffer else {
            throw GatewayError(.internal, "cannot make a test image: \(lastError())")
        }
        defer { g_free(buffer) }
        return Array(UnsafeRawBufferPointer(start: buffer, count: length))
    }

    /// The pixel size in an image file's header (EXIF orientation applied), without decoding.
    public static func headerSize(ofFile path: String) throws -> (width: Int, height: Int) {
        guard vipsReady else { throw GatewayError(.unavailable, "the image library failed to start") }
        return try dimensions(path: path)
    }

    static func lastError() -> String {
        let text = vips_error_buffer().map { String(cString: $0) } ?? "unknown error"
        vips_error_clear()
        return text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").first.map(String.init) ?? text
    }
}

/// At most `limit` operations at once; the others wait in order (bounded by the callers:
/// each waiting upload holds its own request).
actor ConcurrencyLimiter {
    let limit: Int
    private var running = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        if running >= limit {
            await withCheckedContinuation { waiters.append($0) }
        } else {
            running += 1
        }
        defer { release() }
        return try await body()
    }

    private func release() {
        if waiters.isEmpty {
            running -= 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}
