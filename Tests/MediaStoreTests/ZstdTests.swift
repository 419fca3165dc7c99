import Foundation
import GatewayTesting
import NIOCore
import Testing

@testable import MediaStore

@Suite("zstd wrapper")
struct ZstdTests {
    static func text(bytes: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        var line = 0
        while buffer.readableBytes < bytes {
            buffer.writeString("line \(line): the quick brown fox jumps over the lazy dog \(line % 97)\n")
            line += 1
        }
        return buffer.getSlice(at: 0, length: bytes)!
    }

    @Test("one-shot round trip, smaller, and higher levels compress at least as well")
    func oneShot() throws {
        let input = Self.text(bytes: 1 << 20)
        let fast = try ZstdCompressor.compress(input, level: 1)
        let strong = try ZstdCompressor.compress(input, level: 19)
        #expect(fast.readableBytes < input.readableBytes / 5)
        #expect(strong.readableBytes <= fast.readableBytes)
        #expect(try ZstdDecompressor.decompress(fast, maxSize: 1 << 20) == input)
        #expect(try ZstdDecompressor.decompress(strong, maxSize: 1 << 20) == input)
    }

    @Test("streaming in uneven chunks matches the input, and the zstd CLI reads our frames")
    func streaming() async throws {
        let input = Self.text(bytes: 3_000_001)
        let compressor = try ZstdCompressor(level: 3)
        var compressed = ByteBuffer()
        var offset = 0
        var size = 1
        while offset < input.readableBytes {
            let n = min(size, input.readableBytes - offset)
            try compressor.compress(input.getSlice(at: offset, length: n)!, into: &compressed)
            offset += n
            size = size * 3 + 7
        }
        try compressor.finish(into: &compressed)

        let decompressor = try ZstdDecompressor(maxSize: input.readableBytes)
        var output = ByteBuffer()
        var at = 0
        while at < compressed.readableBytes {
            let n = min(4099, compressed.readableBytes - at)
            try decompressor.decompress(compressed.getSlice(at: at, length: n)!, into: &output)
            at += n
        }
        try decompressor.finish()
        #expect(output == input)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("zstd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("blob.zst")
        let plain = directory.appendingPathComponent("blob")
        try Data(compressed.readableBytesView).write(to: file)
        #expect(try await runCommand("/usr/bin/zstd", ["-d", "-q", "-f", "-o", plain.path, file.path]) == 0)
        #expect(try Data(contentsOf: plain) == Data(input.readableBytesView))
    }

    @Test("a zstd bomb stops at the cap")
    func bomb() throws {
        // 256 MiB of zeros compress to a few KiB.
        let compressor = try ZstdCompressor(level: 3)
        var bomb = ByteBuffer()
        let zeros = ByteBuffer(repeating: 0, count: 1 << 20)
        for _ in 0..<256 { try compressor.compress(zeros, into: &bomb) }
        try compressor.finish(into: &bomb)
        #expect(bomb.readableBytes < 64 * 1024)
        #expect(throws: ZstdError(kind: .tooLarge(limit: 1 << 20))) {
            _ = try ZstdDecompressor.decompress(bomb, maxSize: 1 << 20)
        }
        // Streamed: the output never grows much past the cap either.
        let decompressor = try ZstdDecompressor(maxSize: 1 << 20)
        var output = ByteBuffer()
        #expect(throws: ZstdError.self) { try decompressor.decompress(bomb, into: &output) }
        #expect(output.readableBytes <= (1 << 20) + 1)
    }

    @Test("truncated and garbage input fail cleanly")
    func badInput() throws {
        let frame = try ZstdCompressor.compress(Self.text(bytes: 100_000), level: 3)
        let cut = frame.getSlice(at: 0, length: frame.readableBytes / 2)!
        #expect(throws: ZstdError(kind: .truncated)) { _ = try ZstdDecompressor.decompress(cut, maxSize: 1 << 20) }
        #expect(throws: ZstdError.self) { _ = try ZstdDecompressor.decompress(ByteBuffer(string: "definitely not zstd"), maxSize: 1 << 20) }
    }
}

/// Runs a program to completion and returns its exit status (output discarded).
func runCommand(_ path: String, _ arguments: [String]) async throws -> Int32 {
    try await Command.run(path, arguments).status.exitCode
}
