import AsyncHTTPClient
import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1
import Synchronization

/// A ChatGateway client for apps: it keeps a session open and loses no message.
///
/// - WebSocket (NIO's client upgrader), or long-poll when a WebSocket cannot be opened (or when
///   `configuration.transport` says so).
/// - Reconnects with exponential backoff and full jitter; what each close code means is in
///   docs/CLIENTS.md.
/// - Unacked sends are kept and resent with the same `client_msg_id` after a reconnect (the
///   gateway dedupes), in the order they were submitted.
/// - Tracks `cur_max_seq` through a `SeqStore` and syncs from it on every (re)connect and on a
///   seq gap, paging with `more`: every message reaches `events` once, in inbox order.
/// - Sends `delivered` for messages once they were handed to `events`.
/// - Asks `token` for a fresh token when the gateway refuses the current one.
///
/// ```swift
/// let client = ChatClient(configuration: .init(host: "chat.example.com", port: 443, tls: .makeClientConfiguration()),
///                         token: { try await myBackend.chatToken() }, seqStore: try FileSeqStore(directory: appSupport))
/// Task { for await event in client.events { if case .message(let m) = event { show(m) } } }
/// try await client.connect()
/// let ack = try await client.send(to: .user("bob"), body: ["text": "hi"])
/// ```
public actor ChatClient {
    /// Everything the client reports, in order; ends after `close()`.
    public nonisolated let events: AsyncStream<ChatEvent>
    private let sink: AsyncStream<ChatEvent>.Continuation
    public nonisolated let configuration: ChatClientConfiguration
    private let tokenProvider: @Sendable () async throws -> String
    private let seqStore: any SeqStore
    private let http: HTTPAPI
    private let ownsHTTPClient: Bool

    /// The signed-in user, known after the first `hello`.
    public private(set) var user: String?
    /// The highest inbox seq handed to the app.
    public private(set) var curMaxSeq: Int64 = 0 {
        didSet { ackShare.store(curMaxSeq, ordering: .relaxed) }
    }
    /// `curMaxSeq` for the long-poll transport's `ack` (read outside the actor).
    private nonisolated let ackShare = Atomic<Int64>(0)
    public private(set) var state: ConnectionState = .idle
    /// The transport of the open session, if any.
    public var transportKind: ChatTransportKind? { transport?.kind }

    private var token: String?
    private var transport: (any ClientTransport)?
    private var hello: JSONObject?
    private var pending: [String: PendingSend] = [:]
    private var pendingOrder: [String] = []
    /// Own sends' seqs above `curMaxSeq`: no `message` comes for them on this device.
    private var ackedSeqs: Set<Int64> = []
    private var requests: [String: CheckedContinuation<JSONObject, any Error>] = [:]
    private var refCounter = 0
    private var syncing = false
    private var resyncWanted = false
    private var overflowed = false
    private var deliveredSupported = true
    private var deliveredSent: Int64 = 0
    private var presenceUsers: Set<String> = []
    private var closed = false
    private var runner: Task<Void, Never>?
    private var helloWaiters: [CheckedContinuation<JSONObject, any Error>] = []
    private var webSocketRefused = false
    private var attempt = 0
    private var lastSent = ContinuousClock.now

    private struct PendingSend {
        var frame: JSONValue
        var handle: SendHandle
        var sentAt: ContinuousClock.Instant?
    }

    /// - Parameters:
    ///   - token: returns a valid JWT; called before the first connect and whenever the gateway
    ///     refuses the current one (close 4001, HTTP 401, `token_expired`).
    ///   - seqStore: where `cur_max_seq` is kept between runs.
    ///   - httpClient: for long-poll, media and the HTTP API; default `HTTPClient.shared`
    ///     (or one of the client's own, with `configuration.tls`).
    public init(
        configuration: ChatClientConfiguration, token: @escaping @Sendable () async throws -> String,
        seqStore: any SeqStore = MemorySeqStore(), httpClient: HTTPClient? = nil
    ) {
        self.configuration = configuration
        self.tokenProvider = token
        self.seqStore = seqStore
        let client: HTTPClient
        if let httpClient {
            client = httpClient
            ownsHTTPClient = false
        } else if let tls = configuration.tls {
            var settings = HTTPClient.Configuration()
            settings.tlsConfiguration = tls
            client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings)
            ownsHTTPClient = true
        } else {
            client = HTTPClient.shared
            ownsHTTPClient = false
        }
        http = HTTPAPI(client: client, base: configuration.httpBase)
        let (stream, continuation) = AsyncStream.makeStream(of: ChatEvent.self, bufferingPolicy: .bufferingOldest(configuration.eventBuffer))
        events = stream
        sink = continuation
    }

    // MARK: Lifecycle

    /// Starts the session (and keeps it up until `close()`); returns the first `hello`.
    @discardableResult
    public func connect() async throws -> JSONObject {
        if closed { throw ChatError.closed }
        if runner == nil { runner = Task { await self.run() } }
        if let hello, transport != nil { return hello }
        return try await withCheckedThrowingContinuation { helloWaiters.append($0) }
    }

    /// Ends the session and stops reconnecting; unacked sends fail with `closed`.
    public func close() async {
        guard !closed else { return }
        closed = true
        runner?.cancel()
        transport?.close()
        transport = nil
        for id in pendingOrder { pending[id]?.handle.complete(.failure(.closed)) }
        pending = [:]
        pendingOrder = []
        failRequests(.closed)
        for waiter in helloWaiters { waiter.resume(throwing: ChatError.closed) }
        helloWaiters = []
        setState(.closed(reason: "closed by the app"))
        sink.finish()
        if ownsHTTPClient { try? await http.client.shutdown() }
    }

    /// Drops the current session at once (as a network loss would); the client reconnects.
    public func dropConnection() {
        transport?.close()
    }

    private func emit(_ event: ChatEvent) {
        _ = sink.yield(event)
    }

    private func setState(_ state: ConnectionState) {
        self.state = state
        emit(.state(state))
    }

    private func run() async {
        while !closed {
            let info = await session()
            if closed { break }
            if info.tokenRefused { token = nil }
            var delay = configuration.backoff.delay(attempt: info.immediate ? 0 : attempt)
            if let retry = info.retryAfterMs { delay = max(delay, retry) }
            attempt += 1
            setState(.reconnecting(delayMs: delay, reason: info.reason))
            do {
                try await Task.sleep(for: .milliseconds(delay))
            } catch {
                break
            }
        }
    }

    /// The host and port of the node `GET /v1/discover` names at the configured entry point;
    /// nil when it cannot be asked or names nothing usable.
    private func discoverNode(token: String) async -> (String, Int)? {
        guard let reply = try? await http.request(.GET, "/v1/discover", token: token, timeoutMs: configuration.requestTimeoutMs),
            let ws = reply.json?["ws_url"]?.stringValue, let url = URL(string: ws), let host = url.host, !host.isEmpty
        else { return nil }
        return (host, url.port ?? (ws.hasPrefix("wss:") ? 443 : 80))
    }

    /// One session: connect, run until it ends, report how it ended.
    private func session() async -> CloseInfo {
        if token == nil {
            do {
                token = try await tokenProvider()
            } catch {
                return CloseInfo(reason: "the token provider failed: \(error)")
            }
        }
        guard let token else { return CloseInfo(reason: "no token") }
        // In a cluster: the node `/v1/discover` names, for this session only.
        var configuration = self.configuration
        var http = self.http
        if configuration.discover, let node = await discoverNode(token: token) {
            configuration.host = node.0
            configuration.port = node.1
            http = HTTPAPI(client: http.client, base: configuration.httpBase)
        }
        let mode = configuration.transport
        let webSocket = mode == .webSocket || (mode == .auto && !webSocketRefused)
        setState(.connecting(webSocket ? .webSocket : .longPoll))
        let opened: any ClientTransport
        do throws(ConnectFailure) {
            if webSocket {
                do throws(ConnectFailure) {
                    opened = try await WebSocketTransport.connect(configuration: configuration, token: token)
                } catch where mode == .auto && error.info.neverOpened && !error.info.tokenRefused {
                    // The WebSocket cannot open here (a proxy, a firewall): try long-poll, and keep
                    // to it while it works.
                    setState(.connecting(.longPoll))
                    opened = try await LongPollTransport.open(api: http, token: token, configuration: configuration, ack: { [weak self] in self?.ackShare.load(ordering: .relaxed) ?? 0 })
                    webSocketRefused = true
                }
            } else {
                opened = try await LongPollTransport.open(api: http, token: token, configuration: configuration, ack: { [weak self] in self?.ackShare.load(ordering: .relaxed) ?? 0 })
            }
        } catch {
            return error.info
        }
        if closed {
            opened.close()
            return CloseInfo(reason: "closed")
        }
        transport = opened
        started(opened)
        let ticker = Task { await self.tick(opened) }
        var end = CloseInfo(reason: "connection lost")
        for await event in opened.inbound {
            switch event {
            case .frame(let frame): receive(frame)
            case .closed(let info): end = info
            }
        }
        ticker.cancel()
        if transport === opened { transport = nil }
        failRequests(.unavailable("connection lost"))
        for id in pendingOrder { pending[id]?.sentAt = nil }
        return end
    }

    /// A new session: load the seq, resend what was never acked, resubscribe, sync.
    private func started(_ transport: any ClientTransport) {
        let hello = transport.hello
        self.hello = hello
        attempt = 0
        if let user = hello["user"]?.stringValue {
            if self.user != user { ackedSeqs = [] }
            self.user = user
            curMaxSeq = seqStore.load(user: user)
            if curMaxSeq < 0 {
                curMaxSeq = hello["inbox_seq"]?.int64Value ?? 0
                saveSeq()
            }
        }
        if let inboxSeq = hello["inbox_seq"]?.int64Value, inboxSeq < curMaxSeq {
            // The gateway's inbox is behind what this device saw (a reset store): start over.
            curMaxSeq = 0
            saveSeq()
        }
        emit(.hello(hello))
        setState(.open(transport.kind))
        for waiter in helloWaiters { waiter.resume(returning: hello) }
        helloWaiters = []
        for id in pendingOrder { transmit(id) }
        if !presenceUsers.isEmpty {
            _ = transport.send(["type": "presence.subscribe", "users": .array(presenceUsers.sorted().map { .string($0) })])
        }
        startSync()
    }

    /// Heartbeat, dead-connection detection (an unacked send older than `ackTimeoutMs`), and the
    /// sync after the app fell behind.
    private func tick(_ transport: any ClientTransport) async {
        let heartbeat = Int(hello?["heartbeat_ms"]?.int64Value ?? 5000)
        let every = max(50, min(1000, heartbeat / 4))
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: .milliseconds(every))
            } catch {
                return
            }
            guard self.transport === transport else { return }
            let now = ContinuousClock.now
            if transport.kind == .webSocket, now - lastSent >= .milliseconds(heartbeat * 4 / 5) {
                sendFrame(["type": "ping"])
            }
            let limit = Duration.milliseconds(configuration.ackTimeoutMs)
            if pendingOrder.contains(where: { id in pending[id]?.sentAt.map { now - $0 > limit } ?? false }) {
                transport.close()
                return
            }
            if overflowed && !syncing {
                overflowed = false
                startSync()
            }
        }
    }

    // MARK: Frames in

    private func receive(_ frame: JSONObject) {
        switch frame["type"]?.stringValue {
        case "message":
            handle(messages: [frame], fromSync: false)
        case "ack":
            handle(ack: frame)
        case "error":
            handle(error: frame)
        case "presence":
            resolve(frame)
            emit(.presence(frame))
        case "typing":
            emit(.typing(frame))
        case "receipt":
            emit(.receipt(frame))
        case "sync", "history", "pong":
            resolve(frame)
        case "hello":
            // After a re-authentication on the same session.
            hello = frame
            emit(.hello(frame))
        default:
            break
        }
    }

    private func resolve(_ frame: JSONObject) {
        guard let ref = frame["ref"]?.stringValue, let waiter = requests.removeValue(forKey: ref) else { return }
        waiter.resume(returning: frame)
    }

    private func handle(ack frame: JSONObject) {
        let ack = Ack(frame)
        if ack.seq > curMaxSeq {
            if ackedSeqs.count >= 100_000 { ackedSeqs = [] }  // bounded; a sync repairs
            ackedSeqs.insert(ack.seq)
            advance()
            saveSeq()
            if ack.seq > curMaxSeq + 1, !ackedSeqs.contains(curMaxSeq + 1) { gap() }
        }
        if let entry = pending.removeValue(forKey: ack.clientMsgID) {
            pendingOrder.removeAll { $0 == ack.clientMsgID }
            entry.handle.complete(.success(ack))
        }
        emit(.ack(ack))
    }

    private func handle(error frame: JSONObject) {
        let error = ChatError(frame: frame)
        let ref = frame["ref"]?.stringValue
        if let ref, ref.hasPrefix("dlv-") {
            // A gateway that does not know `delivered` answers bad_frame: stop sending it.
            if error.code == "bad_frame" { deliveredSupported = false }
            return
        }
        if let ref, let entry = pending[ref] {
            if error.code == "rate_limited" || error.code == "unavailable" {
                // Kept, and resent with the same client_msg_id after the hint.
                pending[ref]?.sentAt = nil
                let wait = error.retryAfterMs ?? 1000
                Task {
                    try? await Task.sleep(for: .milliseconds(wait))
                    self.retransmit(ref)
                }
                return
            }
            pending[ref] = nil
            pendingOrder.removeAll { $0 == ref }
            entry.handle.complete(.failure(error))
            return
        }
        if let ref, let waiter = requests.removeValue(forKey: ref) {
            waiter.resume(throwing: error)
            return
        }
        if error.code == "token_expired", let transport, transport.kind == .webSocket {
            // The session stays open for auth_timeout_ms: authenticate again in place (a new
            // hello follows); without a fresh token in time the gateway closes with 4001.
            Task { await self.reauthenticate(on: transport) }
        } else if error.code == "unauthorized" || error.code == "token_expired" {
            token = nil
            transport?.close()
        }
        emit(.error(error))
    }

    private func reauthenticate(on transport: any ClientTransport) async {
        guard let fresh = try? await tokenProvider() else { return }
        token = fresh
        guard self.transport === transport else { return }
        var frame: JSONObject = ["type": "auth", "token": .string(fresh)]
        if let device = configuration.device { frame["device"] = .string(device) }
        sendFrame(frame)
    }

    /// Hands messages in seq order to the app; a gap starts a sync.
    private func handle(messages: [JSONObject], fromSync: Bool) {
        var handed = false
        for frame in messages {
            guard let seq = frame["seq"]?.int64Value else { continue }
            if seq <= curMaxSeq { continue }
            if seq != curMaxSeq + 1 {
                if !fromSync { gap() }
                break
            }
            if !ackedSeqs.contains(seq) {
                if case .dropped = sink.yield(.message(ChatMessage(frame))) {
                    // The app reads events too slowly: this one comes again through sync.
                    overflowed = true
                    break
                }
                handed = true
            }
            ackedSeqs.remove(seq)
            curMaxSeq = seq
            advance()
        }
        saveSeq()
        if handed, deliveredSupported, curMaxSeq > deliveredSent {
            refCounter += 1
            if sendFrame(["type": "delivered", "seq": .int(curMaxSeq), "ref": .string("dlv-\(refCounter)")]) { deliveredSent = curMaxSeq }
        }
    }

    private func advance() {
        while ackedSeqs.remove(curMaxSeq + 1) != nil { curMaxSeq += 1 }
    }

    private func saveSeq() {
        if let user { seqStore.save(curMaxSeq, user: user) }
    }

    private func gap() {
        if syncing { resyncWanted = true } else { startSync() }
    }

    private func startSync() {
        Task { try? await self.sync() }
    }

    // MARK: Frames out

    @discardableResult
    private func sendFrame(_ frame: JSONObject) -> Bool {
        guard let transport, transport.send(.object(frame)) else { return false }
        lastSent = .now
        return true
    }

    private func transmit(_ id: String) {
        guard let entry = pending[id] else { return }
        if let transport, transport.send(entry.frame) {
            pending[id]?.sentAt = .now
            lastSent = .now
        }
    }

    private func retransmit(_ id: String) {
        if pending[id]?.sentAt == nil { transmit(id) }
    }

    private func request(_ frame: JSONObject) async throws -> JSONObject {
        guard transport != nil else { throw ChatError.unavailable("not connected") }
        refCounter += 1
        let ref = "r\(refCounter)"
        var frame = frame
        frame["ref"] = .string(ref)
        let timeout = configuration.requestTimeoutMs
        return try await withCheckedThrowingContinuation { continuation in
            requests[ref] = continuation
            if !sendFrame(frame) {
                requests[ref] = nil
                continuation.resume(throwing: ChatError.unavailable("not connected"))
                return
            }
            Task {
                try? await Task.sleep(for: .milliseconds(timeout))
                self.expire(ref)
            }
        }
    }

    private func expire(_ ref: String) {
        requests.removeValue(forKey: ref)?.resume(throwing: ChatError.unavailable("no reply within \(configuration.requestTimeoutMs) ms"))
    }

    private func failRequests(_ error: ChatError) {
        let waiting = requests
        requests = [:]
        for (_, waiter) in waiting { waiter.resume(throwing: error) }
    }

    // MARK: API

    /// Queues a message and returns at once; `handle.ack()` waits for the ack. Submissions go
    /// out in call order and are resent, in that order, with the same `client_msg_id` after a
    /// reconnect, until acked.
    public func submit(to: Address, body: JSONValue, attachments: [JSONValue]? = nil, clientMsgID: String? = nil) throws -> SendHandle {
        if closed { throw ChatError.closed }
        guard pending.count < configuration.maxPendingSends else {
            throw ChatError(code: "rate_limited", message: "\(pending.count) sends wait for their ack")
        }
        let id = clientMsgID ?? UUID().uuidString.lowercased()
        if let existing = pending[id] { return existing.handle }
        var frame: JSONObject = ["type": "send", "ref": .string(id), "to": to.json, "body": body, "client_msg_id": .string(id)]
        if let attachments { frame["attachments"] = .array(attachments) }
        if let limit = hello?["max_frame_bytes"]?.int64Value, JSONValue.object(frame).jsonBytes.count > limit {
            // The gateway would close the session with 1009: refuse it here instead.
            throw ChatError(code: "too_large", message: "the frame is larger than the gateway's \(limit) bytes")
        }
        let handle = SendHandle(clientMsgID: id)
        pending[id] = PendingSend(frame: .object(frame), handle: handle, sentAt: nil)
        pendingOrder.append(id)
        transmit(id)
        return handle
    }

    /// Sends a message and waits for its ack (the message is durable then).
    public func send(to: Address, body: JSONValue, attachments: [JSONValue]? = nil, clientMsgID: String? = nil) async throws -> Ack {
        try await submit(to: to, body: body, attachments: attachments, clientMsgID: clientMsgID).ack()
    }

    /// Sends that wait for their ack.
    public var unacked: Int { pending.count }

    /// Catches up from `curMaxSeq`, page by page; missed messages arrive on `events`.
    public func sync() async throws {
        if syncing {
            resyncWanted = true
            return
        }
        syncing = true
        defer { syncing = false }
        repeat {
            resyncWanted = false
            while true {
                let reply = try await request(["type": "sync", "since": .int(curMaxSeq), "limit": .int(configuration.syncLimit)])
                handle(messages: (reply["messages"]?.arrayValue ?? []).compactMap(\.objectValue), fromSync: true)
                if overflowed || reply["more"]?.boolValue != true { break }
            }
        } while resyncWanted && transport != nil
        emit(.synced(curMaxSeq: curMaxSeq))
    }

    /// A page of a conversation, newest first (`messages`, `more`, `reads`).
    public func history(with address: Address, before: String? = nil, limit: Int? = nil) async throws -> JSONObject {
        var frame: JSONObject = ["type": "history", "with": address.json]
        if let before { frame["before"] = .string(before) }
        if let limit { frame["limit"] = .int(limit) }
        return try await request(frame)
    }

    /// Marks a conversation read up to a message id (the other members get a `receipt`).
    public func read(with address: Address, upTo id: String) {
        sendFrame(["type": "read", "with": address.json, "up_to": .string(id)])
    }

    /// Tells the conversation this user is typing.
    public func typing(to address: Address) {
        sendFrame(["type": "typing", "to": address.json])
    }

    /// Subscribes to presence (kept across reconnects); returns the current states.
    public func subscribePresence(_ users: [String]) async throws -> JSONObject {
        presenceUsers.formUnion(users)
        return try await request(["type": "presence.subscribe", "users": .array(users.map { .string($0) })])
    }

    /// Calls the HTTP API (PROTOCOL.md section 5) with the current token (refreshed once on 401).
    public func api(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        let http = http, timeout = configuration.requestTimeoutMs
        return try await withToken { (token: String) async throws -> JSONValue in
            try await http.json(method, path, token: token, body: body, timeoutMs: timeout)
        }
    }

    /// Uploads media (`POST /v1/media`): `{media_id, size, content_type, ...}`.
    public func upload(_ bytes: [UInt8], contentType: String, name: String? = nil) async throws -> JSONObject {
        let path = "/v1/media" + (name.map { "?name=" + ($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") } ?? "")
        let http = http
        let reply = try await withToken { (token: String) async throws -> HTTPAPI.Reply in
            try await http.request(.POST, path, token: token, body: ByteBuffer(bytes: bytes), contentType: contentType, timeoutMs: 120_000)
        }
        guard let object = reply.json?.objectValue else { throw ChatError(code: "internal", message: "the gateway answered no JSON") }
        return object
    }

    /// Downloads media: an attachment's `url` or `thumbnail_url`, or a media id.
    public func download(_ urlOrID: String) async throws -> (bytes: [UInt8], contentType: String?) {
        let path = urlOrID.hasPrefix("/") || urlOrID.hasPrefix("http") ? urlOrID : "/v1/media/\(urlOrID)"
        let http = http
        let reply = try await withToken { (token: String) async throws -> HTTPAPI.Reply in
            try await http.request(.GET, path, token: token, timeoutMs: 120_000)
        }
        var body = reply.body
        return (body.readBytes(length: body.readableBytes) ?? [], reply.contentType)
    }

    private func withToken<T: Sendable>(_ call: @Sendable (String) async throws -> T) async throws -> T {
        if token == nil { token = try await tokenProvider() }
        do {
            return try await call(token ?? "")
        } catch let error as ChatError where error.status == 401 {
            token = try await tokenProvider()
            return try await call(token ?? "")
        }
    }
}
