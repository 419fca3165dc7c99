import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy in front of the gateway. With a marker, it forwards everything except one
/// WebSocket frame from the gateway: the first `message` frame containing the marker (the gap
/// a client must notice, seq 3 after 1, on a real socket). Without one, it plays a proxy that
/// cannot carry WebSockets: it closes connections whose first request is `GET /v1/ws` and
/// forwards plain HTTP (long-poll) as it is.
final class FrameDroppingProxy: Sendable {
    let channel: any Channel
    let counter: DropCounter
    var port: Int { channel.localAddress?.port ?? 0 }
    var dropped: Int { counter.count }

    final class DropCounter: Sendable {
        /// Guards the number of frames dropped.
        private let value = Mutex(0)
        let marker: String
        init(marker: String) { self.marker = marker }
        /// True for the first frame carrying the marker.
        func shouldDrop(_ text: String) -> Bool {
            // A live `message` frame only (a sync answer carries the same message inside).
            guard text.contains("{\"type\":\"message\""), !text.contains("\"type\":\"sync\""), text.contains(marker) else { return false }
            return value.withLock { count in
                defer { count += 1 }
                return count == 0
            }
        }
        var count: Int { value.withLock { $0 } }
    }

    private init(channel: any Channel, counter: DropCounter) {
        self.channel = channel
        self.counter = counter
    }

    static func start(upstreamPort: Int, dropping marker: String?) async throws -> FrameDroppingProxy {
        let counter = DropCounter(marker: marker ?? "")
        let refuseWebSockets = marker == nil
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { client in
                ClientBootstrap(group: client.eventLoop)
                    .connect(host: "127.0.0.1", port: upstreamPort)
                    .flatMap { upstream in
                        client.eventLoop.makeCompletedFuture {
                            try client.pipeline.syncOperations.addHandler(Forwarder(peer: upstream, refuseWebSockets: refuseWebSockets))
                            if refuseWebSockets {
                                try upstream.pipeline.syncOperations.addHandler(Forwarder(peer: client, refuseWebSockets: false))
                            } else {
                                try upstream.pipeline.syncOperations.addHandler(DroppingForwarder(peer: client, counter: counter))
                            }
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FrameDroppingProxy(channel: channel, counter: counter)
    }

    func stop() async {
        try? await channel.close()
    }
}

/// Bytes as they are (or, refusing WebSockets, a close for a `GET /v1/ws`).
private final class Forwarder: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let peer: any Channel
    let refuseWebSockets: Bool
    init(peer: any Channel, refuseWebSockets: Bool) {
        self.peer = peer
        self.refuseWebSockets = refuseWebSockets
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if refuseWebSockets, bytes.getString(at: bytes.readerIndex, length: min(bytes.readableBytes, 10)) == "GET /v1/ws" {
            context.close(promise: nil)
            return
        }
        peer.writeAndFlush(bytes, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
    }
}

/// Gateway → client: the HTTP answer as it is, then whole (unmasked) WebSocket frames, except
/// the one to drop.
private final class DroppingForwarder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let peer: any Channel
    let counter: FrameDroppingProxy.DropCounter
    private var buffer = ByteBuffer()
    private var upgraded = false
    private var passthrough = false

    init(peer: any Channel, counter: FrameDroppingProxy.DropCounter) {
        self.peer = peer
        self.counter = counter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        if passthrough {
            peer.writeAndFlush(buffer.readSlice(length: buffer.readableBytes)!, promise: nil)
            return
        }
        if !upgraded {
            let bytes = buffer.readableBytesView
            guard let end = bytes.firstRange(of: [13, 10, 13, 10]) else { return }
            let length = end.upperBound - bytes.startIndex
            let head = buffer.readSlice(length: length)!
            peer.writeAndFlush(head, promise: nil)
            guard head.getString(at: head.readerIndex, length: 12) == "HTTP/1.1 101" else {
                // Plain HTTP (a page, a token): everything else on this connection as it is.
                passthrough = true
                if buffer.readableBytes > 0 { peer.writeAndFlush(buffer.readSlice(length: buffer.readableBytes)!, promise: nil) }
                return
            }
            upgraded = true
        }
        while let frame = nextFrame() {
            var copy = frame
            let opcode = (copy.readInteger(as: UInt8.self) ?? 0) & 0x0F
            if opcode == 1, let text = frame.getString(at: frame.readerIndex, length: frame.readableBytes), counter.shouldDrop(text) {
                continue
            }
            peer.writeAndFlush(frame, promise: nil)
        }
    }

    /// One whole frame off the buffer (server frames are unmasked).
    private func nextFrame() -> ByteBuffer? {
        guard buffer.readableBytes >= 2, let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) else { return nil }
        var header = 2
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let extended = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return nil }
            header = 4
            length = Int(extended)
        } else if length == 127 {
            guard let extended = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt64.self) else { return nil }
            header = 10
            length = Int(extended)
        }
        guard buffer.readableBytes >= header + length else { return nil }
        return buffer.readSlice(length: header + length)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
    }
}
