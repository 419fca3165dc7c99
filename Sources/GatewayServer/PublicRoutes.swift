import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore

/// The public HTTP surface: long-poll transport, REST API, and the answers to refused
/// WebSocket handshakes.
struct PublicRoutes: Sendable {
    let gateway: Gateway
    let longPoll: LongPollRegistry
    let handshake: WebSocketHandshake
    let publicURL: @Sendable () -> (ws: String, http: String)

    func register(on router: Router<GatewayRequestContext>) {
        router.get("/v1/ws") { request, context in await self.refusedHandshake(request, context) }
        router.get("/v1/echo") { request, context in await self.refusedHandshake(request, context) }

        router.post("/v1/lp/open") { request, context in try await self.lpOpen(request, context) }
        router.get("/v1/lp/poll") { request, context in try await self.lpPoll(request, context) }
        router.post("/v1/lp/send") { request, context in try await self.lpSend(request, context) }
        router.post("/v1/lp/close") { request, context in try await self.lpClose(request, context) }

        router.get("/v1/sync") { request, context in try await self.sync(request, context) }
        router.get("/v1/conversations/:address/messages") { request, context in try await self.history(request, context) }
        router.post("/v1/messages") { request, context in try await self.postMessage(request, context) }
        router.get("/v1/presence") { request, context in try await self.presence(request, context) }
        router.get("/v1/discover") { _, _ in await self.discover() }

        router.post("/v1/groups") { request, context in try await self.createGroup(request, context) }
        router.get("/v1/groups") { request, context in try await self.listGroups(request, context) }
        router.get("/v1/groups/:id") { request, context in try await self.getGroup(request, context) }
        router.post("/v1/groups/:id/members") { request, context in try await self.updateMembers(request, context) }
        MediaRoutes(gateway: gateway).register(on: router)
    }

    // MARK: Helpers

    private func identity(_ request: Request) async throws -> Identity {
        guard let token = request.bearerToken else { throw GatewayError.unauthorized("missing Authorization: Bearer token") }
        return try await gateway.authenticate(token: token)
    }

    private func principal(_ identity: Identity, _ context: GatewayRequestContext) -> Principal {
        Principal(user: identity.user, device: "http", session: "http", transport: .http, remoteAddress: context.remoteAddress)
    }

    private func body(_ request: Request, limit: Int) async throws -> ByteBuffer {
        var request = request
        do {
            return try await request.collectBody(upTo: limit)
        } catch {
            throw GatewayError(.tooLarge, "request body larger than \(limit) bytes")
        }
    }

    private func jsonBody(_ request: Request, limit: Int) async throws -> JSONValue {
        let buffer = try await body(request, limit: limit)
        do {
            return try buffer.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
        } catch {
            throw GatewayError.badFrame(error.description)
        }
    }

    private func intQuery(_ request: Request, _ name: String) throws -> Int64? {
        guard let text = request.query(name) else { return nil }
        guard let value = Int64(text) else { throw GatewayError.badFrame("'\(name)' must be an integer") }
        return value
    }

    // MARK: WebSocket refusals

    private func refusedHandshake(_ request: Request, _ context: GatewayRequestContext) async -> Response {
        let decision = await handshake.evaluate(
            method: request.method.rawValue, isHTTP11: true, path: request.uri.path, query: request.uri.query,
            remoteAddress: context.remoteAddress,
            header: { name in HTTPField.Name(name).map { request.headers[values: $0] } ?? [] })
        switch decision {
        case .refuse(let status, let error, let headers):
            return HTTPReply.error(error, status: status, headers: headers)
        case .accept:
            // A handshake the upgrader would take but did not see (HTTP/1.0, or a second request
            // on a kept-alive connection): ask for a fresh one.
            return HTTPReply.error(.badFrame("malformed WebSocket handshake"), status: 400)
        }
    }

    // MARK: Long-poll

    private func lpOpen(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        var device: String?
        let raw = try await body(request, limit: 4096)
        if raw.readableBytes > 0 {
            let value: JSONValue
            do {
                value = try raw.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
            } catch {
                throw GatewayError.badFrame(error.description)
            }
            guard case .object(let object) = value else { throw GatewayError.badFrame("body must be a JSON object") }
            if let d = object["device"], !d.isNull {
                guard let id = d.stringValue, Address.isValidID(id) else {
                    throw GatewayError.badFrame("'device' must be 1 to 64 characters of [A-Za-z0-9_.@-]")
                }
                device = id
            }
        }
        let (connection, session) = try longPoll.open(identity: identity, device: device, remoteAddress: context.remoteAddress)
        var hello: ByteBuffer
        do {
            hello = try await gateway.hello(for: session)
            try await longPoll.recordOpened(connection, session, inboxSeq: ServerFrame.helloInboxSeq(hello) ?? 0)
        } catch {
            longPoll.remove(connection)
            throw error
        }
        var out = ByteBuffer()
        out.writeStaticString("{\"session\":")
        out.writeBytes(JSONValue.string(session.id).jsonBytes)
        out.writeStaticString(",\"hello\":")
        out.writeBuffer(&hello)
        out.writeStaticString("}")
        gateway.stats.framesOut.wrappingIncrement(ordering: .relaxed)
        return HTTPReply.json(out, noStore: true)
    }

    private func lpSession(_ request: Request) async throws -> LongPollSession {
        let identity = try await identity(request)
        guard let id = request.query("session") else { throw GatewayError.badFrame("missing 'session'") }
        guard let connection = longPoll.find(id, user: identity.user) else { throw GatewayError.notFound("no such session") }
        return connection
    }

    private func lpPoll(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        if let relayed = try await relayLongPoll(request, "poll", remoteAddress: context.remoteAddress) { return relayed }
        let connection = try await lpSession(request)
        let timeout = try intQuery(request, "timeout_ms") ?? 25000
        guard (0...60000).contains(timeout) else { throw GatewayError.badFrame("'timeout_ms' must be 0...60000 (was \(timeout))") }
        let ack = try intQuery(request, "ack")
        if let ack, ack < 0 { throw GatewayError.badFrame("'ack' must be a seq >= 0 (was \(ack))") }
        connection.session.withLock { $0 }?.lastActiveAt.store(gateway.clock.nowMillis(), ordering: .relaxed)
        let frames = await connection.poll(timeoutMs: Int(timeout), now: gateway.clock.nowMillis(), eventLoop: context.eventLoop, ack: ack)
        gateway.stats.framesOut.wrappingIncrement(by: frames.count, ordering: .relaxed)
        return HTTPReply.frames(frames)
    }

    private func lpSend(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        if let relayed = try await relayLongPoll(request, "send", remoteAddress: context.remoteAddress) { return relayed }
        let connection = try await lpSession(request)
        guard let session = connection.session.withLock({ $0 }) else { throw GatewayError.notFound("no such session") }
        connection.touch(now: gateway.clock.nowMillis())
        session.lastActiveAt.store(gateway.clock.nowMillis(), ordering: .relaxed)
        let value = try await jsonBody(request, limit: gateway.limits.maxFrameBytes * 16)
        let items: [JSONValue]
        if case .array(let array) = value {
            guard array.count <= 100 else { throw GatewayError.badFrame("at most 100 frames per request") }
            items = array
        } else {
            items = [value]
        }
        var replies: [ByteBuffer] = []
        for item in items {
            gateway.stats.framesIn.wrappingIncrement(ordering: .relaxed)
            if item.jsonBytes.count > gateway.limits.maxFrameBytes {
                let ref = item["ref"]?.stringValue.flatMap { $0.utf8.count <= 64 ? $0 : nil }
                replies.append(ServerFrame.error(GatewayError(.tooLarge, "frame larger than \(gateway.limits.maxFrameBytes) bytes"), ref: ref))
                continue
            }
            do throws(FrameError) {
                let frame = try ClientFrame.parse(item)
                await gateway.handle(frame, principal: session.principal) { replies.append($0) }
            } catch {
                replies.append(ServerFrame.error(error.error, ref: error.ref))
            }
        }
        gateway.stats.framesOut.wrappingIncrement(by: replies.count, ordering: .relaxed)
        return HTTPReply.frames(replies)
    }

    private func lpClose(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        if let relayed = try await relayLongPoll(request, "close", remoteAddress: context.remoteAddress) { return relayed }
        let connection = try await lpSession(request)
        longPoll.remove(connection)
        return Response(status: .noContent)
    }

    // MARK: REST

    private func sync(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        let since = try intQuery(request, "since") ?? 0
        guard since >= 0 else { throw GatewayError.badFrame("'since' must be a seq >= 0 (was \(since))") }
        let limit = try intQuery(request, "limit") ?? 100
        guard (1...1000).contains(limit) else { throw GatewayError.badFrame("'limit' must be 1...1000 (was \(limit))") }
        let buffer = try await gateway.sync(user: identity.user, since: since, limit: Int(limit), ref: nil)
        return HTTPReply.json(buffer, noStore: true)
    }

    private func history(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        let raw = context.parameters.get("address") ?? ""
        guard let address = Address(path: raw.removingPercentEncoding ?? raw) else {
            throw GatewayError.badFrame("address must be user:ID or group:ID")
        }
        var before: UInt64?
        if let text = request.query("before") {
            guard let id = UInt64(text) else { throw GatewayError.badFrame("'before' must be a message id") }
            before = id
        }
        let limit = try intQuery(request, "limit") ?? 50
        guard (1...500).contains(limit) else { throw GatewayError.badFrame("'limit' must be 1...500 (was \(limit))") }
        let buffer = try await gateway.history(user: identity.user, with: address, before: before, limit: Int(limit), ref: nil)
        return HTTPReply.json(buffer, noStore: true)
    }

    private func postMessage(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        let value = try await jsonBody(request, limit: gateway.limits.maxFrameBytes)
        gateway.stats.framesIn.wrappingIncrement(ordering: .relaxed)
        let frame: ClientFrame
        do throws(FrameError) {
            frame = try ClientFrame.parse(value)
        } catch {
            throw error.error
        }
        guard frame.kind == .send else { throw GatewayError.badFrame("the body must be a 'send' frame") }
        var reply: ByteBuffer?
        let error = await gateway.handle(frame, principal: principal(identity, context)) { reply = $0 }
        if let error { return HTTPReply.error(error) }
        return HTTPReply.json(reply ?? ByteBuffer(), noStore: true)
    }

    private func presence(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        let users = (request.query("users") ?? "").split(separator: ",").map(String.init)
        guard users.count <= 1000, users.allSatisfy(Address.isValidID) else {
            throw GatewayError.badFrame("'users' must be a comma-separated list of at most 1000 user ids")
        }
        var buffer = try await gateway.presence.query(viewer: identity.user, users: users, ref: nil)
        // The REST shape is {"users": [...]}: drop the frame's "type".
        let text = buffer.readString(length: buffer.readableBytes) ?? "{}"
        guard case .object(var object) = try JSONParser.parse(text) else { return HTTPReply.json(.object(JSONObject())) }
        object["type"] = nil
        return HTTPReply.json(.object(object), noStore: true)
    }

    private func discover() async -> Response {
        // In a cluster: the least-loaded live node that is not draining (this one, if it is).
        if let node = try? await gateway.cluster.discover() {
            return HTTPReply.json([
                "node": .string(node.node), "ws_url": .string(node.wsURL), "longpoll_url": .string(node.longpollURL),
                "load": .number(String(format: "%.4f", node.load)),
            ])
        }
        let urls = publicURL()
        let load = Double(gateway.hub.connectionCount) / Double(max(1, gateway.limits.maxConnections))
        return HTTPReply.json([
            "node": .string(gateway.node.id), "ws_url": .string(urls.ws), "longpoll_url": .string(urls.http),
            "load": .number(String(format: "%.4f", load)),
        ])
    }

    // MARK: Groups

    private func createGroup(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        guard case .object(let object) = try await jsonBody(request, limit: 256 * 1024) else {
            throw GatewayError.badFrame("body must be a JSON object")
        }
        let id: String
        if let value = object["id"], !value.isNull {
            guard let text = value.stringValue, Address.isValidID(text) else {
                throw GatewayError.badFrame("'id' must be 1 to 64 characters of [A-Za-z0-9_.@-]")
            }
            id = text
        } else {
            id = "g_" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        }
        guard let name = object["name"]?.stringValue, !name.isEmpty, name.utf8.count <= 256 else {
            throw GatewayError.badFrame("'name' must be a string of 1 to 256 bytes")
        }
        var members = [identity.user]
        if let given = object["members"], !given.isNull, given.arrayValue == nil {
            throw GatewayError.badFrame("'members' must be an array of user ids")
        }
        for value in object["members"]?.arrayValue ?? [] {
            guard let user = value.stringValue, Address.isValidID(user) else { throw GatewayError.badFrame("'members' must be user ids") }
            if !members.contains(user) { members.append(user) }
        }
        guard members.count <= gateway.limits.maxGroupMembers else {
            throw GatewayError(.tooLarge, "a group has at most \(gateway.limits.maxGroupMembers) members")
        }
        let group = GroupInfo(id: id, name: name, owner: identity.user, members: members, createdAt: gateway.clock.nowMillis())
        try await gateway.stores.groups.createGroup(group)
        return HTTPReply.json(group.json, status: .created)
    }

    private func listGroups(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        let groups = try await gateway.stores.groups.groups(of: identity.user)
        return HTTPReply.json(["groups": .array(groups.map(\.json))], noStore: true)
    }

    private func memberGroup(_ request: Request, _ context: GatewayRequestContext) async throws -> (Identity, GroupInfo) {
        let identity = try await identity(request)
        let id = context.parameters.get("id") ?? ""
        guard let group = try await gateway.stores.groups.group(id), group.members.contains(identity.user) else {
            throw GatewayError.notFound("no such group")
        }
        return (identity, group)
    }

    private func getGroup(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let (_, group) = try await memberGroup(request, context)
        return HTTPReply.json(group.json, noStore: true)
    }

    private func updateMembers(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let (identity, group) = try await memberGroup(request, context)
        guard group.owner == identity.user else { throw GatewayError.forbidden("only the owner changes members") }
        guard case .object(let object) = try await jsonBody(request, limit: 256 * 1024) else {
            throw GatewayError.badFrame("body must be a JSON object")
        }
        func users(_ key: String) throws -> [String] {
            guard let value = object[key], !value.isNull else { return [] }
            guard let array = value.arrayValue else { throw GatewayError.badFrame("'\(key)' must be an array of user ids") }
            return try array.map { item in
                guard let user = item.stringValue, Address.isValidID(user) else { throw GatewayError.badFrame("'\(key)' must be user ids") }
                return user
            }
        }
        let add = try users("add")
        let remove = try users("remove")
        guard add.count <= gateway.limits.maxGroupMembers, remove.count <= gateway.limits.maxGroupMembers else {
            throw GatewayError(.tooLarge, "at most \(gateway.limits.maxGroupMembers) users to add or remove at once")
        }
        // The cap holds in the store's transaction, whatever else changes the group meanwhile.
        let updated = try await gateway.stores.groups.updateMembers(
            of: group.id, add: add, remove: remove, maxMembers: gateway.limits.maxGroupMembers)
        return HTTPReply.json(updated.json)
    }
}
