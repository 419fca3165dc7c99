import NIOCore
import Synchronization

/// Frames on their way to the WebSocket connections of one event loop, handed over in bursts.
///
/// Sends come from any thread (the committer's delivery, a session's task). Each would otherwise
/// cost one `execute` onto the loop to write and another to flush. Here a burst costs one: the
/// first frame into an empty outbox schedules a drain, the ones that follow until it runs join
/// it, and the drain hands them all to their connections' owners, then flushes each once.
///
/// One per event loop, made by the application (`LoopOutboxes`) and handed to every connection
/// on that loop.
final class LoopOutbox: Sendable {
    /// How a frame is ordered against the session's `hello` (see `WebSocketSessionHandler.take`).
    enum Order: Sendable {
        /// Held until the session's `hello` has gone out: a delivery or a reply.
        case afterHello
        /// Written at once: the `hello` of a refreshed token, an error before the connection closes.
        case now
        /// The session's first `hello`: written, then the frames held for it.
        case hello
    }

    struct Entry {
        let connection: WebSocketConnection
        let frame: ByteBuffer
        let order: Order
    }

    let eventLoop: any EventLoop
    private struct State {
        var entries: [Entry] = []
        /// The array the last drain emptied, kept for its capacity.
        var spare: [Entry] = []
        var scheduled = false
    }

    /// Guards the frames waiting for the drain.
    private let state = Mutex(State())

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Queues `frame` for `connection`, whose channel is on this loop.
    func post(_ frame: ByteBuffer, order: Order, to connection: WebSocketConnection) {
        let schedule = state.withLock { state -> Bool in
            state.entries.append(Entry(connection: connection, frame: frame, order: order))
            if state.scheduled { return false }
            state.scheduled = true
            return true
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        var entries = state.withLock { state in
            state.scheduled = false
            var taken = state.spare
            swap(&taken, &state.entries)
            return taken
        }
        for entry in entries { entry.connection.owner.value.take(entry.frame, order: entry.order) }
        for entry in entries { entry.connection.owner.value.flushIfNeeded() }
        entries.removeAll(keepingCapacity: entries.capacity <= 4096)
        state.withLock { state in
            if state.spare.capacity < entries.capacity { state.spare = entries }
        }
    }
}

/// The outbox of every event loop of a group, made once by the application and passed to the
/// connections (no process-wide registry: two gateways in one process have their own).
struct LoopOutboxes: Sendable {
    private let byLoop: [ObjectIdentifier: LoopOutbox]

    /// One outbox for each loop of `group`.
    init(group: any EventLoopGroup) {
        var byLoop: [ObjectIdentifier: LoopOutbox] = [:]
        for loop in group.makeIterator() { byLoop[ObjectIdentifier(loop)] = LoopOutbox(eventLoop: loop) }
        self.byLoop = byLoop
    }

    /// The outbox of `eventLoop`; a loop outside the group (none in the server) gets an outbox of
    /// its own, which works but batches only that connection's frames.
    func outbox(for eventLoop: any EventLoop) -> LoopOutbox {
        byLoop[ObjectIdentifier(eventLoop)] ?? LoopOutbox(eventLoop: eventLoop)
    }
}
