import GatewayCore

/// Settings of the `persist` stage.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `max_body_bytes` | int | 65536 | 1...16777216: larger bodies are refused with `too_large` |
public struct PersistSettings: Codable, Sendable {
    public var maxBodyBytes: Int

    enum CodingKeys: String, CodingKey { case maxBodyBytes = "max_body_bytes" }

    public init(maxBodyBytes: Int = 65536) { self.maxBodyBytes = maxBodyBytes }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxBodyBytes = try c.decodeIfPresent(Int.self, forKey: .maxBodyBytes) ?? 65536
        if !(1...16_777_216).contains(maxBodyBytes) {
            throw DecodingError.dataCorruptedError(forKey: .maxBodyBytes, in: c, debugDescription: "must be 1...16777216 (was \(maxBodyBytes))")
        }
    }
}

/// Decides that a message is stored before its ack (role `.durability`) and bounds its body.
///
/// The write is the core's, not this stage's: once the last stage has let the frame through,
/// the gateway's group commit writes the message with the inbox entries of the stage that
/// provides `.recipients` (`fanout`), in one transaction shared with concurrent sends, and
/// acks only then. Writing after the whole pipeline is what lets a later stage still refuse
/// the message with nothing stored. The stage needs a `.messageIDs` stage (`id`) before it and
/// a `.recipients` stage anywhere in the pipeline (docs/STAGES.md, "Roles and order").
public struct PersistStage: Stage {
    public let settings: PersistSettings

    public init(settings: PersistSettings) { self.settings = settings }

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        if let body = envelope.body, Self.encodedSize(body, limit: settings.maxBodyBytes) > settings.maxBodyBytes {
            return .reject(GatewayError(.tooLarge, "body is larger than \(settings.maxBodyBytes) bytes"))
        }
        envelope.persist = true
        return .continue
    }

    /// The body's JSON size, counted without serializing it (the gateway serializes the body
    /// once, for the store); past `limit` the count may stop early at some larger value.
    static func encodedSize(_ body: JSONValue, limit: Int) -> Int {
        body.jsonByteCount(stoppingAbove: limit)
    }

    public static let factory = StageFactory(
        kind: "persist", settings: PersistSettings.self, provides: [.durability], after: [.messageIDs], requires: [.recipients]
    ) { settings, _ in
        PersistStage(settings: settings)
    }
}
