import NIOCore

/// The frames the generator sends, written straight into one `ByteBuffer` each: WebSocket
/// header, zero mask key and JSON payload, with no intermediate `String` or array.
///
/// The mask key is all zeros: RFC 6455 requires masking (the servers check the bit), and the key
/// exists to stop cache poisoning through browsers' proxies, which a load generator talking to
/// its own server does not need; a zero key costs no XOR pass per byte.
enum ClientFrames {
    /// Bytes reserved before the payload: 2 header bytes, 2 extended length bytes, 4 mask bytes.
    static let headroom = 8

    /// Writes a masked text frame whose payload `body` writes; payloads up to 65,535 bytes.
    @inline(__always)
    static func text(allocator: ByteBufferAllocator, capacity: Int, _ body: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: capacity + headroom)
        buffer.moveWriterIndex(forwardBy: headroom)
        buffer.moveReaderIndex(forwardBy: headroom)
        body(&buffer)
        let length = buffer.readableBytes
        precondition(length <= 0xFFFF, "bench frames are at most 65535 bytes")
        let start: Int
        if length < 126 {
            start = headroom - 6
            buffer.setInteger(UInt8(0x80 | length), at: start + 1)
        } else {
            start = headroom - 8
            buffer.setInteger(UInt8(0x80 | 126), at: start + 1)
            buffer.setInteger(UInt16(length), at: start + 2)
        }
        buffer.setInteger(UInt8(0x81), at: start)  // FIN + text
        buffer.setInteger(UInt32(0), at: headroom - 4)  // mask key
        buffer.moveReaderIndex(to: start)
        return buffer
    }

    /// A `send` frame: `{"type":"send","to":…,"client_msg_id":"b<n>-<t>","body":{"bench_t":t,"bench_n":n,"pad":"…"}}`,
    /// the body padded to `bodyBytes`. `t` (monotonic ns at send) gives the end-to-end latency at
    /// the recipient, and the id gives the ack latency at the sender, with no table of sends.
    static func send(allocator: ByteBufferAllocator, to address: [UInt8], number: UInt64, nanos: UInt64, bodyBytes: Int) -> ByteBuffer {
        text(allocator: allocator, capacity: bodyBytes + address.count + 96) { buffer in
            buffer.writeStaticString("{\"type\":\"send\",\"to\":")
            buffer.writeBytes(address)
            buffer.writeStaticString(",\"client_msg_id\":\"b")
            writeDecimal(number, into: &buffer)
            buffer.writeStaticString("-")
            writeDecimal(nanos, into: &buffer)
            buffer.writeStaticString("\",\"body\":{\"bench_t\":")
            writeDecimal(nanos, into: &buffer)
            buffer.writeStaticString(",\"bench_n\":")
            writeDecimal(number, into: &buffer)
            buffer.writeStaticString(",\"pad\":\"")
            let fixed = 32 + decimalDigits(nanos) + decimalDigits(number)
            let pad = max(0, bodyBytes - fixed)
            buffer.writeRepeatingByte(UInt8(ascii: "x"), count: pad)
            buffer.writeStaticString("\"}}")
        }
    }

    /// `{"type":"ping","ref":"<nanos>"}`: a heartbeat whose `pong` gives a round-trip time.
    static func ping(allocator: ByteBufferAllocator, nanos: UInt64) -> ByteBuffer {
        text(allocator: allocator, capacity: 48) { buffer in
            buffer.writeStaticString("{\"type\":\"ping\",\"ref\":\"")
            writeDecimal(nanos, into: &buffer)
            buffer.writeStaticString("\"}")
        }
    }

    /// `{"type":"sync","since":S,"limit":1000}`.
    static func sync(allocator: ByteBufferAllocator, since: Int64) -> ByteBuffer {
        text(allocator: allocator, capacity: 64) { buffer in
            buffer.writeStaticString("{\"type\":\"sync\",\"since\":")
            writeDecimal(UInt64(max(0, since)), into: &buffer)
            buffer.writeStaticString(",\"limit\":1000}")
        }
    }

    /// A masked control frame (pong, close) with a short payload.
    static func control(opcode: UInt8, payload: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: payload.count + 6)
        buffer.writeInteger(UInt8(0x80 | opcode))
        buffer.writeInteger(UInt8(0x80 | min(payload.count, 125)))
        buffer.writeInteger(UInt32(0))
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: payload.prefix(125)))
        return buffer
    }

    /// The JSON address of a user or a group.
    static func address(user: String) -> [UInt8] { Array("{\"user\":\"\(user)\"}".utf8) }
    static func address(group: String) -> [UInt8] { Array("{\"group\":\"\(group)\"}".utf8) }

    @inline(__always)
    static func decimalDigits(_ value: UInt64) -> Int {
        var digits = 1
        var rest = value
        while rest >= 10 {
            rest /= 10
            digits += 1
        }
        return digits
    }

    @inline(__always)
    static func writeDecimal(_ value: UInt64, into buffer: inout ByteBuffer) {
        let digits = decimalDigits(value)
        let start = buffer.writerIndex
        buffer.writeRepeatingByte(UInt8(ascii: "0"), count: digits)
        var rest = value
        var index = start + digits - 1
        while index >= start {
            buffer.setInteger(UInt8(ascii: "0") + UInt8(rest % 10), at: index)
            rest /= 10
            index -= 1
        }
    }
}
