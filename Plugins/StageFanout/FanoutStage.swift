import GatewayCore

/// Settings of the `fanout` stage.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `fanout_on_read_above` | int | 1000 | >= 2: groups with more members are served fanout-on-read (docs/GROUPS.md); `limits.max_group_members` must allow such groups |
public struct FanoutSettings: Codable, Sendable {
    public var fanoutOnReadAbove: Int

    enum CodingKeys: String, CodingKey { case fanoutOnReadAbove = "fanout_on_read_above" }

    public init(fanoutOnReadAbove: Int = 1000) { self.fanoutOnReadAbove = fanoutOnReadAbove }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        fanoutOnReadAbove = try c.decodeIfPresent(Int.self, forKey: .fanoutOnReadAbove) ?? 1000
        if fanoutOnReadAbove < 2 {
            throw DecodingError.dataCorruptedError(forKey: .fanoutOnReadAbove, in: c, debugDescription: "must be at least 2 (was \(fanoutOnReadAbove))")
        }
    }
}

/// Resolves who gets a message (role `.recipients`): the 1:1 peer and the sender, or every
/// member of the group. The core commits and delivers to exactly these users; it resolves none
/// itself.
///
/// Write fanout (the default): the gateway appends the message to each of their inboxes
/// atomically with the message itself. A group with more than `fanout_on_read_above` members is
/// served fanout-on-read instead: only the sender's inbox gets an entry at send time
/// (`recipients`), the other members are `liveOnlyRecipients` (live frames without a `seq`) and
/// their entries are made when they next read their inbox. docs/GROUPS.md has the trade-off.
public struct FanoutStage: Stage {
    public let settings: FanoutSettings

    public init(settings: FanoutSettings) { self.settings = settings }

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        guard let to = envelope.to else { return .continue }
        let sender = envelope.sender.user
        let recipients = try await Recipients.resolve(to: to, sender: sender, groups: context.stores.groups)
        if case .group = to, recipients.count > settings.fanoutOnReadAbove {
            envelope.recipients = [sender]
            envelope.liveOnlyRecipients = recipients.filter { $0 != sender }
        } else {
            envelope.recipients = recipients
            envelope.liveOnlyRecipients = nil
        }
        return .continue
    }

    public static let factory = StageFactory(kind: "fanout", settings: FanoutSettings.self, provides: [.recipients]) { settings, _ in
        FanoutStage(settings: settings)
    }
}
