import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The raw relay baseline: the least a WebSocket chat relay can do, on the same NIO stack as the
/// gateway, so a bench run shows what the gateway's pipeline and store cost on top of the
/// transport.
///
/// One event loop thread (the peers' minimal C relay was single-threaded too). The WebSocket
/// upgrade takes the user from the bearer token's `sub` claim without verifying it; a text
/// frame is scanned for `to.user` / `to.group` and `client_msg_id`, forwarded to the addressed
/// connections as `{"type":"message","seq":N,"from":…,"frame":<the send frame>}`, and acked
/// to the sender. No pipeline, no store, nothing kept. It also speaks just enough of the HTTP
/// API for the bench's scenarios: `POST /v1/groups` and the long-poll `open`/`poll`/`close`.
public enum BaselineServer {
    /// Runs until the process is killed; prints `baseline listening port=N` to stderr once bound.
    public static func run(host: String = "127.0.0.1", port: Int) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let relay = try await loop.submit { NIOLoopBound(BaselineRelay(), eventLoop: loop) }.get()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try configure(channel, relay: relay)
                }
            }
            .bind(host: host, port: port)
            .get()
        let bound = channel.localAddress?.port ?? port
        FileHandle.standardError.write(Data("baseline listening port=\(bound)\n".utf8))
        try await channel.closeFuture.get()
        try await group.shutdownGracefully()
    }

    private static func configure(_ channel: any Channel, relay: NIOLoopBound<BaselineRelay>) throws {
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 16, automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                let user = BaselineServer.user(authorization: head.headers.first(name: "authorization"))
                return channel.eventLoop.makeSucceededFuture(user == nil ? nil : HTTPHeaders())
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    let http = try sync.context(handlerType: BaselineHTTPHandler.self)
                    sync.removeHandler(context: http, promise: nil)
                    let user = BaselineServer.user(authorization: head.headers.first(name: "authorization")) ?? "anonymous"
                    try sync.addHandler(
                        NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 64, maxAccumulatedFrameSize: 1 << 16))
                    try sync.addHandler(RelayConnection(relay: relay.value, user: user))
                }
            })
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }), withErrorHandling: true)
        try channel.pipeline.syncOperations.addHandler(BaselineHTTPHandler(relay: relay.value))
    }

    /// The `sub` claim of a bearer JWT, read without verifying the signature (the baseline
    /// measures relaying, not authentication).
    static func user(authorization: String?) -> String? {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else { return nil }
        return user(token: String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces))
    }

    static func user(token: String) -> String? {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let payload = Data(base64Encoded: base64) else { return nil }
        return payload.withUnsafeBytes { FrameScanner.string(after: Array("\"sub\":\"".utf8), in: $0) }
    }
}

/// The baseline's whole state, on its single event loop: who is connected, groups, per-user
/// seq counters and long-poll sessions.
final class BaselineRelay {
    var connections: [String: [RelayConnection]] = [:]
    var groups: [String: [String]] = [:]
    var seqs: [String: Int64] = [:]
    var longPolls: [String: BaselineLongPoll] = [:]
    private var dirty: [RelayConnection] = []

    func nextSeq(_ user: String) -> Int64 {
        let seq = (seqs[user] ?? 0) + 1
        seqs[user] = seq
        return seq
    }

    func register(_ connection: RelayConnection) {
        connections[connection.user, default: []].append(connection)
    }

    func unregister(_ connection: RelayConnection) {
        connections[connection.user]?.removeAll { $0 === connection }
        if connections[connection.user]?.isEmpty == true { connections[connection.user] = nil }
    }

    func markDirty(_ connection: RelayConnection) {
        dirty.append(connection)
    }

    /// One flush per connection written to while handling a read batch.
    func flushDirty() {
        guard !dirty.isEmpty else { return }
        for connection in dirty { connection.flush() }
        dirty.removeAll(keepingCapacity: true)
    }

    /// Delivers a send frame from `from` to `user`'s connections or long-poll session.
    func deliver(_ frame: UnsafeRawBufferPointer, from: String, to user: String) {
        let targets = connections[user]
        let longPoll = longPolls[user]
        guard targets != nil || longPoll != nil else { return }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(frame.count + from.utf8.count + 64)
        buffer.writeStaticString("{\"type\":\"message\",\"seq\":")
        buffer.writeString(String(nextSeq(user)))
        buffer.writeStaticString(",\"from\":\"")
        buffer.writeString(from)
        buffer.writeStaticString("\",\"frame\":")
        buffer.writeBytes(frame)
        buffer.writeStaticString("}")
        for target in targets ?? [] { target.write(buffer) }
        longPoll?.append(buffer)
    }
}

/// One upgraded connection of the baseline.
final class RelayConnection: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let relay: BaselineRelay
    let user: String
    private var context: ChannelHandlerContext?
    private var dirty = false

    private static let sendType = Array("\"type\":\"send\"".utf8)
    private static let pingType = Array("\"type\":\"ping\"".utf8)
    private static let syncType = Array("\"type\":\"sync\"".utf8)
    private static let toUser = Array("\"to\":{\"user\":\"".utf8)
    private static let toGroup = Array("\"to\":{\"group\":\"".utf8)
    private static let clientMsgID = Array("\"client_msg_id\":\"".utf8)

    init(relay: BaselineRelay, user: String) {
        self.relay = relay
        self.user = user
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        relay.register(self)
        var hello = ByteBuffer()
        hello.writeString("{\"type\":\"hello\",\"user\":\"\(user)\",\"heartbeat_ms\":5000,\"inbox_seq\":\(relay.seqs[user] ?? 0)}")
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: hello)), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        relay.unregister(self)
        self.context = nil
        context.fireChannelInactive()
    }

    func write(_ text: ByteBuffer) {
        guard let context else { return }
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: text)), promise: nil)
        if !dirty {
            dirty = true
            relay.markDirty(self)
        }
    }

    func flush() {
        dirty = false
        context?.flush()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        relay.flushDirty()
        context.fireChannelReadComplete()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            frame.unmaskedData.withUnsafeReadableBytes { handle($0) }
        case .ping:
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
            if !dirty {
                dirty = true
                relay.markDirty(self)
            }
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }

    private func handle(_ bytes: UnsafeRawBufferPointer) {
        if FrameScanner.find(Self.sendType, in: bytes, from: 0) != nil {
            let id = FrameScanner.string(after: Self.clientMsgID, in: bytes) ?? ""
            if let to = FrameScanner.string(after: Self.toUser, in: bytes) {
                relay.deliver(bytes, from: user, to: to)
            } else if let group = FrameScanner.string(after: Self.toGroup, in: bytes) {
                for member in relay.groups[group] ?? [] where member != user {
                    relay.deliver(bytes, from: user, to: member)
                }
            }
            var ack = ByteBuffer()
            ack.reserveCapacity(64 + id.utf8.count)
            ack.writeStaticString("{\"type\":\"ack\",\"seq\":")
            ack.writeString(String(relay.nextSeq(user)))
            ack.writeStaticString(",\"client_msg_id\":\"")
            ack.writeString(id)
            ack.writeStaticString("\"}")
            write(ack)
        } else if FrameScanner.find(Self.pingType, in: bytes, from: 0) != nil {
            let ref = FrameScanner.string(after: FrameScanner.Keys.ref, in: bytes)
            write(ByteBuffer(string: ref.map { "{\"type\":\"pong\",\"ref\":\"\($0)\"}" } ?? "{\"type\":\"pong\"}"))
        } else if FrameScanner.find(Self.syncType, in: bytes, from: 0) != nil {
            // Nothing is kept: the inbox is always empty.
            write(ByteBuffer(string: "{\"type\":\"sync\",\"messages\":[],\"next\":\(relay.seqs[user] ?? 0),\"more\":false}"))
        }
    }
}

/// A long-poll session of the baseline: frames wait until the next poll.
final class BaselineLongPoll {
    var queue: [ByteBuffer] = []
    var waiter: BaselineHTTPHandler?
    var timeout: Scheduled<Void>?

    func append(_ frame: ByteBuffer) {
        queue.append(frame)
        if let waiter {
            self.waiter = nil
            timeout?.cancel()
            timeout = nil
            waiter.answerPoll(take())
        }
    }

    func take() -> [ByteBuffer] {
        defer { queue = [] }
        return queue
    }
}

/// The baseline's few HTTP routes (before any upgrade).
final class BaselineHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let relay: BaselineRelay
    private var context: ChannelHandlerContext?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(relay: BaselineRelay) {
        self.relay = relay
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var part):
            body.writeBuffer(&part)
        case .end:
            guard let head else { return }
            self.head = nil
            route(head)
        }
    }

    private func route(_ head: HTTPRequestHead) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let query = head.uri.firstIndex(of: "?").map { String(head.uri[head.uri.index(after: $0)...]) } ?? ""
        guard let user = BaselineServer.user(authorization: head.headers.first(name: "authorization")) else {
            return respond(.unauthorized, "{\"error\":{\"code\":\"unauthorized\",\"message\":\"no bearer token\"}}")
        }
        switch (head.method, path) {
        case (.POST, "/v1/groups"):
            let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            let id = object["id"] as? String ?? "g_\(UInt32.random(in: 0...UInt32.max))"
            var members = [user]
            for member in object["members"] as? [String] ?? [] where !members.contains(member) { members.append(member) }
            relay.groups[id] = members
            respond(.created, "{\"id\":\"\(id)\"}")
        case (.POST, "/v1/lp/open"):
            relay.longPolls[user] = relay.longPolls[user] ?? BaselineLongPoll()
            respond(.ok, "{\"session\":\"\(user)\",\"hello\":{\"type\":\"hello\",\"user\":\"\(user)\",\"heartbeat_ms\":5000,\"inbox_seq\":0}}")
        case (.GET, "/v1/lp/poll"):
            guard let session = relay.longPolls[user] else {
                return respond(.notFound, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such session\"}}")
            }
            if !session.queue.isEmpty {
                answerPoll(session.take())
                return
            }
            session.waiter?.answerPoll([])
            session.waiter = self
            let timeoutMs = query.split(separator: "&").compactMap { pair -> Int64? in
                let parts = pair.split(separator: "=", maxSplits: 1)
                return parts.count == 2 && parts[0] == "timeout_ms" ? Int64(parts[1]) : nil
            }.first ?? 25_000
            guard let context else { return }
            let bound = NIOLoopBound(session, eventLoop: context.eventLoop)
            session.timeout = context.eventLoop.scheduleTask(in: .milliseconds(timeoutMs)) {
                let session = bound.value
                guard let waiter = session.waiter else { return }
                session.waiter = nil
                waiter.answerPoll([])
            }
        case (.POST, "/v1/lp/close"):
            relay.longPolls[user] = nil
            respond(.noContent, "")
        default:
            respond(.notFound, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such route\"}}")
        }
    }

    func answerPoll(_ frames: [ByteBuffer]) {
        var out = ByteBuffer()
        out.writeStaticString("{\"frames\":[")
        for (index, var frame) in frames.enumerated() {
            if index > 0 { out.writeStaticString(",") }
            out.writeBuffer(&frame)
        }
        out.writeStaticString("]}")
        respond(.ok, out)
    }

    private func respond(_ status: HTTPResponseStatus, _ text: String) {
        respond(status, ByteBuffer(string: text))
    }

    private func respond(_ status: HTTPResponseStatus, _ body: ByteBuffer) {
        guard let context else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Content-Type", value: "application/json")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
