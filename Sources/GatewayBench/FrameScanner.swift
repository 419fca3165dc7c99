#if canImport(Glibc)
import Glibc
#endif

/// Just enough JSON reading for the load generator's hot path: the frames it receives are
/// written by the gateway (or the baseline) with a fixed key order, so a byte search for a key
/// finds its value without building a document. A full parse per frame would make the generator,
/// not the server, the bottleneck.
enum FrameScanner {
    /// The server frame kinds the generator reacts to.
    enum Kind: Equatable {
        case hello, ack, message, error, sync, pong, other
    }

    /// The `type` of a frame that starts with `{"type":"…"`, as both servers write it.
    static func kind(_ bytes: UnsafeRawBufferPointer) -> Kind {
        // {"type":"  is 9 bytes; the discriminating letters follow.
        guard bytes.count > 12, bytes[0] == UInt8(ascii: "{"), bytes[2] == UInt8(ascii: "t"), bytes[7] == UInt8(ascii: ":") else {
            return kindSlow(bytes)
        }
        switch (bytes[9], bytes[10]) {
        case (UInt8(ascii: "m"), UInt8(ascii: "e")): return .message
        case (UInt8(ascii: "a"), UInt8(ascii: "c")): return .ack
        case (UInt8(ascii: "h"), UInt8(ascii: "e")): return .hello
        case (UInt8(ascii: "e"), UInt8(ascii: "r")): return .error
        case (UInt8(ascii: "s"), UInt8(ascii: "y")): return .sync
        case (UInt8(ascii: "p"), UInt8(ascii: "o")): return .pong
        default: return .other
        }
    }

    private static func kindSlow(_ bytes: UnsafeRawBufferPointer) -> Kind {
        guard let at = find(Keys.type, in: bytes, from: 0) else { return .other }
        let start = at + Keys.type.count
        guard start + 2 <= bytes.count else { return .other }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
        if starts(rest, with: Array("message\"".utf8)) { return .message }
        if starts(rest, with: Array("ack\"".utf8)) { return .ack }
        if starts(rest, with: Array("hello\"".utf8)) { return .hello }
        if starts(rest, with: Array("error\"".utf8)) { return .error }
        if starts(rest, with: Array("sync\"".utf8)) { return .sync }
        if starts(rest, with: Array("pong\"".utf8)) { return .pong }
        return .other
    }

    private static func starts(_ bytes: UnsafeRawBufferPointer, with prefix: [UInt8]) -> Bool {
        guard bytes.count >= prefix.count else { return false }
        for (index, byte) in prefix.enumerated() where bytes[index] != byte { return false }
        return true
    }

    /// The first offset of `needle` in `bytes` at or after `from`.
    @inline(__always)
    static func find(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from >= 0, from < bytes.count, let base = bytes.baseAddress else { return nil }
        let count = bytes.count
        let length = needle.count
        guard let first = needle.first, length <= count - from else { return nil }
        return needle.withUnsafeBytes { n -> Int? in
            var start = from
            // memchr finds candidates for the first byte (vectorised in libc); then compare the rest.
            while start + length <= count {
                guard let hit = memchr(base + start, Int32(first), count - length - start + 1) else { return nil }
                let index = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + index, n.baseAddress!, length) == 0 { return index }
                start = index + 1
            }
            return nil
        }
    }

    /// The unsigned decimal at `offset` and the offset after it.
    @inline(__always)
    static func integer(in bytes: UnsafeRawBufferPointer, at offset: Int) -> (value: UInt64, end: Int)? {
        var value: UInt64 = 0
        var index = offset
        while index < bytes.count {
            let digit = bytes[index] &- UInt8(ascii: "0")
            guard digit < 10 else { break }
            value = value &* 10 &+ UInt64(digit)
            index += 1
        }
        return index > offset ? (value, index) : nil
    }

    /// The unsigned decimal that follows `key` (a key with its colon, `"seq":`).
    @inline(__always)
    static func integer(after key: [UInt8], in bytes: UnsafeRawBufferPointer, from: Int = 0) -> (value: UInt64, end: Int)? {
        guard let at = find(key, in: bytes, from: from) else { return nil }
        return integer(in: bytes, at: at + key.count)
    }

    /// The string value that follows `key` (a key with its colon and opening quote), up to the
    /// next quote; the generator's own ids never hold escapes.
    static func string(after key: [UInt8], in bytes: UnsafeRawBufferPointer, from: Int = 0) -> String? {
        guard let at = find(key, in: bytes, from: from) else { return nil }
        let start = at + key.count
        var end = start
        while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += 1 }
        guard end < bytes.count else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    /// Keys as the servers write them (compact JSON, no spaces).
    enum Keys {
        static let type = Array("\"type\":\"".utf8)
        static let benchTime = Array("\"bench_t\":".utf8)
        static let benchNumber = Array("\"bench_n\":".utf8)
        static let seq = Array("\"seq\":".utf8)
        static let inboxSeq = Array("\"inbox_seq\":".utf8)
        static let clientMsgID = Array("\"client_msg_id\":\"b".utf8)
        static let ref = Array("\"ref\":\"".utf8)
        static let code = Array("\"code\":\"".utf8)
        static let next = Array("\"next\":".utf8)
        static let moreTrue = Array("\"more\":true".utf8)
        static let messageStart = Array("{\"type\":\"message\"".utf8)
        static let heartbeat = Array("\"heartbeat_ms\":".utf8)
    }
}
