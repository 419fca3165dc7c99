import Foundation
import GatewayCore
import Logging
import Synchronization

/// What a stage test needs: stores in memory, a clock you step, who is online, envelopes as the
/// gateway builds them, and a stage built from its factory the way the pipeline builds it.
///
/// ```swift
/// let harness = StageHarness()
/// let stage = try harness.build(ShoutStage.factory, settings: #"{"suffix": "!"}"#)
/// var envelope = harness.send("hello")
/// let outcome = try await harness.run(stage, &envelope)
/// #expect(outcome.isContinue && envelope.body == "HELLO!")
/// ```
public struct StageHarness: Sendable {
    public let store: InMemoryStore
    public let clock: TestClock
    public let presence: TestPresence
    public var logger: Logger
    public var node: NodeSettings

    public init(clock: TestClock = TestClock(), store: InMemoryStore = InMemoryStore(), presence: TestPresence = TestPresence()) {
        self.clock = clock
        self.store = store
        self.presence = presence
        logger = Logger(label: "stage-test", factory: { _ in SwiftLogNoOpLogHandler() })
        node = NodeSettings()
    }

    public var stores: Stores { Stores(store) }

    /// The context a stage named `name` gets from the runner.
    public func context(name: String = "test") -> StageContext {
        StageContext(name: name, logger: logger, clock: clock, stores: stores, presence: presence)
    }

    /// Builds a stage with its factory, as the pipeline does. `settings` is the stage's
    /// `settings:` block as YAML (JSON is YAML's flow style), decoded by the config loader's own
    /// decoder (`StageSettings`): unknown keys and invalid values throw the `ConfigError` the
    /// loader would report. `on` is the pipeline entry's `on:`.
    public func build(_ factory: StageFactory, settings: String = "{}", name: String? = nil, on: Set<FrameKind> = [.send]) throws -> any Stage {
        let context = StageBuildContext(
            name: name ?? factory.kind, kind: factory.kind, settings: try StageSettings.source(settings), on: on, logger: logger, clock: clock,
            stores: stores, node: node)
        return try factory.make(context).stage
    }

    /// A `send` envelope as the gateway builds it before the first stage.
    public func send(
        _ body: JSONValue, from user: String = "alice", to: Address = .user("bob"), clientMsgID: String = "c1", ref: String? = "r1",
        remoteAddress: String? = "192.0.2.1"
    ) -> Envelope {
        var frame: JSONObject = ["type": "send", "to": to.json, "body": body, "client_msg_id": .string(clientMsgID)]
        if let ref { frame["ref"] = .string(ref) }
        return Envelope(
            kind: .send, sender: principal(user, remoteAddress: remoteAddress), ref: ref, frame: frame, to: to, body: body,
            clientMsgID: clientMsgID, timestamp: clock.nowMillis())
    }

    /// A `typing` envelope (`{"type":"typing","to":…}`).
    public func typing(from user: String = "alice", to: Address = .user("bob"), remoteAddress: String? = "192.0.2.1") -> Envelope {
        Envelope(
            kind: .typing, sender: principal(user, remoteAddress: remoteAddress), ref: nil, frame: ["type": "typing", "to": to.json], to: to,
            timestamp: clock.nowMillis())
    }

    public func principal(_ user: String, remoteAddress: String? = "192.0.2.1") -> Principal {
        Principal(user: user, device: "\(user)-device", session: "\(user)-session", transport: .websocket, remoteAddress: remoteAddress)
    }

    /// Runs one stage on `envelope` with the context the runner would give it.
    public func run(_ stage: any Stage, _ envelope: inout Envelope, name: String = "test") async throws -> StageOutcome {
        try await stage.process(&envelope, context: context(name: name))
    }
}

/// Who is online, as the tests say.
public final class TestPresence: PresenceQuery, Sendable {
    /// Guards the users marked online.
    private let online = Mutex<Set<String>>([])

    public init(online users: Set<String> = []) {
        online.withLock { $0 = users }
    }

    public func isOnline(_ user: String) -> Bool { online.withLock { $0.contains(user) } }

    public func set(_ user: String, online isOnline: Bool) {
        online.withLock { users in
            if isOnline { users.insert(user) } else { users.remove(user) }
        }
    }
}

/// Settings given as JSON text, decoded with Foundation's `JSONDecoder`: lenient (unknown keys
/// pass, errors are `DecodingError`s without a line). `StageSettings.source(_:)` decodes as the
/// config loader does.
public struct JSONSettingsSource: SettingsSource {
    public let text: String

    public init(_ text: String) { self.text = text }

    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
}

extension StageOutcome {
    /// The error of a `.reject`, else nil.
    public var rejection: GatewayError? {
        if case .reject(let error) = self { return error }
        return nil
    }

    public var isContinue: Bool {
        if case .continue = self { return true }
        return false
    }
}
