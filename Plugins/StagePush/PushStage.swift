import AsyncHTTPClient
import GatewayCore
import Logging
import NIOSSL
import ServiceLifecycle

/// The `push` stage: notifies the registered devices of recipients who may not have seen a
/// message (docs/PUSH.md, PROTOCOL.md section 9).
///
/// - `committed` (after the ack; the ack never waits for it): for each recipient other than
///   the sender, one notification per registered target goes into the store's durable push
///   queue: due at once when the recipient has no live session, `confirm_ms` later when it
///   has one (none when `confirm_ms` is 0).
/// - `process` for `delivered` and `read` (the pipeline entry's `on: [send, read, delivered]`):
///   the confirmation cancels the user's waiting notifications it covers. `send` passes through.
/// - The worker (`services`) drains the queue through the providers.
///
/// Notifications of one conversation to one target collapse: one waiting notification takes
/// every later message (`count`, `messages`), and after one is queued the next waits until
/// `collapse_ms` has passed.
public struct PushStage: Stage, PushRegistrationPolicy, PushFigureSource {
    public let settings: PushSettings
    let dispatcher: PushDispatcher

    init(settings: PushSettings, dispatcher: PushDispatcher) {
        self.settings = settings
        self.dispatcher = dispatcher
    }

    /// Builds the stage with the providers its settings configure.
    public init(settings: PushSettings, devices: any DeviceStore, queue: any PushQueue, clock: any GatewayClock, logger: Logger) throws {
        let shared = PushHTTPClient(configuration: PushHTTPClient.baseConfiguration(timeoutMs: settings.timeoutMs), timeoutMs: settings.timeoutMs)
        var clients = [shared]
        var providers: [PushPlatform: any PushProvider] = [:]
        if let webhook = settings.providers.webhook {
            providers[.webhook] = WebhookPushProvider(settings: webhook, http: shared)
        }
        if let webpush = settings.providers.webpush {
            providers[.webpush] = try WebPushProvider(settings: webpush, http: shared, clock: clock)
        }
        if let apns = settings.providers.apns {
            var configuration = PushHTTPClient.baseConfiguration(timeoutMs: settings.timeoutMs)
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile = apns.caFile {
                tls.additionalTrustRoots = [.file(caFile)]
            }
            tls.applicationProtocols = ["h2"]
            configuration.tlsConfiguration = tls
            configuration.httpVersion = .automatic
            let client = PushHTTPClient(configuration: configuration, timeoutMs: settings.timeoutMs)
            clients.append(client)
            providers[.apns] = try APNsProvider(settings: apns, http: client, clock: clock)
        }
        if let fcm = settings.providers.fcm {
            providers[.fcm] = try FCMProvider(settings: fcm, http: shared, clock: clock)
        }
        self.init(
            settings: settings,
            dispatcher: PushDispatcher(
                settings: settings, devices: devices, queue: queue, providers: providers, clients: clients, clock: clock, logger: logger))
    }

    public var maxDevicesPerUser: Int { settings.maxDevicesPerUser }
    public var allowHTTP: Bool { settings.allowHTTP }
    public var platforms: Set<PushPlatform> { settings.providers.platforms }

    public func check(_ registration: PushRegistration) throws(GatewayError) {
        if registration.platform == .webhook, let webhook = settings.providers.webhook, !webhook.allows(registration.address) {
            throw .badFrame("'url' names a host the push stage's webhook provider does not allow (providers.webhook.allowed_hosts)")
        }
    }

    public var services: [any Service] { [PushDispatcher.Worker(dispatcher: dispatcher)] }

    /// Sends every notification due now (tests call it after stepping their clock). Returns how
    /// many were handled.
    @discardableResult
    public func runDue() async -> Int { await dispatcher.runDue() }

    /// Wakes the worker to look at the queue now.
    public func kick() { dispatcher.kick() }

    public func pushFigures() async -> PushFigures {
        var figures = dispatcher.counters.figures
        figures.queued = (try? await dispatcher.queue.queuedCount()) ?? 0
        return figures
    }

    public func process(_ envelope: inout Envelope, context: StageContext) async throws -> StageOutcome {
        let confirmation: PushConfirmation
        switch envelope.kind {
        case .delivered:
            guard let seq = envelope.frame["seq"]?.int64Value else { return .continue }
            confirmation = .delivered(upToSeq: seq)
        case .read:
            guard let to = envelope.to, let upTo = Self.messageID(envelope.frame["up_to"]) else { return .continue }
            confirmation = .read(conversation: to.conversationKey(sender: envelope.sender.user), upTo: upTo)
        default:
            return .continue
        }
        // A confirmation that cannot be recorded only means a push too many: never refuse the frame.
        do {
            let cancelled = try await dispatcher.queue.cancel(user: envelope.sender.user, confirmation: confirmation, now: context.clock.nowMillis())
            if cancelled > 0 { dispatcher.counters.recordCancelled(cancelled) }
        } catch {
            context.logger.debug("push cancellation failed", metadata: ["error": "\(error)"])
        }
        return .continue
    }

    public func committed(_ envelope: Envelope, outcome: CommitOutcome, context: StageContext) async {
        guard envelope.kind == .send, case .stored(let message, let seqs) = outcome else { return }
        var seqOf: [String: Int64] = [:]
        for entry in seqs { seqOf[entry.user] = entry.seq }
        var recipients: [String] = []
        var seen: Set<String> = [message.from]
        for user in (envelope.recipients ?? seqs.map(\.user)) + (envelope.liveOnlyRecipients ?? []) where seen.insert(user).inserted {
            recipients.append(user)
        }
        if recipients.isEmpty { return }
        let now = context.clock.nowMillis()
        let conversation = message.conversation
        let body = settings.includeBody ? message.body : nil
        var items: [PushQueueItem] = []
        do {
            var online: Set<String> = []
            var wanted: [String] = []
            for user in recipients {
                if context.presence.isOnline(user) {
                    if settings.confirmMs == 0 { continue }
                    online.insert(user)
                }
                wanted.append(user)
            }
            if wanted.isEmpty { return }
            // One lookup for every recipient (a group message has many).
            var targetsOf: [String: [PushTarget]] = [:]
            for target in try await dispatcher.devices.targets(of: wanted) { targetsOf[target.user, default: []].append(target) }
            for user in wanted {
                guard let targets = targetsOf[user] else { continue }
                let online = online.contains(user)
                let seq = seqOf[user] ?? 0
                let entry = Self.entry(message, seq: seq)
                let due = online ? now + Int64(settings.confirmMs) : now
                for target in targets where settings.providers.platforms.contains(target.platform) {
                    items.append(
                        PushQueueItem(
                            user: user, targetID: target.id, collapseKey: conversation, due: due, seq: seq, messageID: message.id, entry: entry,
                            body: body))
                }
            }
            try await dispatcher.queue.enqueue(items, collapseMs: Int64(settings.collapseMs), maxListed: settings.maxListed)
        } catch {
            context.logger.warning("push notifications not queued: the store failed", metadata: ["error": "\(error)"])
            return
        }
        if !items.isEmpty { dispatcher.kick() }
    }

    /// One entry of a notification's `messages` list.
    static func entry(_ message: StoredMessage, seq: Int64) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.raw("{\"id\":")
        w.idString(message.id)
        if seq > 0 {
            w.raw(",\"seq\":")
            w.int(seq)
        }
        w.raw(",\"from\":")
        w.string(message.from)
        w.raw(",\"to\":")
        message.to.write(to: &w)
        w.raw(",\"ts\":")
        w.int(message.timestamp)
        w.raw("}")
        return w.bytes
    }

    static func messageID(_ value: JSONValue?) -> UInt64? {
        switch value {
        case .string(let text)?, .number(let text)?: UInt64(text)
        default: nil
        }
    }

    public static let factory = StageFactory(kind: "push", settings: PushSettings.self) { settings, context in
        guard let devices = context.stores.devices, let queue = context.stores.pushQueue else {
            throw PushSettingsError(description: "the push stage needs a store with push targets and a push queue (the sqlite store has them)")
        }
        // Receivers verify the signature with this secret: a published placeholder signs nothing.
        if context.exposure == .network, settings.providers.webhook?.secret?.isPublishedDefault == true {
            throw PushSettingsError(
                description: "providers.webhook.secret is a published placeholder and the public listener is reachable from the network: "
                    + "set PUSH_WEBHOOK_SECRET to a secret of your own (openssl rand -hex 32), or listen on 127.0.0.1")
        }
        if settings.confirmMs > 0 {
            let missing = Set<FrameKind>([.send, .read, .delivered]).subtracting(context.on)
            if !missing.isEmpty {
                throw PushSettingsError(
                    description:
                        "the push stage needs 'on: [send, read, delivered]' on its pipeline entry (confirmations cancel waiting notifications; missing: \(missing.map(\.rawValue).sorted().joined(separator: ", ")))"
                )
            }
        } else if !context.on.contains(.send) {
            throw PushSettingsError(description: "the push stage needs 'send' in its pipeline entry's 'on:'")
        }
        return try PushStage(settings: settings, devices: devices, queue: queue, clock: context.clock, logger: context.logger)
    }
}

/// A push setting that contradicts its pipeline entry or the store.
struct PushSettingsError: Error, CustomStringConvertible {
    let description: String
}
