import NIOCore
import NIOHTTP1
import NIOPosix

/// How the generator drives its clients.
struct LoadPlan: Sendable {
    var target: TargetURL
    /// Several nodes (`bench --postgres`, 2 nodes): client `i` connects to node `(i / 2) % n`,
    /// so both clients of a relay pair are on one node. Empty: every client to `target`.
    var nodes: [TargetURL] = []

    /// Where client `index` connects.
    func target(for index: Int) -> TargetURL {
        nodes.isEmpty ? target : nodes[(index / 2) % nodes.count]
    }
    /// Unacked messages per sender (closed loop); ignored when `rate` is set.
    var window: Int = 10
    /// A fixed total send rate (msgs/s) over all senders (open loop).
    var rate: Double?
    /// Every sender sends one message at the same instant this often (open loop, `burst`).
    var burstIntervalMs: Int?
    /// Senders refill a window on each ack (neither `rate` nor `burstIntervalMs` is set).
    var closedLoop: Bool { rate == nil && burstIntervalMs == nil }
    var bodyBytes: Int = 100
    /// Connection attempts under way at once.
    var connectConcurrency = 256
    /// Reconnect dropped clients with jittered exponential backoff (`storm`).
    var reconnect = false
    /// Track seqs, acks and receipts per message; `sync` after every (re)connect and on gaps.
    var tracking = false
    /// Send `{"type":"ping"}` at the `heartbeat_ms` the server announced.
    var heartbeats = true
}

/// What the generator measured between `beginMeasure` and `endMeasure`.
struct LoadSnapshot: Sendable {
    var elapsedSeconds: Double = 0
    /// Message frames received (each recipient counts).
    var delivered: UInt64 = 0
    var sent: UInt64 = 0
    var acked: UInt64 = 0
    var endToEnd = BenchHistogram()
    var ack = BenchHistogram()
    /// Heartbeat round trips (`ping` → `pong`).
    var ping = BenchHistogram()
    /// `error` frames by code, refused handshakes (`http_<status>`), unexpected closes (`close_<code>`).
    var errors: [String: Int] = [:]
}

/// The load generator: every client connection on one event loop, driven by callbacks.
///
/// All state is confined to `eventLoop` (the owner reaches it through `NIOLoopBound` and
/// `EventLoop.submit`), so there are no locks on the hot path; one core runs all the clients,
/// as the peer benchmarks' single load generator did.
final class LoadGenerator {
    let eventLoop: any EventLoop
    let plan: LoadPlan
    private(set) var clients: [BenchClient] = []
    private var senders: [Int] = []

    // Connecting
    private var connectQueue: [Int] = []
    private var connectQueueHead = 0
    private var connectsInFlight = 0
    private var waitingForOpen: Set<Int> = []
    private var openPromise: EventLoopPromise<Void>?
    /// Counts `connect` calls, so a timeout only fails the call that set it.
    private var connectGeneration = 0
    private var retries: [Int: Int] = [:]
    private(set) var openCount = 0
    private var liveChannels = 0
    private var closedPromise: EventLoopPromise<Void>?
    private(set) var stopping = false

    // Sending
    private(set) var sending = false
    private var rateTimer: RepeatedTask?
    private var rateStart: UInt64 = 0
    private var rateIssued: UInt64 = 0
    private var nextSender = 0
    private var heartbeatTimer: RepeatedTask?
    private var heartbeatCursor = 0
    private var heartbeatNanos: UInt64 = 5_000_000_000

    // Flushing
    private var dirty: [LoadConnection] = []

    // Measuring
    private var measuring = false
    private var measureStart: UInt64 = 0
    private var snapshot = LoadSnapshot()

    // Storm
    private(set) var epoch = 0
    private(set) var backInEpoch = 0
    private(set) var allBackAt: UInt64?
    private var pendingSyncs = 0
    private var syncPromise: EventLoopPromise<Void>?

    // Long-poll
    private var longPolls: [LongPollReceiver] = []

    init(eventLoop: any EventLoop, plan: LoadPlan) {
        self.eventLoop = eventLoop
        self.plan = plan
    }

    /// Adds clients (before connecting them).
    func add(_ newClients: [BenchClient]) {
        for client in newClients {
            precondition(client.index == clients.count, "clients are added in index order")
            clients.append(client)
            if client.role == .sender { senders.append(client.index) }
        }
    }

    // MARK: Connecting

    /// Connects the clients (at most `connectConcurrency` at a time); succeeds when every one has
    /// its `hello`, fails when one cannot connect after 3 tries (without `reconnect`).
    func connect(_ indices: [Int]) -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        let promise = eventLoop.makePromise(of: Void.self)
        guard !indices.isEmpty else {
            promise.succeed()
            return promise.futureResult
        }
        openPromise = promise
        // A new round (`churn` connects the same clients again after `closeAll`).
        stopping = false
        connectGeneration += 1
        let generation = connectGeneration
        waitingForOpen = Set(indices)
        for index in indices { enqueue(index) }
        // A handshake the server never answers must not hang the run.
        let seconds = Int64(max(30, indices.count / 40))
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.scheduleTask(in: .seconds(seconds)) {
            let generator = bound.value
            guard generator.connectGeneration == generation, let pending = generator.openPromise, !generator.waitingForOpen.isEmpty else {
                return
            }
            generator.openPromise = nil
            pending.fail(BenchError("\(generator.waitingForOpen.count) of \(indices.count) clients had no hello within \(seconds) s"))
        }
        return promise.futureResult
    }

    private func enqueue(_ index: Int) {
        connectQueue.append(index)
        pumpConnects()
    }

    private func pumpConnects() {
        while connectsInFlight < plan.connectConcurrency, connectQueueHead < connectQueue.count {
            let index = connectQueue[connectQueueHead]
            connectQueueHead += 1
            startConnect(clients[index])
        }
        if connectQueueHead == connectQueue.count {
            connectQueue.removeAll(keepingCapacity: true)
            connectQueueHead = 0
        }
    }

    private func startConnect(_ client: BenchClient) {
        guard !stopping, !client.connecting, !client.open else { return }
        client.connecting = true
        connectsInFlight += 1
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let index = client.index
        var bootstrap = ClientBootstrap(group: eventLoop)
        if let source = sourceAddress(for: index) { bootstrap = bootstrap.bind(to: source) }
        bootstrap
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let generator = bound.value
                    let connection = LoadConnection(generator: generator, client: generator.clients[index])
                    try channel.pipeline.syncOperations.addHandler(connection)
                    generator.clients[index].connection = connection
                }
            }
            .connect(host: plan.target(for: index).host, port: plan.target(for: index).port)
            .whenFailure { _ in
                let generator = bound.value
                let client = generator.clients[index]
                client.connection = nil
                generator.attemptFailed(client, reason: "connect_failed")
            }
    }

    /// Clients per source address when the server is on loopback.
    static let clientsPerSourceAddress = 1000

    /// On loopback, clients come from 127.0.0.2, 127.0.0.3, … a thousand each, as users come from
    /// many hosts: a per-address connection limit then does not cap the run, and each address
    /// has its own ephemeral ports. Elsewhere the system picks the address.
    private func sourceAddress(for index: Int) -> SocketAddress? {
        guard plan.target.host == "127.0.0.1" || plan.target.host == "localhost" else { return nil }
        let host = 2 + (index / Self.clientsPerSourceAddress) % 250
        return try? SocketAddress(ipAddress: "127.0.0.\(host)", port: 0)
    }

    /// The upgrade request with the client's token.
    func handshake(for client: BenchClient, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 256 + client.token.utf8.count)
        let target = plan.target(for: client.index)
        buffer.writeString("GET \(target.path) HTTP/1.1\r\nHost: \(target.host):\(target.port)\r\n")
        buffer.writeStaticString("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
        buffer.writeStaticString("Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ")
        buffer.writeString(client.token)
        buffer.writeStaticString("\r\n\r\n")
        return buffer
    }

    func handshakeRefused(_ client: BenchClient, status: Int) {
        count(error: "http_\(status)")
    }

    /// A connection attempt ended before `hello`.
    private func attemptFailed(_ client: BenchClient, reason: String) {
        guard client.connecting else { return }
        client.connecting = false
        connectsInFlight -= 1
        count(error: reason)
        if stopping {
            // Nothing to do.
        } else if plan.reconnect {
            scheduleReconnect(client)
        } else {
            let tries = (retries[client.index] ?? 0) + 1
            retries[client.index] = tries
            if tries >= 3 {
                let seen = errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                openPromise?.fail(BenchError(
                    "client \(client.user) could not connect to \(plan.target.host):\(plan.target.port) (\(reason), 3 tries; errors so far: \(seen))"))
                openPromise = nil
            } else {
                let bound = NIOLoopBound(self, eventLoop: eventLoop)
                let index = client.index
                eventLoop.scheduleTask(in: .milliseconds(200)) { bound.value.enqueue(index) }
            }
        }
        pumpConnects()
    }

    private func scheduleReconnect(_ client: BenchClient) {
        client.attempts += 1
        // Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^attempts)].
        let ceiling = min(5_000, 100 << min(client.attempts, 6))
        let delay = Int64.random(in: 0...Int64(ceiling))
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let index = client.index
        eventLoop.scheduleTask(in: .milliseconds(delay)) { bound.value.enqueue(index) }
    }

    /// A connection's TCP handshake completed.
    func connectionActivated() {
        liveChannels += 1
    }

    /// A channel that was active ended (at any stage).
    func connectionClosed(_ connection: LoadConnection) {
        liveChannels -= 1
        let client = connection.client
        if client.connection === connection { client.connection = nil }
        if client.connecting {
            attemptFailed(client, reason: "closed_before_hello")
        } else if client.open {
            client.open = false
            client.ready = false
            client.syncing = false
            client.inFlight = 0
            if client.counted {
                client.counted = false
                backInEpoch -= 1
            }
            if !stopping {
                count(error: "close_\(connection.closeCode.map(String.init) ?? "none")")
                if plan.reconnect { scheduleReconnect(client) }
            }
        }
        if liveChannels == 0, let promise = closedPromise {
            closedPromise = nil
            promise.succeed()
        }
    }

    /// `hello` arrived.
    private func opened(_ client: BenchClient, hello bytes: UnsafeRawBufferPointer) {
        if let heartbeat = FrameScanner.integer(after: FrameScanner.Keys.heartbeat, in: bytes), heartbeat.value > 0 {
            heartbeatNanos = heartbeat.value * 1_000_000
        }
        if client.connecting {
            client.connecting = false
            connectsInFlight -= 1
        }
        client.open = true
        client.attempts = 0
        openCount += 1
        if plan.tracking, let inbox = FrameScanner.integer(after: FrameScanner.Keys.inboxSeq, in: bytes), Int64(inbox.value) < client.lastSeq {
            // The server lost its state (the baseline keeps nothing): start over from its position.
            count(error: "inbox_seq_went_back")
            client.lastSeq = Int64(inbox.value)
            client.outOfOrder = []
        }
        if plan.tracking {
            requestSync(client)
        } else {
            becameReady(client)
        }
        if waitingForOpen.remove(client.index) != nil, waitingForOpen.isEmpty, let promise = openPromise {
            openPromise = nil
            promise.succeed()
        }
        pumpConnects()
    }

    private func becameReady(_ client: BenchClient) {
        client.ready = true
        if epoch > 0, !client.counted {
            client.counted = true
            backInEpoch += 1
            if backInEpoch == clients.count, allBackAt == nil { allBackAt = MonotonicClock.nanos() }
        }
        if plan.tracking, client.role == .sender, !client.unacked.isEmpty, let connection = client.connection {
            // Resend what was never acked, with the same client_msg_id: the gateway dedupes.
            for number in client.unacked.sorted() {
                write(send: number, from: client, on: connection, nanos: MonotonicClock.nanos())
            }
        }
        if sending, plan.closedLoop { fill(client) }
    }

    // MARK: Receiving

    /// A complete text message from a server.
    func received(_ bytes: UnsafeRawBufferPointer, on connection: LoadConnection) {
        let client = connection.client
        switch FrameScanner.kind(bytes) {
        case .message:
            message(bytes, to: client)
            if plan.tracking, client.hasGap, !client.syncing { requestSync(client) }
        case .ack:
            ack(bytes, from: client)
        case .hello:
            opened(client, hello: bytes)
        case .pong:
            if measuring, let sent = FrameScanner.integer(after: FrameScanner.Keys.ref, in: bytes) {
                snapshot.ping.record(fromNanos: sent.value, toNanos: MonotonicClock.nanos())
            }
        case .sync:
            syncReply(bytes, to: client)
        case .error:
            count(error: FrameScanner.string(after: FrameScanner.Keys.code, in: bytes) ?? "error")
            if client.role == .sender, client.inFlight > 0 {
                // Errors answer sends here: free the window slot (tracked sends stay unacked).
                client.inFlight -= 1
                if sending, plan.closedLoop { fill(client) }
            }
        case .other:
            break
        }
    }

    @inline(__always)
    private func message(_ bytes: UnsafeRawBufferPointer, to client: BenchClient) {
        guard let stamp = FrameScanner.integer(after: FrameScanner.Keys.benchTime, in: bytes) else { return }
        if plan.tracking {
            guard let seq = FrameScanner.integer(after: FrameScanner.Keys.seq, in: bytes), client.accept(seq: Int64(seq.value)) else { return }
            if client.role == .receiver, let number = FrameScanner.integer(after: FrameScanner.Keys.benchNumber, in: bytes, from: stamp.end) {
                client.received.insert(number.value)
            }
        }
        if measuring {
            snapshot.delivered += 1
            snapshot.endToEnd.record(fromNanos: stamp.value, toNanos: MonotonicClock.nanos())
        }
    }

    @inline(__always)
    private func ack(_ bytes: UnsafeRawBufferPointer, from client: BenchClient) {
        guard let id = FrameScanner.find(FrameScanner.Keys.clientMsgID, in: bytes, from: 0),
            let number = FrameScanner.integer(in: bytes, at: id + FrameScanner.Keys.clientMsgID.count),
            number.end < bytes.count, bytes[number.end] == UInt8(ascii: "-"),
            let stamp = FrameScanner.integer(in: bytes, at: number.end + 1)
        else { return }
        if client.inFlight > 0 { client.inFlight -= 1 }
        if plan.tracking {
            if let seq = FrameScanner.integer(after: FrameScanner.Keys.seq, in: bytes) { _ = client.accept(seq: Int64(seq.value)) }
            if client.unacked.remove(number.value) != nil { client.acked.insert(number.value) }
        }
        if measuring {
            snapshot.acked += 1
            snapshot.ack.record(fromNanos: stamp.value, toNanos: MonotonicClock.nanos())
        }
        if sending, plan.closedLoop { fill(client) }
    }

    // MARK: Sync (tracking)

    private func requestSync(_ client: BenchClient) {
        guard let connection = client.connection else { return }
        client.syncing = true
        connection.write(ClientFrames.sync(allocator: connection.allocator, since: client.lastSeq))
    }

    private func syncReply(_ bytes: UnsafeRawBufferPointer, to client: BenchClient) {
        var offset = 0
        while let start = FrameScanner.find(FrameScanner.Keys.messageStart, in: bytes, from: offset) {
            // Each message ends before the next one starts (or the reply's tail).
            let end = FrameScanner.find(FrameScanner.Keys.messageStart, in: bytes, from: start + 1) ?? bytes.count
            message(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), to: client)
            offset = end
        }
        let more = FrameScanner.find(FrameScanner.Keys.moreTrue, in: bytes, from: max(0, bytes.count - 16)) != nil
        if more {
            if let next = FrameScanner.integer(after: FrameScanner.Keys.next, in: bytes, from: max(0, bytes.count - 48)),
                Int64(next.value) > client.lastSeq
            {
                // Everything up to `next` came in this page, so the position moves on.
                client.lastSeq = Int64(next.value)
                client.outOfOrder = client.outOfOrder.filter { $0 > client.lastSeq }
            }
            requestSync(client)
            return
        }
        client.syncing = false
        // The inbox has nothing beyond what this device has now.
        if let maxSeen = client.outOfOrder.max(), maxSeen > client.lastSeq {
            client.lastSeq = maxSeen
        }
        client.outOfOrder = []
        if pendingSyncs > 0 {
            pendingSyncs -= 1
            if pendingSyncs == 0, let promise = syncPromise {
                syncPromise = nil
                promise.succeed()
            }
        }
        if !client.ready { becameReady(client) }
    }

    /// Every open receiver syncs once more, so messages that were never delivered live show up;
    /// succeeds when all have answered.
    func finalSync() -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        pendingSyncs = 0
        for client in clients where client.role == .receiver && client.open && !client.syncing {
            pendingSyncs += 1
            requestSync(client)
        }
        flushDirty()
        if pendingSyncs == 0 {
            promise.succeed()
        } else {
            syncPromise = promise
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.scheduleTask(in: .seconds(30)) {
                let generator = bound.value
                guard let pending = generator.syncPromise else { return }
                generator.syncPromise = nil
                pending.fail(BenchError("\(generator.pendingSyncs) final syncs unanswered after 30 s"))
            }
        }
        return promise.futureResult
    }

    // MARK: Sending

    /// Starts sending: fills every sender's window, or starts the rate or burst timer.
    func startSending() {
        sending = true
        if let interval = plan.burstIntervalMs {
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            rateTimer = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .milliseconds(Int64(interval))) { _ in
                bound.value.burstTick()
            }
        } else if let rate = plan.rate {
            rateStart = MonotonicClock.nanos()
            rateIssued = 0
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            rateTimer = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(1), delay: .milliseconds(1)) { _ in
                bound.value.rateTick(rate: rate)
            }
        } else {
            for index in senders { fill(clients[index]) }
        }
        flushDirty()
    }

    func stopSending() {
        sending = false
        rateTimer?.cancel()
        rateTimer = nil
    }

    private func fill(_ client: BenchClient) {
        guard client.ready, let connection = client.connection else { return }
        let now = MonotonicClock.nanos()
        while client.inFlight < plan.window {
            issue(client, on: connection, nanos: now)
        }
    }

    private func rateTick(rate: Double) {
        guard sending, !senders.isEmpty else { return }
        let now = MonotonicClock.nanos()
        let due = UInt64(Double(now - rateStart) * rate / 1e9)
        while rateIssued < due {
            rateIssued += 1
            let client = clients[senders[nextSender]]
            nextSender = (nextSender + 1) % senders.count
            if client.ready, let connection = client.connection {
                issue(client, on: connection, nanos: now)
            } else if plan.tracking {
                // Offline: the message waits in the client's outbox and goes out after the reconnect.
                let number = client.nextNumber
                client.nextNumber += 1
                client.unacked.insert(number)
                if measuring { snapshot.sent += 1 }
            }
        }
        flushDirty()
    }

    /// One message from every ready sender, all stamped with the same instant, then one flush.
    private func burstTick() {
        guard sending else { return }
        let now = MonotonicClock.nanos()
        for index in senders {
            let client = clients[index]
            if client.ready, let connection = client.connection { issue(client, on: connection, nanos: now) }
        }
        flushDirty()
    }

    @inline(__always)
    private func issue(_ client: BenchClient, on connection: LoadConnection, nanos: UInt64) {
        let number = client.nextNumber
        client.nextNumber += 1
        if plan.tracking { client.unacked.insert(number) }
        client.inFlight += 1
        if measuring { snapshot.sent += 1 }
        write(send: number, from: client, on: connection, nanos: nanos)
    }

    @inline(__always)
    private func write(send number: UInt64, from client: BenchClient, on connection: LoadConnection, nanos: UInt64) {
        guard let target = client.target else { return }
        connection.write(ClientFrames.send(allocator: connection.allocator, to: target, number: number, nanos: nanos, bodyBytes: plan.bodyBytes))
        client.lastSentNanos = nanos
    }

    // MARK: Heartbeats

    /// Sends `ping` from every open client at the announced `heartbeat_ms`, spread evenly.
    func startHeartbeats() {
        guard plan.heartbeats, heartbeatTimer == nil else { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        // Every 10 ms, so 20,000 clients' pings go out in small groups rather than bursts that
        // would queue behind each other and inflate the round trips measured.
        heartbeatTimer = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(10), delay: .milliseconds(10)) { _ in
            bound.value.heartbeatTick()
        }
    }

    private func heartbeatTick() {
        guard !clients.isEmpty else { return }
        let now = MonotonicClock.nanos()
        // Visit each client once per heartbeat interval.
        let visits = max(1, Int((UInt64(clients.count) * 10_000_000 + heartbeatNanos - 1) / heartbeatNanos))
        for _ in 0..<min(visits, clients.count) {
            let client = clients[heartbeatCursor]
            heartbeatCursor = (heartbeatCursor + 1) % clients.count
            guard client.open, let connection = client.connection, now &- client.lastSentNanos >= heartbeatNanos / 2 else { continue }
            connection.write(ClientFrames.ping(allocator: connection.allocator, nanos: now))
            client.lastSentNanos = now
        }
        flushDirty()
    }

    // MARK: Flushing

    func markDirty(_ connection: LoadConnection) {
        dirty.append(connection)
    }

    func flushDirty() {
        guard !dirty.isEmpty else { return }
        for connection in dirty { connection.flush() }
        dirty.removeAll(keepingCapacity: true)
    }

    // MARK: Measuring

    func beginMeasure() {
        snapshot = LoadSnapshot()
        measuring = true
        measureStart = MonotonicClock.nanos()
    }

    func endMeasure() -> LoadSnapshot {
        var result = snapshot
        result.errors = errors
        result.elapsedSeconds = Double(MonotonicClock.nanos() - measureStart) / 1e9
        measuring = false
        return result
    }

    /// Errors over the whole run (connecting included), copied into each snapshot.
    private var errors: [String: Int] = [:]

    private func count(error: String) {
        errors[error, default: 0] += 1
    }

    // MARK: Storm

    /// Starts counting clients back (open and caught up) from zero: the old server is gone.
    func startEpoch() {
        epoch += 1
        backInEpoch = 0
        allBackAt = nil
        for client in clients { client.counted = false }
    }

    /// Numbers issued and not acked, over all senders.
    var unackedTotal: Int { senders.reduce(0) { $0 + clients[$1].unacked.count } }

    /// Acked messages whose recipient never got them (tracked pairs: sender i → receiver i+1).
    func lossReport() -> (acked: Int, lost: Int, unacked: Int) {
        var acked = 0
        var lost = 0
        for index in senders {
            let sender = clients[index]
            guard let receiverIndex = clients.firstIndex(where: { $0.peer == index }) else { continue }
            let receiver = clients[receiverIndex]
            for number in sender.acked.members {
                acked += 1
                if !receiver.received.contains(number) { lost += 1 }
            }
        }
        return (acked, lost, unackedTotal)
    }

    // MARK: Long-poll

    /// Opens a long-poll session for each client and keeps a poll outstanding on each.
    func openLongPolls(_ receivers: [BenchClient]) -> EventLoopFuture<Void> {
        let futures = receivers.map { client -> EventLoopFuture<Void> in
            let receiver = LongPollReceiver(generator: self, client: client)
            longPolls.append(receiver)
            return receiver.start()
        }
        return EventLoopFuture.andAllSucceed(futures, on: eventLoop)
    }

    /// The frames of one poll answer (`{"frames":[…]}`).
    func longPollFrames(_ bytes: UnsafeRawBufferPointer, to client: BenchClient) {
        var offset = 0
        while let start = FrameScanner.find(FrameScanner.Keys.messageStart, in: bytes, from: offset) {
            let end = FrameScanner.find(FrameScanner.Keys.messageStart, in: bytes, from: start + 1) ?? bytes.count
            message(UnsafeRawBufferPointer(rebasing: bytes[start..<end]), to: client)
            offset = end
        }
    }

    func longPollFailed(_ reason: String) {
        count(error: reason)
    }

    /// POSTs each body with its token, one after the other on one connection; the statuses in order.
    func post(_ uri: String, _ requests: [(token: String, body: String)]) -> EventLoopFuture<[Int]> {
        let eventLoop = self.eventLoop
        guard !requests.isEmpty else { return eventLoop.makeSucceededFuture([]) }
        return httpConnection().flatMap { bound in
            let connection = bound.value
            let promise = eventLoop.makePromise(of: [Int].self)
            var statuses: [Int] = []
            for request in requests {
                connection.request(.POST, uri, token: request.token, body: ByteBuffer(string: request.body)) { status, _ in
                    statuses.append(status)
                    if statuses.count == requests.count {
                        connection.close()
                        promise.succeed(statuses)
                    }
                }
            }
            return promise.futureResult
        }
    }

    /// Opens one HTTP connection on the generator's loop.
    func httpConnection() -> EventLoopFuture<NIOLoopBound<HTTPConnection>> {
        let connection = HTTPConnection(host: "\(plan.target.host):\(plan.target.port)")
        let bound = NIOLoopBound(connection, eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(host: plan.target.host, port: plan.target.port)
            .map { _ in bound }
    }

    // MARK: Stopping

    /// Stops sending, heartbeats and reconnecting, so the server can be stopped first (a closed
    /// connection is then not an error). Closing from the server's side also leaves the TIME_WAIT
    /// sockets there, not on the generator's ephemeral ports, which a second run of 20,000
    /// connections needs.
    func quiesce() {
        stopping = true
        stopSending()
        heartbeatTimer?.cancel()
        heartbeatTimer = nil
        for receiver in longPolls { receiver.stop() }
        longPolls = []
        openPromise?.fail(BenchError("stopped"))
        openPromise = nil
    }

    /// Stops everything and closes every connection; succeeds when all are closed.
    func closeAll() -> EventLoopFuture<Void> {
        quiesce()
        for client in clients { client.connection?.close() }
        if liveChannels == 0 { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        closedPromise = promise
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.scheduleTask(in: .seconds(10)) {
            // Closing is local; if a channel still has not reported after this, stop waiting.
            let generator = bound.value
            generator.closedPromise?.succeed()
            generator.closedPromise = nil
        }
        return promise.futureResult
    }
}

/// A long-poll receiver: opens a session, then always has one poll outstanding.
final class LongPollReceiver {
    private let generator: LoadGenerator
    private let client: BenchClient
    private var connection: HTTPConnection?
    private var session: String?
    private var stopped = false

    init(generator: LoadGenerator, client: BenchClient) {
        self.generator = generator
        self.client = client
    }

    func start() -> EventLoopFuture<Void> {
        let eventLoop = generator.eventLoop
        let promise = eventLoop.makePromise(of: Void.self)
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        generator.httpConnection().whenComplete { result in
            let receiver = bound.value
            switch result {
            case .failure(let error):
                promise.fail(BenchError("long-poll connect failed: \(error)"))
            case .success(let bound):
                let connection = bound.value
                receiver.connection = connection
                connection.request(.POST, "/v1/lp/open", token: receiver.client.token, body: ByteBuffer(string: "{}")) { status, body in
                    let session = body.withUnsafeReadableBytes { FrameScanner.string(after: Array("\"session\":\"".utf8), in: $0) }
                    guard status == 200, let session else {
                        promise.fail(BenchError("long-poll open answered \(status): \(String(buffer: body))"))
                        return
                    }
                    receiver.session = session
                    receiver.client.open = true
                    promise.succeed()
                    receiver.poll()
                }
            }
        }
        return promise.futureResult
    }

    private func poll() {
        guard !stopped, let connection, let session else { return }
        let bound = NIOLoopBound(self, eventLoop: generator.eventLoop)
        connection.request(.GET, "/v1/lp/poll?session=\(session)&timeout_ms=20000", token: client.token) { status, body in
            let receiver = bound.value
            guard !receiver.stopped else { return }
            guard status == 200 else {
                receiver.generator.longPollFailed("poll_http_\(status)")
                return
            }
            body.withUnsafeReadableBytes { receiver.generator.longPollFrames($0, to: receiver.client) }
            receiver.poll()
        }
    }

    func stop() {
        stopped = true
        connection?.close()
    }
}
