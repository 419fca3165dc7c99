import GatewayCore
import NIOCore
import Synchronization

/// Closes WebSocket sessions that sent nothing (no frame, ping or pong) for
/// `presence.offline_after_ms`, with 1000 `heartbeat timeout`.
///
/// One repeated sweep for the whole gateway rather than an idle timer per connection (a handler,
/// a scheduled task, a closure and a promise each). `WebSocketSessionHandler.channelRead` keeps
/// `Session.lastActiveAt` current; the sweep reads it with the gateway's clock, and runs on that
/// clock (`RepeatedClockTask`): every `max(100 ms, timeout / 4) / 2`, so a silent session is
/// closed within timeout + that bound, and a test stepping a `TestClock` past the timeout sees
/// the close without waiting.
final class HeartbeatSweeper: Sendable {
    let gateway: Gateway
    /// `presence.offline_after_ms`.
    let timeoutMs: Int64
    private let task = Mutex<RepeatedClockTask?>(nil)

    init(gateway: Gateway, timeoutMs: Int) {
        self.gateway = gateway
        self.timeoutMs = Int64(timeoutMs)
    }

    /// Milliseconds between sweeps: half the lateness allowed after the timeout, so a sweep that
    /// runs late (a busy loop, a long walk) still closes in time.
    var intervalMs: Int64 {
        max(100, timeoutMs / 4) / 2
    }

    /// Closes the WebSocket sessions silent for the timeout or longer.
    func sweep() {
        let cutoff = gateway.clock.nowMillis() - timeoutMs
        let silent = gateway.hub.sessions(over: .websocket) { $0.lastActiveAt.load(ordering: .relaxed) <= cutoff }
        for session in silent {
            session.connection.close(code: .normal, reason: "heartbeat timeout")
        }
    }

    func start(on eventLoop: any EventLoop) {
        let repeated = RepeatedClockTask(clock: gateway.clock, interval: intervalMs, on: eventLoop) { [self] in self.sweep() }
        let previous = task.withLock { task in
            defer { task = repeated }
            return task
        }
        previous?.cancel()
    }

    func stop() {
        let stopped = task.withLock { task in
            defer { task = nil }
            return task
        }
        stopped?.cancel()
    }
}

/// The token deadlines of WebSocket sessions: when a session's token expires (it gets
/// `token_expired`), then the end of the grace it has for a fresh `auth` (close 4001).
///
/// One timer on one event loop, armed for the earliest deadline, instead of a scheduled task per
/// connection. Deadlines are times on the gateway's clock (milliseconds), and the timer runs on
/// that clock, so a test stepping a `TestClock` past a token's expiry sees `token_expired` at once.
/// Each connection has at most one deadline, kept in a binary min-heap whose slot the
/// connection remembers (`WebSocketConnection.deadlineSlot`), so replacing or dropping it is
/// O(log n) and a closed connection leaves nothing behind. When a deadline passes, the
/// connection's owner is called on its own event loop (`tokenDeadlinePassed`), as its own timer
/// was.
final class TokenDeadlines: Sendable {
    struct Entry {
        /// On the gateway's clock (ms since the epoch).
        var deadline: Int64
        let connection: WebSocketConnection
        /// The handler's count of deadlines set when this one was: an older one is stale.
        let generation: UInt32
        /// The grace after `token_expired`, else the token's expiry.
        let grace: Bool
    }

    private struct State {
        var heap: [Entry] = []
        var timer: ClockTimer?
        /// The deadline `timer` is armed for.
        var armedFor: Int64?
        var stopped = false
    }

    let eventLoop: any EventLoop
    let clock: any GatewayClock
    /// Guards the heap and the timer.
    private let state = Mutex(State())

    init(eventLoop: any EventLoop, clock: any GatewayClock) {
        self.eventLoop = eventLoop
        self.clock = clock
    }

    var count: Int { state.withLock { $0.heap.count } }

    /// Sets (or replaces) `connection`'s deadline, a time on the gateway's clock.
    func set(_ connection: WebSocketConnection, at deadline: Int64, generation: UInt32, grace: Bool) {
        state.withLock { state in
            guard !state.stopped else { return }
            let entry = Entry(deadline: deadline, connection: connection, generation: generation, grace: grace)
            let slot = connection.deadlineSlot.load(ordering: .relaxed)
            if slot >= 0 {
                state.heap[slot] = entry
                Self.siftDown(&state.heap, from: Self.siftUp(&state.heap, from: slot))
            } else {
                state.heap.append(entry)
                Self.siftUp(&state.heap, from: state.heap.count - 1)
            }
            arm(&state)
        }
    }

    /// Drops `connection`'s deadline, if it has one. Called on the connection's event loop, the
    /// only place its deadline is set, so a slot of -1 read without the lock is current.
    func remove(_ connection: WebSocketConnection) {
        guard connection.deadlineSlot.load(ordering: .relaxed) >= 0 else { return }
        state.withLock { state in
            let slot = connection.deadlineSlot.load(ordering: .relaxed)
            guard slot >= 0 else { return }
            Self.remove(&state.heap, at: slot)
            if state.heap.isEmpty { disarm(&state) }
        }
    }

    /// Cancels the timer and forgets every deadline (shutdown).
    func stop() {
        // Released after the lock: a connection's last reference may go with its entry.
        let dropped = state.withLock { state -> [Entry] in
            state.stopped = true
            disarm(&state)
            defer { state.heap = [] }
            for entry in state.heap { entry.connection.deadlineSlot.store(-1, ordering: .relaxed) }
            return state.heap
        }
        withExtendedLifetime(dropped) {}
    }

    private func fire() {
        let now = clock.nowMillis()
        let due = state.withLock { state -> [Entry] in
            state.timer = nil
            state.armedFor = nil
            var due: [Entry] = []
            while let first = state.heap.first, first.deadline <= now {
                due.append(first)
                Self.remove(&state.heap, at: 0)
            }
            arm(&state)
            return due
        }
        for entry in due {
            let owner = entry.connection.owner
            let (generation, grace) = (entry.generation, entry.grace)
            owner.eventLoop.execute {
                owner.value.tokenDeadlinePassed(generation: generation, grace: grace)
            }
        }
    }

    /// Arms the timer for the earliest deadline unless it is armed for that or an earlier one
    /// (an early timer finds nothing due and re-arms).
    private func arm(_ state: inout State) {
        guard !state.stopped, let first = state.heap.first?.deadline else { return }
        if let armedFor = state.armedFor, armedFor <= first { return }
        state.timer?.cancel()
        state.armedFor = first
        state.timer = clock.schedule(at: first, on: eventLoop) { [self] in self.fire() }
    }

    private func disarm(_ state: inout State) {
        state.timer?.cancel()
        state.timer = nil
        state.armedFor = nil
    }

    // MARK: Heap (each move records the entry's slot in its connection)

    private static func place(_ heap: inout [Entry], _ entry: Entry, at slot: Int) {
        heap[slot] = entry
        entry.connection.deadlineSlot.store(slot, ordering: .relaxed)
    }

    @discardableResult
    private static func siftUp(_ heap: inout [Entry], from start: Int) -> Int {
        let entry = heap[start]
        var slot = start
        while slot > 0 {
            let parent = (slot - 1) / 2
            guard entry.deadline < heap[parent].deadline else { break }
            place(&heap, heap[parent], at: slot)
            slot = parent
        }
        place(&heap, entry, at: slot)
        return slot
    }

    private static func siftDown(_ heap: inout [Entry], from start: Int) {
        let entry = heap[start]
        var slot = start
        while true {
            var child = 2 * slot + 1
            guard child < heap.count else { break }
            if child + 1 < heap.count, heap[child + 1].deadline < heap[child].deadline { child += 1 }
            guard heap[child].deadline < entry.deadline else { break }
            place(&heap, heap[child], at: slot)
            slot = child
        }
        place(&heap, entry, at: slot)
    }

    private static func remove(_ heap: inout [Entry], at slot: Int) {
        heap[slot].connection.deadlineSlot.store(-1, ordering: .relaxed)
        let last = heap.removeLast()
        guard slot < heap.count else { return }
        heap[slot] = last
        siftDown(&heap, from: siftUp(&heap, from: slot))
    }
}
