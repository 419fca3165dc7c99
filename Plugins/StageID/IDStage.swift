import GatewayCore

/// Settings of the `id` stage.
///
/// | key | type | default | constraint |
/// |---|---|---|---|
/// | `worker_id` | int | `node.worker_id` | 0...1023, unique per node |
/// | `epoch_ms` | int | 1704067200000 (2024-01-01) | >= 0; ids count milliseconds from it for about 69 years |
public struct IDSettings: Codable, Sendable {
    public var workerID: Int?
    public var epochMillis: Int64

    public static let defaultEpoch: Int64 = 1_704_067_200_000

    enum CodingKeys: String, CodingKey {
        case workerID = "worker_id"
        case epochMillis = "epoch_ms"
    }

    public init(workerID: Int? = nil, epochMillis: Int64 = defaultEpoch) {
        self.workerID = workerID
        self.epochMillis = epochMillis
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        workerID = try c.decodeIfPresent(Int.self, forKey: .workerID)
        if let workerID, !(0...1023).contains(workerID) {
            throw DecodingError.dataCorruptedError(forKey: .workerID, in: c, debugDescription: "must be 0...1023 (was \(workerID))")
        }
        epochMillis = try c.decodeIfPresent(Int64.self, forKey: .epochMillis) ?? Self.defaultEpoch
        if epochMillis < 0 {
            throw DecodingError.dataCorruptedError(forKey: .epochMillis, in: c, debugDescription: "must be >= 0")
        }
    }
}

/// Stamps each message with a Snowflake `id` and its timestamp.
///
/// On the first message after start it reads the highest stored id so that ids keep increasing
/// across a restart, even with the clock set back.
public struct IDStage: Stage, MessageIDSource {
    public let generator: SnowflakeGenerator

    public init(settings: IDSettings, workerID: Int, clock: any GatewayClock) {
        generator = SnowflakeGenerator(workerID: settings.workerID ?? workerID, epochMillis: settings.epochMillis, clock: clock)
    }

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        if !generator.hasResumed {
            generator.resume(after: try await context.stores.messages.lastMessageID())
        }
        envelope.id = generator.next()
        envelope.timestamp = context.clock.nowMillis()
        return .continue
    }

    public func nextID(after floor: UInt64) -> UInt64 {
        generator.resume(after: floor)
        return generator.next()
    }

    public static let factory = StageFactory(kind: "id", settings: IDSettings.self) { settings, context in
        IDStage(settings: settings, workerID: context.node.workerID, clock: context.clock)
    }
}
