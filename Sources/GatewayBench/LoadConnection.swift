import GatewayCore
import NIOCore

/// One generator WebSocket connection: a NIO handler on the generator's event loop, with no
/// task and no per-message allocation beyond the frames themselves.
///
/// It writes the upgrade request with the client's token, reads the `101`, then parses server
/// frames in place and hands each text payload to the `LoadGenerator` as raw bytes. It answers
/// pings, and reports the close code. Writes are not flushed here: the generator flushes every
/// connection it wrote to once per read batch or timer tick, so frames share system calls.
final class LoadConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let generator: LoadGenerator
    let client: BenchClient
    private var context: ChannelHandlerContext?
    private var buffer = ByteBuffer()
    private var upgraded = false
    private var fragments: ByteBuffer?
    private(set) var closeCode: UInt16?
    /// Written to since the last flush.
    var dirty = false

    init(generator: LoadGenerator, client: BenchClient) {
        self.generator = generator
        self.client = client
    }

    var allocator: ByteBufferAllocator { context?.channel.allocator ?? ByteBufferAllocator() }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        generator.connectionActivated()
        context.writeAndFlush(wrapOutboundOut(generator.handshake(for: client, allocator: context.channel.allocator)), promise: nil)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        generator.connectionClosed(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Queues a frame; the generator flushes.
    @inline(__always)
    func write(_ frame: ByteBuffer) {
        guard let context else { return }
        context.write(wrapOutboundOut(frame), promise: nil)
        if !dirty {
            dirty = true
            generator.markDirty(self)
        }
    }

    func flush() {
        dirty = false
        context?.flush()
    }

    func close() {
        context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer.readableBytes == 0 {
            buffer = incoming
        } else {
            buffer.writeBuffer(&incoming)
        }
        if !upgraded {
            guard readHandshake(context: context) else { return }
        }
        while readFrame(context: context) {}
        if buffer.readableBytes == 0 {
            buffer.clear()
        } else if buffer.readerIndex > 1 << 16 {
            buffer.discardReadBytes()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        generator.flushDirty()
        context.fireChannelReadComplete()
    }

    /// Consumes the HTTP response head; false while it is incomplete or when it refused.
    private func readHandshake(context: ChannelHandlerContext) -> Bool {
        let end: Int? = buffer.withUnsafeReadableBytes { bytes in
            FrameScanner.find(Array("\r\n\r\n".utf8), in: bytes, from: 0)
        }
        guard let end else {
            if buffer.readableBytes > 16_384 { context.close(promise: nil) }
            return false
        }
        let head = buffer.readString(length: end + 4) ?? ""
        let status = head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        guard status == 101 else {
            generator.handshakeRefused(client, status: status)
            context.close(promise: nil)
            return false
        }
        upgraded = true
        return true
    }

    /// Parses one frame if it is complete.
    private func readFrame(context: ChannelHandlerContext) -> Bool {
        let start = buffer.readerIndex
        guard let header = WebSocketFrameHeader.peek(buffer) else { return false }
        guard header.payloadLength < 1 << 30 else {
            context.close(promise: nil)
            return false
        }
        // Server frames are unmasked; a masked one is skipped over correctly all the same.
        let offset = header.headerLength
        let length = Int(header.payloadLength)
        guard buffer.readableBytes >= offset + length else { return false }
        let fin = header.fin
        let opcode = header.opcode
        buffer.moveReaderIndex(forwardBy: offset)
        defer { buffer.moveReaderIndex(to: start + offset + length) }
        switch opcode {
        case 0x1 where fin && fragments == nil:
            buffer.withUnsafeReadableBytes { bytes in
                generator.received(UnsafeRawBufferPointer(rebasing: bytes.prefix(length)), on: self)
            }
        case 0x0, 0x1, 0x2:
            guard var slice = buffer.getSlice(at: buffer.readerIndex, length: length) else { return false }
            if opcode != 0x0 { fragments = ByteBuffer() }
            fragments?.writeBuffer(&slice)
            if fin, let whole = fragments {
                fragments = nil
                if opcode == 0x1 || opcode == 0x0 {
                    whole.withUnsafeReadableBytes { generator.received($0, on: self) }
                }
            }
        case 0x8:
            closeCode = length >= 2 ? buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) : nil
            context.close(promise: nil)
        case 0x9:
            let pong = buffer.withUnsafeReadableBytes { bytes in
                ClientFrames.control(opcode: 0xA, payload: UnsafeRawBufferPointer(rebasing: bytes.prefix(length)), allocator: context.channel.allocator)
            }
            write(pong)
        default:
            break
        }
        return true
    }
}
