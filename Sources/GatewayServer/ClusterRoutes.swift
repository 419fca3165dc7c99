import AsyncHTTPClient
import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix

/// Long-poll without sticky sessions: a poll, send or close for a session another live node
/// holds is relayed to that node (its registered `longpoll_url`), and its answer returned as
/// is. The session stays where it was opened, with all its single-node guarantees; only the
/// HTTP request takes one more hop. A relayed request carries `X-ChatGateway-Relayed` and is
/// never relayed again (the owner answers `404` if it no longer holds the session). A session
/// whose node is no longer live (its lease ran out or was released) is re-homed on the node
/// the request reached (`LongPollRehoming.swift`).
extension PublicRoutes {
    static let relayedHeader = "X-ChatGateway-Relayed"

    /// The process's client for relays: a node that does not accept connections (it died) is
    /// answered at once, not retried until the request's deadline (AsyncHTTPClient's default).
    /// Never shut down: it lives as long as the process.
    static let relayClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(2)
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }()

    /// The owner's answer when another node holds the request's session; nil when this node
    /// holds it (or has just re-homed it), or nobody does (the request then gets this node's own
    /// answer, `404`).
    func relayLongPoll(_ request: Request, _ operation: String, remoteAddress: String?) async throws -> Response? {
        guard let session = request.query("session"), !session.isEmpty, session.utf8.count <= 256, !longPoll.holds(session) else { return nil }
        guard let name = HTTPField.Name(Self.relayedHeader), request.headers[name] == nil else { return nil }
        var owner: String?
        do {
            if let directory = longPoll.directory {
                // At most twice: a claim lost to another node makes that node the owner.
                for _ in 0..<2 {
                    switch try await directory.locate(session: session) {
                    case .remote(let url):
                        owner = url
                    case .unknown:
                        return nil
                    case .orphaned(let record):
                        guard let token = request.bearerToken else { return nil }
                        let identity = try await gateway.authenticate(token: token)
                        // Another user's token: this node's own answer, `404`.
                        guard identity.user == record.user else { return nil }
                        let ack = request.query("ack").flatMap(Int64.init).flatMap { $0 >= 0 ? $0 : nil }
                        if try await longPoll.rehome(record, identity: identity, ack: ack, remoteAddress: remoteAddress) { return nil }
                        continue
                    }
                    break
                }
            } else {
                owner = try await gateway.cluster.longPollOwner(session: session)
            }
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError.unavailable("the cluster's node table cannot be read; retry shortly", retryAfterMs: 1000)
        }
        guard let owner else { return nil }
        let query = request.uri.query.map { "?" + $0 } ?? ""
        var relayed = HTTPClientRequest(url: "\(owner)/\(operation)\(query)")
        relayed.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where field.name == .authorization || field.name == .contentType {
            relayed.headers.add(name: field.name.canonicalName, value: field.value)
        }
        relayed.headers.add(name: Self.relayedHeader, value: "1")
        if request.method == .post {
            var body = request
            let bytes: ByteBuffer
            do {
                bytes = try await body.collectBody(upTo: gateway.limits.maxFrameBytes * 16)
            } catch {
                throw GatewayError(.tooLarge, "request body larger than \(gateway.limits.maxFrameBytes * 16) bytes")
            }
            relayed.body = .bytes(bytes)
        }
        // A poll waits up to its timeout_ms (at most 60 s) at the owner.
        let waitMs = operation == "poll" ? Int64(request.query("timeout_ms").flatMap(Int.init) ?? 25_000) : 0
        let response: HTTPClientResponse
        do {
            response = try await Self.relayClient.execute(relayed, timeout: .milliseconds(min(waitMs, 60_000) + 15_000))
        } catch {
            throw GatewayError.unavailable("the node holding this long-poll session did not answer; retry shortly", retryAfterMs: 1000)
        }
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: longPoll.relayMaxBytes)
        } catch {
            throw GatewayError.unavailable("the node holding this long-poll session did not answer; retry shortly", retryAfterMs: 1000)
        }
        var headers = HTTPFields()
        for header in response.headers {
            let lower = header.name.lowercased()
            guard lower == "content-type" || lower == "cache-control" || lower == "retry-after", let name = HTTPField.Name(header.name) else {
                continue
            }
            headers[name] = header.value
        }
        return Response(status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers, body: .init(byteBuffer: body))
    }
}

/// `POST /admin/drain`: this node stops being offered by `/v1/discover` (marked draining in the
/// cluster), `/readyz` answers `503`, and its WebSocket sessions close with 1001 and its
/// long-poll sessions end, so clients reconnect through `/v1/discover` to another node and
/// `sync`. The node keeps running (stop it with SIGTERM when its connections are gone).
struct DrainRoute: Sendable {
    let application: GatewayApplication
    let token: Secret

    func register(on router: Router<GatewayRequestContext>) {
        router.group().add(middleware: AdminTokenMiddleware(token: token)).post("/admin/drain") { _, _ in
            let closed = await application.drain()
            return HTTPReply.json(["draining": true, "closed": .int(Int64(closed))])
        }
    }
}

extension GatewayApplication {
    /// Marks the node draining and closes its sessions with 1001; returns how many closed.
    @discardableResult
    public func drain() async -> Int {
        readiness.markDraining()
        await gateway.cluster.markDraining()
        let sessions = gateway.hub.allSessions()
        for session in sessions {
            session.connection.close(code: .goingAway, reason: "node draining; reconnect through /v1/discover")
        }
        return sessions.count
    }
}
