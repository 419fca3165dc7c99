import AsyncHTTPClient
import Dispatch
import NIOCore
import ServiceLifecycle
import Synchronization

/// The webhook stage's HTTP client: one pooled `HTTPClient`, created on the first call and shut
/// down by `Lifecycle`, the service the stage hands to the executable's `ServiceGroup`.
///
/// Created lazily because pipelines are also built and dropped without their services ever
/// running (`chatgate check-config`, tests); such a pipeline then owns no client to leak. At
/// shutdown (the node stopping, or a reload retiring this pipeline) calls in flight finish
/// first (each is bounded by `timeout_ms`), then the client shuts down.
final class WebhookClient: Sendable {
    struct State {
        var client: HTTPClient?
        var inFlight = 0
        /// Shutdown has begun: it waits for `inFlight` to reach 0.
        var draining: CheckedContinuation<Void, Never>?
        var shutDown = false
    }

    /// The client was asked for after shutdown.
    struct ShutDownError: Error, CustomStringConvertible {
        var description: String { "the webhook client is shut down" }
    }

    let configuration: HTTPClient.Configuration
    /// Guards the client, the calls in flight and the shutdown's progress.
    private let state = Mutex(State())

    init(timeoutMs: Int, maxConnections: Int) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(timeoutMs)), read: .milliseconds(Int64(timeoutMs)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        self.configuration = configuration
    }

    /// Runs `body` with the client (created on first use), counted as a call in flight.
    func withClient<T: Sendable>(_ body: (HTTPClient) async throws -> T) async throws -> T {
        let client = try state.withLock { state throws -> HTTPClient in
            guard !state.shutDown else { throw ShutDownError() }
            state.inFlight += 1
            if let client = state.client { return client }
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            state.client = client
            return client
        }
        defer {
            let drained = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.inFlight -= 1
                guard state.inFlight == 0 else { return nil }
                defer { state.draining = nil }
                return state.draining
            }
            drained?.resume()
        }
        return try await body(client)
    }

    /// Waits for the calls in flight, then shuts the client down (if one was created); later
    /// calls fail.
    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                guard state.inFlight > 0, state.draining == nil else { return true }
                state.draining = continuation
                return false
            }
            if idle { continuation.resume() }
        }
        let client = state.withLock { state -> HTTPClient? in
            state.shutDown = true
            defer { state.client = nil }
            return state.client
        }
        try? await client?.shutdown()
    }

    deinit {
        // Reached with a client only when the stage's service never ran (a pipeline used in a
        // test without its services): shut it down rather than leak its connections.
        if let client = state.withLock({ $0.client }) {
            client.shutdown(queue: .global()) { _ in }
        }
    }

    /// Runs until the service group shuts down, then shuts the client down.
    struct Lifecycle: Service {
        let client: WebhookClient

        func run() async throws {
            try? await gracefulShutdown()
            await client.shutdown()
        }
    }
}
