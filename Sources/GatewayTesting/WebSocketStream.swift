import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A WebSocket client with an async, pull-based API: `next(timeout:)` waits for the next event.
/// For tests and simple tools; the load generator uses `WebSocketClient`'s callbacks directly.
public final class WebSocketStream: Sendable {
    public struct Timeout: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    struct State {
        var events: [WebSocketEvent] = []
        var waiter: CheckedContinuation<WebSocketEvent?, Never>?
        /// Which wait the current waiter is, so a timer left from an earlier wait never ends it.
        var generation: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())
    private let client = NIOLockedValueBox<WebSocketClient?>(nil)

    private init() {}

    /// Connects and returns once the handshake's answer arrives; `status` is 101 when upgraded.
    public static func connect(
        host: String = "127.0.0.1", port: Int, path: String = "/v1/ws", headers: [(String, String)] = [], receiveBufferBytes: Int? = nil,
        tls: TLSConfiguration? = nil
    ) async throws -> (stream: WebSocketStream, status: Int, body: String) {
        let stream = WebSocketStream()
        let client = try await WebSocketClient.connect(
            host: host, port: port, path: path, headers: headers, receiveBufferBytes: receiveBufferBytes, tls: tls
        ) { event in
            stream.push(event)
        }
        stream.client.withLockedValue { $0 = client }
        let first = try await stream.next(timeout: 10)
        guard case .handshake(let status, _, let body) = first else {
            return (stream, 0, "")
        }
        return (stream, status, body)
    }

    public var raw: WebSocketClient { client.withLockedValue { $0! } }

    func push(_ event: WebSocketEvent) {
        let waiter: CheckedContinuation<WebSocketEvent?, Never>? = state.withLockedValue { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.events.append(event)
            return nil
        }
        waiter?.resume(returning: event)
    }

    /// The next event, or `Timeout` after `timeout` seconds.
    public func next(timeout: Double = 10) async throws -> WebSocketEvent {
        let event: WebSocketEvent? = await withCheckedContinuation { continuation in
            let (ready, generation): (WebSocketEvent?, UInt64) = state.withLockedValue { state in
                if !state.events.isEmpty { return (state.events.removeFirst(), 0) }
                state.generation += 1
                state.waiter = continuation
                return (nil, state.generation)
            }
            if let ready {
                continuation.resume(returning: ready)
                return
            }
            let eventLoop = client.withLockedValue { $0?.channel.eventLoop } ?? MultiThreadedEventLoopGroup.singleton.next()
            eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) { [self] in
                let waiter: CheckedContinuation<WebSocketEvent?, Never>? = self.state.withLockedValue { state in
                    guard state.generation == generation, let waiter = state.waiter else { return nil }
                    state.waiter = nil
                    return waiter
                }
                waiter?.resume(returning: nil)
            }
        }
        guard let event else { throw Timeout(description: "no WebSocket event within \(timeout) s") }
        return event
    }

    /// The next text message, skipping pongs; throws on close or timeout.
    public func nextText(timeout: Double = 10) async throws -> String {
        while true {
            switch try await next(timeout: timeout) {
            case .text(let text): return text
            case .pong: continue
            case let other: throw Timeout(description: "expected a text message, got \(other)")
            }
        }
    }

    /// Waits for the server's close frame and returns its code (skipping messages before it).
    public func closeCode(timeout: Double = 10) async throws -> UInt16? {
        while true {
            switch try await next(timeout: timeout) {
            case .close(let code, _): return code
            case .disconnected: return nil
            default: continue
            }
        }
    }

    public func send(_ text: String) { raw.send(text: text) }

    public func close() { raw.close() }
}
