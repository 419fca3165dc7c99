import AsyncHTTPClient
import Crypto
import GatewayCore
import NIOCore
import ServiceLifecycle

/// A stage written in any language: each frame is POSTed to a service that answers continue
/// (possibly with a new body and attributes) or reject (PROTOCOL.md section 8).
///
/// Any other status, a malformed answer, a failed connection or no answer within `timeout_ms`
/// is a failure: the stage throws `unavailable`, and the runner applies the entry's `on_error`
/// (`reject` answers the sender that error, `continue` lets the frame through unchanged) and
/// its `timeout_ms` deadline, as for every stage. After `breaker.failures` failures in a row the
/// circuit breaker opens: for `breaker.open_ms` the service is not called and the stage fails
/// at once; then one trial call decides whether it closes again.
///
/// Connections are pooled by one `HTTPClient` per stage, shut down by the service in
/// `services` when the gateway stops.
public struct WebhookStage: Stage {
    public let name: String
    public let settings: WebhookSettings
    /// The bound of one call: the entry's `timeout_ms`, else the deprecated `settings.timeout_ms`.
    public let timeoutMs: Int
    let key: SymmetricKey?
    let client: WebhookClient
    let breaker: CircuitBreaker

    public init(name: String, settings: WebhookSettings, timeoutMs: Int? = nil) {
        self.name = name
        self.settings = settings
        self.timeoutMs = timeoutMs ?? settings.timeoutMs
        key = settings.secret.map { SymmetricKey(data: Array($0.value.utf8)) }
        client = WebhookClient(timeoutMs: self.timeoutMs, maxConnections: settings.maxConnections)
        breaker = CircuitBreaker(failures: settings.breaker.failures, openMs: settings.breaker.openMs)
    }

    public var services: [any Service] { [WebhookClient.Lifecycle(client: client)] }

    /// This kind's defaults for the entry's `timeout_ms` and `on_error`: 1000 ms and `reject`,
    /// or the deprecated settings keys when given.
    public var policy: StagePolicy { StagePolicy(timeoutMs: settings.timeoutMs, onError: settings.onError) }

    /// Why a call did not produce an answer; each is a failure of the stage (`on_error`).
    enum Failure: Error, CustomStringConvertible {
        case breakerOpen(retryAfterMs: Int)
        case requestTooLarge(Int)
        case timeout
        case status(Int)
        case malformed(String)
        case transport(any Error)

        var description: String {
            switch self {
            case .breakerOpen: "circuit breaker open"
            case .requestTooLarge(let size): "request of \(size) bytes is over max_request_bytes"
            case .timeout: "no answer within timeout_ms"
            case .status(let status): "answered HTTP \(status)"
            case .malformed(let reason): "malformed answer: \(reason)"
            case .transport(let error): "call failed: \(error)"
            }
        }
    }

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        let answer: WebhookAnswer
        do {
            answer = try await call(envelope, context: context)
        } catch {
            context.logger.debug("webhook failed", metadata: ["gateway.webhook.failure": "\(error)", "gateway.session": "\(envelope.sender.session)"])
            let retry: Int
            if case .breakerOpen(let ms) = error { retry = ms } else { retry = 1000 }
            throw GatewayError.unavailable("the \(name) stage is unavailable", retryAfterMs: retry)
        }
        switch answer {
        case .continue(let body, let attributes):
            if let body, envelope.kind == .send { envelope.body = body }
            for (key, value) in attributes?.members ?? [] {
                // JSONValue is ExpressibleByNilLiteral: remove explicitly, never store `.null`.
                if value.isNull { envelope.attributes.removeValue(forKey: key) } else { envelope.attributes[key] = value }
            }
            return .continue
        case .reject(let error):
            return .reject(error)
        }
    }

    /// One call, through the breaker; throws `Failure` for anything but a well-formed answer.
    func call(_ envelope: Envelope, context: StageContext) async throws(Failure) -> WebhookAnswer {
        let body = WebhookRequest.body(for: envelope, stage: name)
        guard body.count <= settings.maxRequestBytes else { throw .requestTooLarge(body.count) }
        let permit = breaker.permit(now: context.clock.nowMillis())
        if case .skip(let retry) = permit { throw .breakerOpen(retryAfterMs: retry) }
        do {
            let answer = try await post(body)
            breaker.record(success: true, permit: permit, now: context.clock.nowMillis())
            return answer
        } catch {
            breaker.record(success: false, permit: permit, now: context.clock.nowMillis())
            throw error
        }
    }

    /// POSTs `body` and reads the answer, all within `timeout_ms` (the runner's deadline bounds
    /// the same call; this bound keeps `call` finite on its own).
    func post(_ body: [UInt8]) async throws(Failure) -> WebhookAnswer {
        var request = HTTPClientRequest(url: settings.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "chatgate-webhook/1")
        if let key { request.headers.add(name: "X-ChatGateway-Signature", value: WebhookRequest.signature(of: body, key: key)) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let prepared = request
        let timeoutMs = self.timeoutMs
        let maxResponseBytes = settings.maxResponseBytes
        let result: Result<(status: Int, body: ByteBuffer), any Error>?
        do {
            result = try await client.withClient { http in
                // The deadline of `execute` ends with the response head; racing a timer bounds
                // the whole call, body included. Cancelling the loser cancels the request.
                await withTaskGroup(of: Result<(status: Int, body: ByteBuffer), any Error>?.self) { group in
                    group.addTask {
                        do {
                            let response = try await http.execute(prepared, timeout: .milliseconds(Int64(timeoutMs)))
                            let status = Int(response.status.code)
                            guard status == 200 else { return .success((status, ByteBuffer())) }
                            return .success((status, try await response.body.collect(upTo: maxResponseBytes)))
                        } catch {
                            return .failure(error)
                        }
                    }
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(timeoutMs))
                        return nil
                    }
                    let first = await group.next() ?? nil
                    group.cancelAll()
                    return first
                }
            }
        } catch {
            throw .transport(error)
        }
        switch result {
        case nil:
            throw .timeout
        case .failure(let error as HTTPClientError) where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout:
            throw .timeout
        case .failure(let error as NIOTooManyBytesError):
            throw .malformed("longer than max_response_bytes (\(error.maxBytes.map(String.init) ?? "?"))")
        case .failure(let error):
            throw .transport(error)
        case .success(let answer) where answer.status != 200:
            throw .status(answer.status)
        case .success(let answer):
            do {
                return try WebhookAnswer.parse(Array(answer.body.readableBytesView), stage: name)
            } catch {
                throw .malformed(error.description)
            }
        }
    }

    public static let factory = StageFactory(kind: "webhook") { context in
        let settings = try context.settings.decode(WebhookSettings.self)
        if let kinds = settings.on, !kinds.isSubset(of: context.on) {
            let missing = kinds.subtracting(context.on).map(\.rawValue).sorted().joined(separator: ", ")
            let all = kinds.union(context.on).map(\.rawValue).sorted().joined(separator: ", ")
            throw WebhookSettingsError(
                description: "settings.on lists \(missing), but the pipeline entry hands this stage only the frame types of its own 'on:'; add 'on: [\(all)]' to the entry")
        }
        if !settings.deprecatedKeys.isEmpty {
            let keys = settings.deprecatedKeys.map { "settings.\($0)" }.joined(separator: ", ")
            context.logger.warning(
                "deprecated webhook settings: move \(keys) to the pipeline entry (beside 'on:'); they apply until then, and the entry's own keys win",
                metadata: ["gateway.deprecated": "\(keys)"])
        }
        let stage = WebhookStage(name: context.name, settings: settings, timeoutMs: context.timeoutMs)
        return BuiltStage(stage: stage, rendering: settings, policy: stage.policy, onlyOn: settings.on)
    }
}

/// A webhook setting that contradicts its pipeline entry.
struct WebhookSettingsError: Error, CustomStringConvertible {
    let description: String
}
