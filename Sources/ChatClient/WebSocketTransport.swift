import GatewayCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket
import Synchronization

/// A WebSocket session on NIO's client upgrader: a random `Sec-WebSocket-Key`, the
/// `Sec-WebSocket-Accept` of the answer checked by `NIOWebSocketClientUpgrader`, masked frames,
/// the token in an `auth` frame (never in the URL, where proxies log it). `connect` returns once the gateway's `hello` arrived.
final class WebSocketTransport: ClientTransport {
    let kind = ChatTransportKind.webSocket
    let hello: JSONObject
    let inbound: AsyncStream<InboundEvent>
    private let channel: any Channel

    private init(channel: any Channel, hello: JSONObject, inbound: AsyncStream<InboundEvent>) {
        self.channel = channel
        self.hello = hello
        self.inbound = inbound
    }

    static func connect(configuration: ChatClientConfiguration, token: String) async throws(ConnectFailure) -> WebSocketTransport {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let (stream, continuation) = AsyncStream.makeStream(of: InboundEvent.self, bufferingPolicy: .bufferingOldest(4096))
        let helloPromise = loop.makePromise(of: JSONObject.self)
        // The token travels in an `auth` frame, the first after the upgrade (it can name the device).
        var auth: JSONObject = ["type": "auth", "token": .string(token)]
        if let device = configuration.device { auth["device"] = .string(device) }
        let frames = SessionFrameHandler(continuation: continuation, hello: helloPromise, auth: JSONValue.object(auth).jsonBytes)
        let refusal = HandshakeRefusalHandler(hello: helloPromise)
        let maxFrame = configuration.maxFrameBytes
        let upgrader = NIOWebSocketClientUpgrader(
            requestKey: NIOWebSocketClientUpgrader.randomRequestKey(), maxFrameSize: maxFrame, automaticErrorHandling: true
        ) { channel, _ in
            channel.eventLoop.makeCompletedFuture {
                let sync = channel.pipeline.syncOperations
                _ = sync.removeHandler(refusal)
                try sync.addHandler(
                    NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 4096, maxAccumulatedFrameSize: maxFrame))
                try sync.addHandler(frames)
            }
        }
        let sslContext: NIOSSLContext?
        do {
            sslContext = try configuration.tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            let failure = ConnectFailure(info: CloseInfo(reason: "TLS configuration: \(error)", neverOpened: true))
            helloPromise.fail(failure)
            continuation.finish()
            throw failure
        }
        let host = configuration.host
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(.milliseconds(Int64(configuration.requestTimeoutMs)))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let sslContext {
                            let name = host.first?.isNumber == true || host.contains(":") ? nil : host
                            try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: name))
                        }
                        try sync.addHTTPClientHandlers(
                            leftOverBytesStrategy: .forwardBytes, withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
                        try sync.addHandler(refusal)
                    }
                }
                .connect(host: host, port: configuration.port).get()
        } catch {
            let failure = ConnectFailure(info: CloseInfo(reason: "cannot connect: \(error)", neverOpened: true))
            helloPromise.fail(failure)
            continuation.finish()
            throw failure
        }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(configuration.port)")
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/ws", headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        // No hello in time (a silent server): give up this attempt.
        let timeout = loop.scheduleTask(in: .milliseconds(Int64(configuration.requestTimeoutMs))) {
            helloPromise.fail(ConnectFailure(info: CloseInfo(reason: "no hello within \(configuration.requestTimeoutMs) ms", neverOpened: false)))
        }
        do {
            let hello = try await helloPromise.futureResult.get()
            timeout.cancel()
            return WebSocketTransport(channel: channel, hello: hello, inbound: stream)
        } catch {
            timeout.cancel()
            channel.close(promise: nil)
            continuation.finish()
            throw (error as? ConnectFailure) ?? ConnectFailure(info: CloseInfo(reason: "\(error)", neverOpened: true))
        }
    }

    func send(_ frame: JSONValue) -> Bool {
        guard channel.isActive else { return false }
        let data = ByteBuffer(bytes: frame.jsonBytes)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: data), promise: nil)
        return true
    }

    func close() {
        var data = ByteBuffer()
        data.write(webSocketErrorCode: .normalClosure)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: data)).whenComplete { [channel] _ in
            channel.close(promise: nil)
        }
        // A peer that never answers the close: the socket goes anyway.
        channel.eventLoop.scheduleTask(in: .seconds(2)) { [channel] in channel.close(promise: nil) }
    }
}

/// Before the upgrade: a refused handshake (401, 403, 429, 503, ...) fails the connect with
/// what it means; the upgrader forwards non-101 answers here.
private final class HandshakeRefusalHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private let hello: EventLoopPromise<JSONObject>

    init(hello: EventLoopPromise<JSONObject>) {
        self.hello = hello
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let status = Int(head.status.code)
        let retry = head.headers.first(name: "Retry-After").flatMap(Int.init).map { $0 * 1000 }
        var info = CloseInfo(reason: "WebSocket handshake refused with \(status)", retryAfterMs: retry, neverOpened: true)
        if status == 401 { info.tokenRefused = true }
        if status == 429 || status == 503 { info.neverOpened = false }
        hello.fail(ConnectFailure(info: info))
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        hello.fail(ConnectFailure(info: CloseInfo(reason: "WebSocket handshake failed: \(error)", neverOpened: true)))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        hello.fail(ConnectFailure(info: CloseInfo(reason: "the connection closed during the handshake", neverOpened: true)))
        context.fireChannelInactive()
    }
}

/// After the upgrade: text frames as JSON objects (the first must be `hello`), pings answered,
/// the close code reported once.
private final class SessionFrameHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let continuation: AsyncStream<InboundEvent>.Continuation
    private let hello: EventLoopPromise<JSONObject>
    private let auth: [UInt8]
    /// Guards whether the hello came and whether the end was reported (event loop only, but the
    /// handler must be Sendable to cross into the upgrader's closure).
    private let state = Mutex<(greeted: Bool, ended: Bool)>((false, false))

    init(continuation: AsyncStream<InboundEvent>.Continuation, hello: EventLoopPromise<JSONObject>, auth: [UInt8]) {
        self.continuation = continuation
        self.hello = hello
        self.auth = auth
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let frame = WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(bytes: auth))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    private func end(_ info: CloseInfo) {
        let first = state.withLock { state -> Bool in
            defer { state.ended = true }
            return !state.ended
        }
        guard first else { return }
        hello.fail(ConnectFailure(info: info))
        continuation.yield(.closed(info))
        continuation.finish()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            var data = frame.unmaskedData
            let bytes = data.readBytes(length: data.readableBytes) ?? []
            guard let object = (try? JSONParser.parse(bytes))?.objectValue else { return }
            let greeted = state.withLock { state -> Bool in
                defer { state.greeted = true }
                return state.greeted
            }
            if !greeted {
                if object["type"]?.stringValue == "hello" {
                    hello.succeed(object)
                } else {
                    // An error before hello: the token was refused (then close 4001 follows).
                    let error = ChatError(frame: object)
                    end(CloseInfo(code: 4001, reason: error.description, tokenRefused: error.code == "unauthorized" || error.code == "token_expired"))
                    context.close(promise: nil)
                }
                return
            }
            if case .dropped = continuation.yield(.frame(object)) {
                // The client fell 4096 frames behind: start over (messages wait in the inbox).
                end(CloseInfo(reason: "client buffer full", immediate: true))
                context.close(promise: nil)
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            var data = frame.unmaskedData
            let code = data.readInteger(as: UInt16.self)
            let reason = data.readString(length: data.readableBytes) ?? ""
            end(CloseInfo.webSocket(code: code, reason: reason))
            var reply = ByteBuffer()
            if let code { reply.writeInteger(code) }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: reply)), promise: written)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        end(CloseInfo(reason: "connection lost"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        end(CloseInfo(reason: "connection error: \(error)"))
        context.close(promise: nil)
    }
}
