import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /v1/devices`, `GET /v1/devices`, `DELETE /v1/devices/{id}` (PROTOCOL.md sections 5
/// and 9): the caller's push targets, kept by the store's `DeviceStore`.
///
/// Limits and the accepted platforms come from the pipeline's `push` stage (its
/// `PushRegistrationPolicy`); without one, every platform is accepted with the defaults, so
/// targets registered before push is switched on are kept.
struct DeviceRoutes: Sendable {
    let gateway: Gateway

    static let defaultMaxDevicesPerUser = 10

    func register(on router: Router<GatewayRequestContext>) {
        router.post("/v1/devices") { request, context in try await self.create(request, context) }
        router.get("/v1/devices") { request, context in try await self.list(request, context) }
        router.delete("/v1/devices/:id") { request, context in try await self.remove(request, context) }
    }

    private func identity(_ request: Request) async throws -> Identity {
        guard let token = request.bearerToken else { throw GatewayError.unauthorized("missing Authorization: Bearer token") }
        return try await gateway.authenticate(token: token)
    }

    private var devices: any DeviceStore {
        get throws {
            guard let devices = gateway.stores.devices else {
                throw GatewayError(.unavailable, "this store keeps no push targets")
            }
            return devices
        }
    }

    private var policy: (any PushRegistrationPolicy)? {
        gateway.pipeline.entries.lazy.compactMap { $0.stage as? any PushRegistrationPolicy }.first
    }

    private func create(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: 16 * 1024)
        } catch {
            throw GatewayError(.tooLarge, "request body larger than 16384 bytes")
        }
        let value: JSONValue
        do {
            value = try buffer.withUnsafeReadableBytes { bytes throws(JSONParser.Error) in try JSONParser.parse(bytes) }
        } catch {
            throw GatewayError.badFrame(error.description)
        }
        let policy = self.policy
        let registration = try PushRegistration.parse(value, allowHTTP: policy?.allowHTTP ?? false)
        if let policy, !policy.platforms.contains(registration.platform) {
            let enabled = policy.platforms.map(\.rawValue).sorted().joined(separator: ", ")
            throw GatewayError.badFrame("platform '\(registration.platform.rawValue)' has no provider configured here (enabled: \(enabled.isEmpty ? "none" : enabled))")
        }
        try policy?.check(registration)
        let target = PushTarget(
            id: "pt_" + String(UInt64.random(in: 0...UInt64.max), radix: 36), user: identity.user, device: registration.device ?? "default",
            platform: registration.platform, address: registration.address, fields: registration.fields, createdAt: gateway.clock.nowMillis())
        let stored = try await devices.registerTarget(target, maxPerUser: policy?.maxDevicesPerUser ?? Self.defaultMaxDevicesPerUser)
        return HTTPReply.json(stored.target.json, status: stored.created ? .created : .ok, noStore: true)
    }

    private func list(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        let targets = try await devices.targets(of: identity.user)
        return HTTPReply.json(["devices": .array(targets.map(\.json))], noStore: true)
    }

    private func remove(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let identity = try await identity(request)
        let id = context.parameters.get("id") ?? ""
        guard try await devices.removeTarget(id: id, user: identity.user) else { throw GatewayError.notFound("no such device") }
        return Response(status: .noContent)
    }
}
