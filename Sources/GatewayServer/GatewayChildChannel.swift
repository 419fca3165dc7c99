import GatewayCore
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOConcurrencyHelpers
import NIOWebSocket
import Hummingbird

/// The public port's connection setup: HTTP/1.1 for the REST and long-poll routes, with a
/// WebSocket upgrade on `/v1/ws` (and `/v1/echo`) to plain NIO handlers.
///
/// A WebSocket session is a few NIO handlers on the event loop, no task and no timer (heartbeats
/// and token expiry are gateway-wide: `SessionTimers.swift`), which is what keeps an idle
/// connection at a few KiB. Requests that do not upgrade, including refused handshakes,
/// go to Hummingbird's router, whose `/v1/ws` route answers the refusal's status.
struct GatewayChildChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case websocket
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// An upgrade was asked for and refused: NIO does not pass that request on, so it is
        /// answered here with the handshake's refusal.
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, HTTPRequestHead, remoteAddress: String?)
        /// Over a cap at accept: `AdmissionRefusal` answers and closes; nothing to run.
        case refusedAtAccept
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let gateway: Gateway
    let handshake: WebSocketHandshake
    /// What the WebSocket connections share (settings, timers, outboxes).
    let websockets: WebSocketEnvironment
    /// Places on the public port (`max_connections`, `max_connections_per_ip`).
    let admission: ConnectionAdmission
    let addresses: ClientAddressResolver
    let logger: Logger

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // Every accepted socket takes a place until it closes; a socket over a cap is answered
        // and closed before any parsing.
        let peer = channel.remoteAddress?.ipAddress
        let counted = addresses.isTrustedProxy(peer) ? nil : peer
        if let refusal = admission.admit(address: counted) {
            gateway.stats.refusedConnections.wrappingIncrement(ordering: .relaxed)
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(AdmissionRefusal(response: ConnectionAdmission.response(for: refusal)))
                return Value(upgradeResult: channel.eventLoop.makeSucceededFuture(.refusedAtAccept), channel: channel)
            }
        }
        let admission = self.admission
        channel.closeFuture.whenComplete { _ in admission.release(address: counted) }
        return channel.eventLoop.makeCompletedFuture {
            // What the handshake decided, handed from `shouldUpgrade` to the pipeline setup.
            let decision = NIOLoopBoundBox<WebSocketSessionHandler.Mode?>(nil, eventLoop: channel.eventLoop)
            let capture = HandshakeHeadCapture()
            let gateway = self.gateway
            let handshake = self.handshake
            let websockets = self.websockets
            let addresses = self.addresses
            let requestTimeoutMs = Int64(gateway.limits.requestTimeoutMs)
            let clock = gateway.clock
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: websockets.maxFrameBytes,
                // Decoder errors are answered by `WebSocketSessionHandler.errorCaught` (one
                // handler less per connection than NIO's WebSocketProtocolErrorHandler).
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    let promise = channel.eventLoop.makePromise(of: (WebSocketSessionHandler.Mode?, HTTPHeaders?).self)
                    let remote = addresses.resolve(
                        peer: channel.remoteAddress?.ipAddress, forwardedFor: head.headers["X-Forwarded-For"])
                    promise.completeWithTask { () -> (WebSocketSessionHandler.Mode?, HTTPHeaders?) in
                        let uri = head.uri
                        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
                        let query = uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) }
                        let result = await handshake.evaluate(
                            method: head.method.rawValue, isHTTP11: head.version == .http1_1, path: path, query: query,
                            remoteAddress: remote, header: { head.headers[canonicalForm: $0].map(String.init) })
                        switch result {
                        case .accept(let identity, let echo):
                            let mode: WebSocketSessionHandler.Mode = echo ? .echo : .gateway(identity: identity, address: remote)
                            return (mode, HTTPHeaders())
                        case .refuse:
                            return (nil, nil)
                        }
                    }
                    return promise.futureResult.map { result -> HTTPHeaders? in
                        let (mode, headers): (WebSocketSessionHandler.Mode?, HTTPHeaders?) = result
                        decision.value = mode
                        return headers
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        let mode = decision.value ?? .echo
                        let sync = channel.pipeline.syncOperations
                        sync.removeHandler(capture, promise: nil)
                        try sync.addHandler(WebSocketSessionHandler(environment: websockets, mode: mode))
                        return UpgradeResult.websocket
                    }
                }
            )
            let serverUpgrade = NIOTypedHTTPServerUpgradeConfiguration<UpgradeResult>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(RequestBodyDeadline(timeoutMs: requestTimeoutMs, clock: clock))
                        try channel.pipeline.syncOperations.addHandler(
                            HTTPConnectionStateHandler(idleTimeout: .seconds(75), logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel,
                            configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if let head = capture.upgradeHead {
                            let remote = addresses.resolve(peer: channel.remoteAddress?.ipAddress, forwardedFor: head.headers["X-Forwarded-For"])
                            return UpgradeResult.refused(asyncChannel, head, remoteAddress: remote)
                        }
                        return UpgradeResult.notUpgraded(asyncChannel)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: serverUpgrade)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            configuration.decoderConfiguration.maxHeaderFieldSize = 16 * 1024
            configuration.decoderConfiguration.maxHeaderListSize = 32 * 1024
            let result = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(capture, position: .after(decoder))
            // Slowloris: a first request (or handshake) not complete within
            // `limits.handshake_timeout_ms` closes the connection; later requests fall under
            // Hummingbird's idle timeout.
            let handshakeEnds = clock.nowMillis() + Int64(gateway.limits.handshakeTimeoutMs)
            let deadline = clock.schedule(at: handshakeEnds, on: channel.eventLoop) {
                channel.close(promise: nil)
            }
            result.whenComplete { _ in deadline.cancel() }
            return Value(upgradeResult: result, channel: channel)
        }
    }

    private func refuse(_ http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, head: HTTPRequestHead, remoteAddress: String?) async {
        let uri = head.uri
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let query = uri.firstIndex(of: "?").map { String(uri[uri.index(after: $0)...]) }
        let decision = await handshake.evaluate(
            method: head.method.rawValue, isHTTP11: head.version == .http1_1, path: path, query: query, remoteAddress: remoteAddress,
            header: { head.headers[canonicalForm: $0].map(String.init) })
        let parts: (status: HTTPResponse.Status, headers: HTTPFields, body: ByteBuffer)
        switch decision {
        case .refuse(let status, let error, let headers):
            parts = HTTPReply.errorParts(error, status: status, headers: headers)
        case .accept:
            parts = HTTPReply.errorParts(.badFrame("malformed WebSocket handshake"), status: 400)
        }
        var fields = parts.headers
        fields[.connection] = "close"
        fields[.contentLength] = String(parts.body.readableBytes)
        let body = parts.body
        do {
            try await http.executeThenClose { _, outbound in
                try await outbound.write(.head(HTTPResponse(status: parts.status, headerFields: fields)))
                try await outbound.write(.body(body))
                try await outbound.write(.end(nil))
            }
        } catch {
            logger.trace("refused handshake: write failed", metadata: ["error": "\(error)"])
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .websocket, .refusedAtAccept:
                // The session lives in its channel handlers (or the refusal does): nothing to await.
                return
            case .notUpgraded(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refused(let http, let head, let remoteAddress):
                await refuse(http, head: head, remoteAddress: remoteAddress)
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Remembers the head of a request that asks for an upgrade, so a refused handshake can be
/// answered with the right status (NIO's upgrade handler consumes that request), and answers
/// requests the HTTP parser refuses: 431 for oversized headers, 400 for the rest (a body with
/// both Content-Length and Transfer-Encoding, say), then closes so nothing after them is served.
final class HandshakeHeadCapture: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard context.channel.isActive else { return }
        let status: HTTPResponseStatus = parserError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        let head = HTTPResponseHead(version: .http1_1, status: status, headers: ["Connection": "close", "Content-Length": "0"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.close(promise: nil)
    }

    private let head = NIOLockedValueBox<HTTPRequestHead?>(nil)

    var upgradeHead: HTTPRequestHead? { head.withLockedValue { $0 } }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let request) = unwrapInboundIn(data) {
            let asksUpgrade = request.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
            head.withLockedValue { $0 = asksUpgrade ? request : nil }
        }
        context.fireChannelRead(data)
    }
}

