/// The push services a target can be registered with (PROTOCOL.md section 9).
public enum PushPlatform: String, Sendable, Hashable, CaseIterable, Codable {
    case webhook
    case webpush
    case apns
    case fcm
}

/// One registered push target: where the `push` stage notifies one device of one user.
public struct PushTarget: Sendable, Hashable {
    /// The target's id (`POST /v1/devices` answers it; `DELETE /v1/devices/{id}` takes it).
    public var id: String
    public var user: String
    /// The device the target belongs to (informational: any device's confirmation counts).
    public var device: String
    public var platform: PushPlatform
    /// What makes two registrations the same target: the webhook `url`, the Web Push
    /// `endpoint`, or the APNs / FCM `token`.
    public var address: String
    /// The platform's fields as registered (`keys`, `topic`, `sandbox`...), a JSON object.
    public var fields: JSONObject
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64

    public init(id: String, user: String, device: String, platform: PushPlatform, address: String, fields: JSONObject, createdAt: Int64) {
        self.id = id
        self.user = user
        self.device = device
        self.platform = platform
        self.address = address
        self.fields = fields
        self.createdAt = createdAt
    }

    /// The `POST /v1/devices` answer and a `GET /v1/devices` item.
    public var json: JSONValue {
        var object: JSONObject = [
            "id": .string(id), "platform": .string(platform.rawValue), "device": .string(device), "created_at": .int(createdAt),
        ]
        for (key, value) in fields.members where object[key] == nil { object[key] = value }
        return .object(object)
    }
}

/// Push targets per user: what `/v1/devices` registers and the `push` stage notifies.
///
/// Implementations: `SQLiteStore` (table `push_targets`), `InMemoryStore`, and the PostgreSQL
/// backend. A target is identified by (user, platform, address): registering the same one
/// again returns the stored one (its device and fields updated), never a second row.
///
/// ```swift
/// let (target, created) = try await devices.registerTarget(candidate, maxPerUser: 10)
/// ```
public protocol DeviceStore: Sendable {
    /// Stores `target` (its `id` and `createdAt` are used only when it is new) or finds the
    /// same (user, platform, address) already stored, whose `device` and `fields` it updates.
    /// Throws `GatewayError(.conflict)` when the user already has `maxPerUser` other targets.
    /// Returns the stored target and whether it was created.
    func registerTarget(_ target: PushTarget, maxPerUser: Int) async throws -> (target: PushTarget, created: Bool)

    /// The user's targets, oldest first.
    func targets(of user: String) async throws -> [PushTarget]

    /// The targets of several users (the recipients of a group message), in one query where
    /// the backend can. Default: `targets(of:)` for each.
    func targets(of users: [String]) async throws -> [PushTarget]

    func target(id: String) async throws -> PushTarget?

    /// Removes a target; with `user`, only when it belongs to that user. Returns whether one was
    /// removed. The target's queued push jobs go with it.
    func removeTarget(id: String, user: String?) async throws -> Bool
}

extension DeviceStore {
    public func targets(of users: [String]) async throws -> [PushTarget] {
        var all: [PushTarget] = []
        for user in users { all += try await targets(of: user) }
        return all
    }
}
