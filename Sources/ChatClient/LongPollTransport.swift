import GatewayCore
import NIOCore
import Synchronization

/// A long-poll session (PROTOCOL.md section 4): one poll outstanding at a time; sends go out
/// in call order, one request at a time, frames queued meanwhile in one batch.
final class LongPollTransport: ClientTransport {
    let kind = ChatTransportKind.longPoll
    let hello: JSONObject
    let inbound: AsyncStream<InboundEvent>
    private let continuation: AsyncStream<InboundEvent>.Continuation
    private let api: HTTPAPI
    private let token: String
    private let session: String
    private let configuration: ChatClientConfiguration
    /// The client's `cur_max_seq`, sent as each poll's `ack` (a node that takes the session over
    /// after its node died delivers from there).
    private let ack: @Sendable () -> Int64
    /// Guards the queued frames, whether a flush runs, the end, and the poll task.
    private let state = Mutex<State>(State())

    private struct State {
        var outbox: [JSONValue] = []
        var flushing = false
        var ended = false
        var poller: Task<Void, Never>?
    }

    private var query: String { "?session=\(session)" }

    private init(
        api: HTTPAPI, token: String, session: String, hello: JSONObject, configuration: ChatClientConfiguration, ack: @escaping @Sendable () -> Int64
    ) {
        self.ack = ack
        let (stream, continuation) = AsyncStream.makeStream(of: InboundEvent.self, bufferingPolicy: .bufferingOldest(4096))
        inbound = stream
        self.continuation = continuation
        self.api = api
        self.token = token
        self.session = session
        self.hello = hello
        self.configuration = configuration
    }

    static func open(
        api: HTTPAPI, token: String, configuration: ChatClientConfiguration, ack: @escaping @Sendable () -> Int64 = { 0 }
    ) async throws(ConnectFailure) -> LongPollTransport {
        var body: JSONObject = [:]
        if let device = configuration.device { body["device"] = .string(device) }
        let opened: JSONValue
        do {
            opened = try await api.json(.POST, "/v1/lp/open", token: token, body: .object(body), timeoutMs: configuration.requestTimeoutMs)
        } catch {
            throw ConnectFailure(info: CloseInfo.http(error, neverOpened: true))
        }
        guard let session = opened["session"]?.stringValue, let hello = opened["hello"]?.objectValue else {
            throw ConnectFailure(info: CloseInfo(reason: "malformed long-poll open answer", neverOpened: true))
        }
        let transport = LongPollTransport(api: api, token: token, session: session, hello: hello, configuration: configuration, ack: ack)
        transport.startPolling()
        return transport
    }

    private func startPolling() {
        let task = Task { [self] in
            var unavailable = 0
            while !Task.isCancelled {
                let path = "/v1/lp/poll\(query)&timeout_ms=\(configuration.pollTimeoutMs)&ack=\(max(0, ack()))"
                do {
                    let reply = try await api.json(.GET, path, token: token, timeoutMs: configuration.pollTimeoutMs + 10000)
                    unavailable = 0
                    deliver(reply)
                } catch let error as ChatError where error.status == 503 && unavailable < 10 {
                    // In a cluster the node holding the session died; another takes it over once
                    // its lease ran out: keep the session a few tries, then start over.
                    unavailable += 1
                    try? await Task.sleep(for: .milliseconds(min(error.retryAfterMs ?? 1000, 5000)))
                } catch let error as ChatError {
                    end(CloseInfo.http(error))
                    return
                } catch {
                    end(CloseInfo(reason: "\(error)"))
                    return
                }
            }
        }
        let ended = state.withLock { state -> Bool in
            state.poller = task
            return state.ended
        }
        if ended { task.cancel() }
    }

    private func deliver(_ reply: JSONValue) {
        for frame in reply["frames"]?.arrayValue ?? [] {
            guard let object = frame.objectValue else { continue }
            if case .dropped = continuation.yield(.frame(object)) {
                end(CloseInfo(reason: "client buffer full", immediate: true))
                return
            }
        }
    }

    private func end(_ info: CloseInfo) {
        let poller = state.withLock { state -> Task<Void, Never>?? in
            guard !state.ended else { return nil }
            state.ended = true
            return .some(state.poller)
        }
        guard let poller else { return }
        poller?.cancel()
        continuation.yield(.closed(info))
        continuation.finish()
    }

    func send(_ frame: JSONValue) -> Bool {
        let start = state.withLock { state -> Bool? in
            guard !state.ended else { return nil }
            guard state.outbox.count < 10_000 else { return nil }
            state.outbox.append(frame)
            defer { state.flushing = true }
            return !state.flushing
        }
        guard let start else { return false }
        if start { Task { await flush() } }
        return true
    }

    private func flush() async {
        while true {
            let batch = state.withLock { state -> [JSONValue] in
                let batch = Array(state.outbox.prefix(100))
                state.outbox.removeFirst(batch.count)
                if batch.isEmpty || state.ended { state.flushing = false }
                return state.ended ? [] : batch
            }
            if batch.isEmpty { return }
            do {
                let reply = try await api.json(.POST, "/v1/lp/send\(query)", token: token, body: .array(batch), timeoutMs: configuration.requestTimeoutMs)
                deliver(reply)
            } catch {
                end(CloseInfo.http(error))
                state.withLock { $0.flushing = false }
                return
            }
        }
    }

    func close() {
        end(CloseInfo(reason: "closed by the client", immediate: true))
        let api = api, token = token, path = "/v1/lp/close\(query)", timeout = configuration.requestTimeoutMs
        Task { _ = try? await api.request(.POST, path, token: token, timeoutMs: timeout) }
    }
}
