import GatewayCore
import Logging
import NIOCore
import NIOWebSocket

/// One WebSocket connection's owner: a NIO channel handler, confined to the channel's event loop.
///
/// It holds everything of the connection that lives on the loop: the channel, the timers (the
/// wait for `auth`, the token's deadline), reading and its backpressure, and the outbound queue
/// (frames held for `hello`, frames the socket cannot take yet). Other threads reach the
/// connection only through its `WebSocketConnection`, which counts the outbound frames against
/// `outbound_queue` (one bound: a frame counts from its send until it is written here or
/// dropped), hands them to the loop's `LoopOutbox`, and runs the client's messages through the
/// gateway in order.
///
/// It enforces RFC 6455 on what arrives (masking, reserved bits, opcodes, fragmentation,
/// UTF-8, the message size limit), answers pings, reassembles fragmented messages, and passes
/// complete text messages to its `WebSocketConnection`.
final class WebSocketSessionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    enum Mode {
        /// A chat session; `address` is the client's (`ClientAddressResolver`).
        case gateway(identity: Identity?, address: String?)
        case echo
    }

    private let environment: WebSocketEnvironment
    private let mode: Mode
    private var listedSessionless = false
    private var context: ChannelHandlerContext?
    private(set) var connection: WebSocketConnection?

    private var fragments: ByteBuffer?
    /// How many leading bytes of a fragmented text message are known to be whole, valid UTF-8
    /// characters: each fragment is checked as it arrives, so invalid UTF-8 fails fast (1007).
    private var fragmentsValidUTF8 = 0
    private var fragmentOpcode: WebSocketOpcode = .text
    /// Frames the socket could not take yet; nil (no storage: an idle connection carries none)
    /// until the socket first refuses one, and again once they are all written. It grows by
    /// doubling while a slow socket needs it, up to `outbound_queue` frames (the connection's
    /// bound counts these too).
    private var backlog: CircularBuffer<ByteBuffer>?
    /// Deliveries that came before the session's `hello` went out; nil once it has.
    private var heldForHello: [ByteBuffer]? = []
    /// Written by `take` and not flushed yet.
    private var unflushed = false
    private var readPaused = false
    private var readPending = false
    private var closing = false
    /// Until the session opens: no `auth` within `auth_timeout_ms` (or silence for
    /// `offline_after_ms`, if shorter) closes the connection. On the gateway's clock.
    private var authTimer: ClockTimer?
    /// Counts the token deadlines set and dropped: one that fires with an older count is stale.
    private var deadlineGeneration: UInt32 = 0

    init(environment: WebSocketEnvironment, mode: Mode) {
        self.environment = environment
        self.mode = mode
        environment.stats.live.websocketHandlers.wrappingIncrement(ordering: .relaxed)
    }

    deinit {
        environment.stats.live.websocketHandlers.wrappingDecrement(ordering: .relaxed)
    }

    private var logger: Logger { environment.logger }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        guard case .gateway(let identity, let address) = mode else {
            listSessionless(true)
            return
        }
        let connection = WebSocketConnection(
            environment: environment, owner: NIOLoopBound(self, eventLoop: context.eventLoop), remoteAddress: address)
        self.connection = connection
        if let identity {
            Task { _ = await connection.start(identity: identity, device: nil, ref: nil) }
        } else {
            listSessionless(true)
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            let authTimeout = environment.authTimeoutMs
            let idleTimeout = environment.offlineAfterMs
            let clock = environment.clock
            let now = clock.nowMillis()
            // Sessions are swept for silence (`HeartbeatSweeper`); before one opens, a silence
            // shorter than the auth timeout closes the connection the same way.
            if idleTimeout < authTimeout {
                authTimer = clock.schedule(at: now + Int64(idleTimeout), on: context.eventLoop) {
                    handler.value.close(code: .normal, reason: "heartbeat timeout")
                }
            } else {
                authTimer = clock.schedule(at: now + Int64(authTimeout), on: context.eventLoop) {
                    handler.value.connection?.fail(.unauthorized("no auth frame within \(authTimeout) ms"), code: .unauthorized)
                }
            }
        }
    }

    /// The end of the connection, however it ended (NIO removes every handler of a closed
    /// channel): the session closes, and the handler lets go of its connection, which holds the
    /// handler back (`WebSocketConnection.owner`): with both references kept, neither would
    /// ever be freed.
    func handlerRemoved(context: ChannelHandlerContext) {
        listSessionless(false)
        cancelTimers()
        dropOutbound()
        connection?.ended()
        connection = nil
        fragments = nil
        self.context = nil
    }

    /// The client closed its side of the TCP connection without a close frame (an app killed, a
    /// load generator, a proxy timing out). Hummingbird's server allows remote half-closure for
    /// HTTP, so NIO keeps the channel open and says so with `inputClosed`: nothing more can come
    /// on a WebSocket, so the connection ends here, at once, rather than sitting in CLOSE-WAIT
    /// until the heartbeat sweep finds it silent.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            closing = true
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        dropOutbound()
        connection?.ended()
        context.fireChannelInactive()
    }

    /// Lists or unlists this connection in `sessionless`.
    private func listSessionless(_ listed: Bool) {
        guard listed != listedSessionless, let context else { return }
        listedSessionless = listed
        if listed {
            environment.sessionless.insert(self, eventLoop: context.eventLoop)
        } else {
            environment.sessionless.remove(self)
        }
    }

    private func cancelTimers() {
        authTimer?.cancel()
        authTimer = nil
        dropDeadline()
    }

    private func dropDeadline() {
        deadlineGeneration &+= 1
        if let connection { environment.deadlines.remove(connection) }
    }

    /// The session is open (or its token refreshed): stop the auth timer, watch the expiry.
    func authenticated(expiresAt: Int64?) {
        authTimer?.cancel()
        authTimer = nil
        // A session now: the hub closes it at shutdown.
        listSessionless(false)
        // A new deadline replaces the old one; an old one already firing is stale.
        deadlineGeneration &+= 1
        guard let connection else { return }
        guard let expiresAt, context != nil else { return environment.deadlines.remove(connection) }
        environment.deadlines.set(connection, at: expiresAt, generation: deadlineGeneration, grace: false)
    }

    /// A deadline `authenticated` or `tokenExpired` set has passed (called by `TokenDeadlines`).
    func tokenDeadlinePassed(generation: UInt32, grace: Bool) {
        guard generation == deadlineGeneration else { return }
        if grace {
            guard let session = connection?.session, session.tokenExpiresAt.load(ordering: .relaxed) <= environment.clock.nowMillis() else { return }
            connection?.close(code: .unauthorized, reason: "token expired")
        } else {
            tokenExpired()
        }
    }

    /// The token ran out: say so, and close unless a fresh `auth` arrives within the auth timeout.
    private func tokenExpired() {
        guard let connection, let session = connection.session, context != nil else { return }
        guard session.tokenExpiresAt.load(ordering: .relaxed) <= environment.clock.nowMillis() else { return }
        // Taken before the notice goes out: a client (or a test stepping the clock) that sees it
        // knows when the grace ends.
        let graceEnds = environment.clock.nowMillis() + Int64(environment.authTimeoutMs)
        _ = connection.send(ServerFrame.error(GatewayError(.tokenExpired, "token expired: send a fresh 'auth' frame"), ref: nil))
        environment.deadlines.set(connection, at: graceEnds, generation: deadlineGeneration, grace: true)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard !closing else { return }
        // Every frame counts as a heartbeat (`HeartbeatSweeper`), even one that waits behind
        // another still being processed.
        connection?.session?.lastActiveAt.store(environment.clock.nowMillis(), ordering: .relaxed)
        guard frame.maskKey != nil else { return protocolError(.protocolError, "unmasked client frame") }
        guard !frame.rsv1, !frame.rsv2, !frame.rsv3 else { return protocolError(.protocolError, "reserved bits set") }
        switch frame.opcode {
        case .text, .binary:
            guard fragments == nil else { return protocolError(.protocolError, "new message inside a fragmented one") }
            var data = frame.unmaskedData
            if frame.fin {
                message(opcode: frame.opcode, data: &data)
            } else {
                fragmentOpcode = frame.opcode
                fragmentsValidUTF8 = 0
                guard frame.opcode != .text || checkFragmentUTF8(data) else { return protocolError(.invalidData, "invalid UTF-8") }
                fragments = data
            }
        case .continuation:
            guard var buffer = fragments else { return protocolError(.protocolError, "continuation without a message") }
            fragments = nil
            var data = frame.unmaskedData
            guard buffer.readableBytes + data.readableBytes <= environment.maxFrameBytes else {
                return protocolError(.tooLarge, "message larger than \(environment.maxFrameBytes) bytes")
            }
            buffer.writeBuffer(&data)
            if frame.fin {
                message(opcode: fragmentOpcode, data: &buffer)
            } else {
                guard fragmentOpcode != .text || checkFragmentUTF8(buffer) else { return protocolError(.invalidData, "invalid UTF-8") }
                fragments = buffer
            }
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .connectionClose:
            let (code, reason) = Self.closeReply(to: frame.unmaskedData)
            close(rawCode: code, reason: reason)
        default:
            protocolError(.protocolError, "unknown opcode")
        }
    }

    /// Whether a client may send `code` in a close frame (RFC 6455 §7.4.1 and §7.4.2, and the
    /// IANA registry): 1000-1003, 1007-1014 and 3000-4999. 1004 is reserved, 1005, 1006 and 1015
    /// must never be sent, and 0-999, 1016-2999 and 5000+ are not assigned.
    static func isValidCloseCode(_ code: UInt16) -> Bool {
        (1000...1003).contains(code) || (1007...1014).contains(code) || (3000...4999).contains(code)
    }

    /// What to answer a client's close frame with (RFC 6455 §5.5.1, §7.1.5, §7.4): the same code
    /// when it is valid; 1000 when the frame carries no code; 1002 for a 1-byte payload (a code
    /// needs 2) or a code no endpoint may send; 1007 for a reason that is not valid UTF-8.
    static func closeReply(to payload: ByteBuffer) -> (code: UInt16, reason: String) {
        var payload = payload
        guard payload.readableBytes > 0 else { return (CloseCode.normal.rawValue, "") }
        guard let code = payload.readInteger(as: UInt16.self) else { return (CloseCode.protocolError.rawValue, "close payload of 1 byte") }
        guard isValidCloseCode(code) else { return (CloseCode.protocolError.rawValue, "invalid close code") }
        let valid = payload.withUnsafeReadableBytes { String(validating: $0, as: UTF8.self) != nil }
        guard valid else { return (CloseCode.invalidData.rawValue, "close reason is not UTF-8") }
        return (code, "")
    }

    /// Whether the unfinished text message in `buffer` is valid UTF-8 so far: the bytes after
    /// `fragmentsValidUTF8` are checked, except a character cut at the end, which must only be a
    /// possible start of one. Advances `fragmentsValidUTF8`.
    private func checkFragmentUTF8(_ buffer: ByteBuffer) -> Bool {
        let start = fragmentsValidUTF8
        let result: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard start <= bytes.count else { return nil }
            let whole = Self.wholeCharacterEnd(bytes)
            guard whole >= start,
                String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<whole]), as: UTF8.self) != nil,
                Self.isPossibleCharacterStart(UnsafeRawBufferPointer(rebasing: bytes[whole...]))
            else { return nil }
            return whole
        }
        guard let result else { return false }
        fragmentsValidUTF8 = result
        return true
    }

    /// Where the last character of `bytes` starts when it is cut short (else `bytes.count`).
    static func wholeCharacterEnd(_ bytes: UnsafeRawBufferPointer) -> Int {
        var index = bytes.count - 1
        while index >= 0, bytes.count - index <= 4 {
            let byte = bytes[index]
            if byte & 0xC0 != 0x80 {
                let length = byte < 0xC0 ? 1 : byte < 0xE0 ? 2 : byte < 0xF0 ? 3 : 4
                return bytes.count - index < length ? index : bytes.count
            }
            index -= 1
        }
        return bytes.count
    }

    /// Whether `bytes` (1 to 3 bytes, or none) can begin a valid UTF-8 character (RFC 3629).
    static func isPossibleCharacterStart(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let lead = bytes.first else { return true }
        guard (0xC2...0xF4).contains(lead) else { return false }
        guard bytes.count > 1 else { return true }
        let second = bytes[1]
        switch lead {
        case 0xE0: return (0xA0...0xBF).contains(second)
        case 0xED: return (0x80...0x9F).contains(second)
        case 0xF0: return (0x90...0xBF).contains(second)
        case 0xF4: return (0x80...0x8F).contains(second)
        default: return (0x80...0xBF).contains(second)
        }
    }

    private func message(opcode: WebSocketOpcode, data: inout ByteBuffer) {
        guard data.readableBytes <= environment.maxFrameBytes else {
            return protocolError(.tooLarge, "message larger than \(environment.maxFrameBytes) bytes")
        }
        if opcode == .text {
            let valid = data.withUnsafeReadableBytes { String(validating: $0, as: UTF8.self) != nil }
            guard valid else { return protocolError(.invalidData, "invalid UTF-8") }
        }
        switch mode {
        case .echo:
            let reply = WebSocketFrame(fin: true, opcode: opcode, data: data)
            context?.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        case .gateway:
            guard let connection else { return }
            guard opcode == .text else {
                _ = connection.send(ServerFrame.error(.badFrame("frames are JSON text messages"), ref: nil))
                return
            }
            if connection.enqueue(data) {
                readPaused = true
            }
        }
    }

    private func protocolError(_ code: CloseCode, _ reason: String) {
        logger.debug("websocket protocol error", metadata: ["gateway.reason": "\(reason)", "gateway.close": "\(code.rawValue)"])
        fragments = nil
        close(code: code, reason: reason)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? NIOWebSocketError {
            // What NIO's WebSocketProtocolErrorHandler would answer to a decoder error (1009 or
            // 1002), done here to spare a handler and its context per connection.
            var data = context.channel.allocator.buffer(capacity: 2)
            switch error {
            case .invalidFrameLength: data.write(webSocketErrorCode: .messageTooLarge)
            case .fragmentedControlFrame, .multiByteControlFrameLength: data.write(webSocketErrorCode: .protocolError)
            }
            let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))).whenComplete { _ in
                loopContext.value.close(promise: nil)
            }
        } else {
            logger.debug("websocket error", metadata: ["error": "\(error)"])
        }
        closing = true
        context.close(promise: nil)
    }

    // MARK: Backpressure on reading

    func read(context: ChannelHandlerContext) {
        if readPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func resumeReading() {
        readPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    /// Takes a frame its connection counted and the loop's outbox brought: held while the
    /// session's `hello` has not gone out (for `.afterHello`), else written, or kept in the
    /// backlog while the socket cannot take more. The outbox flushes with `flushIfNeeded` once
    /// it has handed over its burst.
    func take(_ buffer: ByteBuffer, order: LoopOutbox.Order) {
        guard context != nil, !closing else {
            connection?.written(1)
            return
        }
        switch order {
        case .afterHello where heldForHello != nil:
            heldForHello!.append(buffer)
            keep()
        case .hello:
            writeCounted(buffer)
            let held = heldForHello ?? []
            heldForHello = nil
            for frame in held { writeCounted(frame) }
            if backlog == nil, !held.isEmpty { _ = connection?.setWaiting(false) }
        case .afterHello, .now:
            writeCounted(buffer)
        }
    }

    /// A frame was kept (held for `hello`, or waiting for the socket): frames now wait for the
    /// client, and past `outbound_queue` of them it is a slow consumer (4008).
    private func keep() {
        guard let connection, !closing else { return }
        if !connection.setWaiting(true) { connection.closeAsSlowConsumer() }
    }

    /// Writes a counted frame, or keeps it in the backlog while the socket cannot take more.
    private func writeCounted(_ buffer: ByteBuffer) {
        guard let context else { return }
        if backlog == nil, context.channel.isWritable {
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: buffer)), promise: nil)
            unflushed = true
            connection?.written(1)
        } else {
            if backlog == nil { backlog = CircularBuffer(initialCapacity: 4) }
            backlog?.append(buffer)
            keep()
        }
    }

    /// Flushes what `take` wrote, if anything.
    func flushIfNeeded() {
        guard unflushed else { return }
        unflushed = false
        context?.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        var written = 0
        while context.channel.isWritable, let next = backlog?.popFirst() {
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: next)), promise: nil)
            written += 1
        }
        if backlog?.isEmpty == true { backlog = nil }
        if written > 0 {
            connection?.written(written)
            if backlog == nil, heldForHello?.isEmpty ?? true { _ = connection?.setWaiting(false) }
        }
        context.flush()
        context.fireChannelWritabilityChanged()
    }

    /// Drops the frames not written yet (the connection is closing or gone), uncounting them.
    private func dropOutbound() {
        let dropped = (backlog?.count ?? 0) + (heldForHello?.count ?? 0)
        backlog = nil
        heldForHello = nil
        if dropped > 0 { connection?.written(dropped) }
    }

    /// Sends a close frame and closes the channel once it is written.
    func close(code: CloseCode, reason: String) {
        close(rawCode: code.rawValue, reason: reason)
    }

    /// `close(code:reason:)` with any code: the echo of a client's close code (3000-4999 and the
    /// IANA codes have no `CloseCode` case).
    private func close(rawCode: UInt16, reason: String) {
        guard !closing, let context else { return }
        closing = true
        cancelTimers()
        dropOutbound()
        var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        data.writeInteger(rawCode)
        data.writeString(String(reason.utf8.prefix(120)) ?? "")
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in
            loopContext.value.close(promise: nil)
        }
    }
}
