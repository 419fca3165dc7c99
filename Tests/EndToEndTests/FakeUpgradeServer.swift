import NIOCore
import NIOPosix
import Synchronization

/// A server that answers every WebSocket handshake with `101` and a wrong
/// `Sec-WebSocket-Accept`, recording the `Sec-WebSocket-Key` of each request: a client must
/// send a fresh random key each time and refuse the answer.
final class FakeUpgradeServer: Sendable {
    let channel: any Channel
    /// Guards the keys seen.
    let keys = Mutex<[String]>([])
    var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) {
        self.channel = channel
    }

    static func start() async throws -> FakeUpgradeServer {
        let recorder = KeyRecorder()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(WrongAcceptHandler(recorder: recorder)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = FakeUpgradeServer(channel: channel)
        recorder.server.withLock { $0 = server }
        return server
    }

    func stop() async {
        try? await channel.close()
    }
}

private final class KeyRecorder: Sendable {
    /// Guards the server the keys go to (set once it is bound).
    let server = Mutex<FakeUpgradeServer?>(nil)
    func record(_ key: String) {
        server.withLock { $0 }?.keys.withLock { $0.append(key) }
    }
}

private final class WrongAcceptHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let recorder: KeyRecorder
    private var request = ""

    init(recorder: KeyRecorder) {
        self.recorder = recorder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        request += buffer.readString(length: buffer.readableBytes) ?? ""
        guard request.contains("\r\n\r\n") else { return }
        let key = request.split(separator: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }
            .map { String($0.dropFirst("sec-websocket-key:".count)).trimmingCharacters(in: .whitespaces) } ?? ""
        recorder.record(key)
        request = ""
        let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: dGhpcyBpcyB3cm9uZw==\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer)), promise: nil)
    }
}
