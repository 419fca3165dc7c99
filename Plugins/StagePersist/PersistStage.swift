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

/// Marks a message for the store: after the pipeline, the gateway commits it (with the inbox
/// entries `fanout` resolved) in one transaction shared with concurrent sends, and acks only
/// then. The write itself is the core's group commit, so this stage costs no I/O of its own.
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

    /// The body's JSON size; strings are counted without encoding (the common case), and only
    /// bodies that could be near the limit are encoded.
    static func encodedSize(_ body: JSONValue, limit: Int) -> Int {
        switch body {
        case .string(let text): return text.utf8.count + 2
        case .null, .bool, .number: return 8
        default: return body.jsonBytes.count
        }
    }

    public static let factory = StageFactory(kind: "persist", settings: PersistSettings.self) { settings, _ in
        PersistStage(settings: settings)
    }
}
