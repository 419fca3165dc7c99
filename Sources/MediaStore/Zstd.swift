import CZstd
import NIOCore

/// A zstd failure: the library's own error, a decompressed size over the cap (a zstd bomb), or
/// input that ends inside a frame.
public struct ZstdError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case library(String)
        /// The output would exceed `limit` bytes.
        case tooLarge(limit: Int)
        /// The input ended before its frame did.
        case truncated
    }

    public let kind: Kind

    public var description: String {
        switch kind {
        case .library(let name): "zstd: \(name)"
        case .tooLarge(let limit): "zstd: decompressed data larger than \(limit) bytes"
        case .truncated: "zstd: input ends inside a frame"
        }
    }

    static func check(_ result: Int) throws(ZstdError) -> Int {
        if ZSTD_isError(result) != 0 { throw ZstdError(kind: .library(String(cString: ZSTD_getErrorName(result)))) }
        return result
    }
}

/// Streaming zstd compression of `ByteBuffer`s into one frame.
///
/// Not `Sendable`: one task feeds it. The context is freed when the value is released.
public final class ZstdCompressor {
    private let context: OpaquePointer
    public let level: Int

    /// - Parameter level: 1...19 (higher: smaller and slower).
    public init(level: Int) throws(ZstdError) {
        guard let context = ZSTD_createCCtx() else { throw ZstdError(kind: .library("out of memory")) }
        self.context = context
        self.level = level
        _ = try ZstdError.check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)))
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `input`, appending what zstd emits so far to `output`.
    public func compress(_ input: ByteBuffer, into output: inout ByteBuffer) throws(ZstdError) {
        var failure: ZstdError?
        input.withUnsafeReadableBytes { source in
            var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            while inBuffer.pos < inBuffer.size {
                do throws(ZstdError) { _ = try step(&inBuffer, &output, ZSTD_e_continue) } catch { failure = error; return }
            }
        }
        if let failure { throw failure }
    }

    /// Ends the frame, appending its last bytes to `output`.
    public func finish(into output: inout ByteBuffer) throws(ZstdError) {
        var inBuffer = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&inBuffer, &output, ZSTD_e_end) != 0 {}
    }

    private func step(_ inBuffer: inout ZSTD_inBuffer, _ output: inout ByteBuffer, _ directive: ZSTD_EndDirective) throws(ZstdError) -> Int {
        var result = 0
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: ZSTD_CStreamOutSize()) { target in
            var outBuffer = ZSTD_outBuffer(dst: target.baseAddress, size: target.count, pos: 0)
            result = ZSTD_compressStream2(context, &outBuffer, &inBuffer, directive)
            return ZSTD_isError(result) != 0 ? 0 : outBuffer.pos
        }
        return try ZstdError.check(result)
    }

    /// One-shot: `input` as one zstd frame.
    public static func compress(_ input: ByteBuffer, level: Int) throws(ZstdError) -> ByteBuffer {
        let compressor = try ZstdCompressor(level: level)
        var output = ByteBuffer()
        output.reserveCapacity(ZSTD_compressBound(input.readableBytes))
        try compressor.compress(input, into: &output)
        try compressor.finish(into: &output)
        return output
    }
}

/// Streaming zstd decompression with a hard cap on the output: a frame that would decompress
/// past `maxSize` bytes throws `.tooLarge` as soon as it gets there (a zstd bomb costs at most
/// `maxSize` bytes and the time to produce them, whatever its header claims).
///
/// Not `Sendable`: one task feeds it.
public final class ZstdDecompressor {
    private let context: OpaquePointer
    public let maxSize: Int
    /// Bytes produced so far.
    public private(set) var produced = 0
    /// zstd's hint after the last call: 0 when a frame has just ended.
    private var pending = 0

    public init(maxSize: Int) throws(ZstdError) {
        guard let context = ZSTD_createDCtx() else { throw ZstdError(kind: .library("out of memory")) }
        self.context = context
        self.maxSize = maxSize
        // Window sizes up to 128 MiB (zstd's default limit), stated so a frame asking more fails.
        _ = try ZstdError.check(ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, 27))
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `input`, appending the output to `output`.
    public func decompress(_ input: ByteBuffer, into output: inout ByteBuffer) throws(ZstdError) {
        var failure: ZstdError?
        let chunk = ZSTD_DStreamOutSize()
        input.withUnsafeReadableBytes { source in
            var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            while true {
                let before = inBuffer.pos
                // One byte past the cap is enough to tell a bomb.
                let left = maxSize - produced
                let room = left >= chunk ? chunk : left + 1
                var written = 0
                var result = 0
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { target in
                    var outBuffer = ZSTD_outBuffer(dst: target.baseAddress, size: room, pos: 0)
                    result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
                    written = ZSTD_isError(result) != 0 ? 0 : outBuffer.pos
                    return written
                }
                do throws(ZstdError) { pending = try ZstdError.check(result) } catch { failure = error; return }
                produced += written
                if produced > maxSize { failure = ZstdError(kind: .tooLarge(limit: maxSize)); return }
                let progressed = written > 0 || inBuffer.pos != before
                if inBuffer.pos < inBuffer.size {
                    if !progressed { return }
                    continue
                }
                // All input taken: done when the frame is complete and flushed (0; another call
                // would start a new frame) or the decoder no longer moves (it wants more input).
                if pending == 0 || !progressed { return }
            }
        }
        if let failure { throw failure }
    }

    /// Throws `.truncated` when the input ended inside a frame.
    public func finish() throws(ZstdError) {
        if pending != 0 { throw ZstdError(kind: .truncated) }
    }

    /// One-shot, with the cap.
    public static func decompress(_ input: ByteBuffer, maxSize: Int) throws(ZstdError) -> ByteBuffer {
        let decompressor = try ZstdDecompressor(maxSize: maxSize)
        var output = ByteBuffer()
        try decompressor.decompress(input, into: &output)
        try decompressor.finish()
        return output
    }
}
