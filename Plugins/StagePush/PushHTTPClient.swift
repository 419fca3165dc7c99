import AsyncHTTPClient
import Dispatch
import NIOCore
import NIOHTTP1
import Synchronization

/// An `HTTPClient` the push providers share, created on first use and shut down by the stage's
/// worker service when the gateway stops (pipelines built and dropped without their services,
/// as `chatgate check-config` does, then own no client).
final class PushHTTPClient: Sendable {
    struct State {
        var client: HTTPClient?
        var inFlight = 0
        var draining: CheckedContinuation<Void, Never>?
        var shutDown = false
    }

    struct ShutDownError: Error, CustomStringConvertible {
        var description: String { "the push HTTP client is shut down" }
    }

    /// One response, its body read up to a bound.
    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    let configuration: HTTPClient.Configuration
    let timeoutMs: Int
    /// Guards the client, the calls in flight and shutdown.
    private let state = Mutex(State())

    init(configuration: HTTPClient.Configuration, timeoutMs: Int) {
        self.configuration = configuration
        self.timeoutMs = timeoutMs
    }

    /// The configuration the providers start from: no redirects, bounded timeouts.
    static func baseConfiguration(timeoutMs: Int) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .milliseconds(Int64(timeoutMs)), read: .milliseconds(Int64(timeoutMs)))
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        return configuration
    }

    /// Sends `request` and reads up to 64 KiB of the answer, within `timeout_ms`.
    func execute(_ request: HTTPClientRequest) async throws -> Reply {
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
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeoutMs))
        let response = try await client.execute(request, deadline: deadline)
        let body = try await response.body.collect(upTo: 64 * 1024)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Array(body.readableBytesView))
    }

    /// Waits for calls in flight, then shuts the client down.
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
        if let client = state.withLock({ $0.client }) {
            client.shutdown(queue: .global()) { _ in }
        }
    }
}
