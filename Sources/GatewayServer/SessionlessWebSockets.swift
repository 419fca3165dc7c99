import GatewayCore
import NIOCore
import Synchronization

/// The WebSocket connections that are not sessions: upgraded without a token and still waiting
/// for their `auth` frame, or on the echo endpoint. Sessions are closed at shutdown through the
/// hub; these are not in it, so shutdown closes them from here (1001), and none outlives the
/// gateway (a test's teardown check counts their handlers).
///
/// A connection is listed from its upgrade until it authenticates or ends, so an idle
/// authenticated connection costs nothing here. `Sendable`: the map is behind a lock.
final class SessionlessWebSockets: Sendable {
    /// Guards the handlers, by identity; each is bound to its channel's event loop.
    private let handlers = Mutex<[ObjectIdentifier: NIOLoopBound<WebSocketSessionHandler>]>([:])

    var count: Int { handlers.withLock { $0.count } }

    /// Called on `handler`'s event loop.
    func insert(_ handler: WebSocketSessionHandler, eventLoop: any EventLoop) {
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        handlers.withLock { $0[ObjectIdentifier(handler)] = bound }
    }

    func remove(_ handler: WebSocketSessionHandler) {
        // Released after the lock: it may be the handler's last reference.
        let removed = handlers.withLock { $0.removeValue(forKey: ObjectIdentifier(handler)) }
        withExtendedLifetime(removed) {}
    }

    /// Closes every listed connection with `code` and `reason`, each on its own event loop.
    func closeAll(code: CloseCode, reason: String) {
        let all = handlers.withLock { Array($0.values) }
        for bound in all {
            bound.eventLoop.execute { bound.value.close(code: code, reason: reason) }
        }
    }
}
