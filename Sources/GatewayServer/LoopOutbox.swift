import NIOCore
import Synchronization

/// Frames on their way to the WebSocket connections of one event loop, handed over in bursts.
///
/// Sends come from any thread (the committer's delivery, a session's task). Each would otherwise
/// cost one `execute` onto the loop to write and another to flush. Here a burst costs one: the
/// first frame into an empty outbox schedules a drain, the ones that follow until it runs join
/// it, and the drain writes them all, then flushes each connection once.
final class LoopOutbox: Sendable {
    let eventLoop: any EventLoop
    private struct State {
        var frames: [(connection: WebSocketConnection, frame: ByteBuffer)] = []
        /// The array the last drain emptied, kept for its capacity.
        var spare: [(connection: WebSocketConnection, frame: ByteBuffer)] = []
        var scheduled = false
    }

    /// Guards the frames waiting for the drain.
    private let state = Mutex(State())

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Queues `frame` for `connection`, whose channel is on this loop.
    func post(_ frame: ByteBuffer, to connection: WebSocketConnection) {
        let schedule = state.withLock { state -> Bool in
            state.frames.append((connection, frame))
            if state.scheduled { return false }
            state.scheduled = true
            return true
        }
        if schedule { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        var frames = state.withLock { state in
            state.scheduled = false
            var taken = state.spare
            swap(&taken, &state.frames)
            return taken
        }
        for (connection, frame) in frames { connection.writeOnLoop(frame) }
        for (connection, _) in frames { connection.flushOnLoop() }
        frames.removeAll(keepingCapacity: frames.capacity <= 4096)
        state.withLock { state in
            if state.spare.capacity < frames.capacity { state.spare = frames }
        }
    }

    /// Every outbox by loop: one per event loop the process has used, for its lifetime.
    private static let outboxes = Mutex<[ObjectIdentifier: LoopOutbox]>([:])

    /// The outbox of `eventLoop`.
    static func of(_ eventLoop: any EventLoop) -> LoopOutbox {
        outboxes.withLock { outboxes in
            let key = ObjectIdentifier(eventLoop)
            if let outbox = outboxes[key] { return outbox }
            let outbox = LoopOutbox(eventLoop: eventLoop)
            outboxes[key] = outbox
            return outbox
        }
    }
}
