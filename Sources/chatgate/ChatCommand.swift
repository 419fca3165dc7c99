import ArgumentParser
import ChatClient
import Foundation
import GatewayCore
import StageAuth
import Synchronization

/// `chatgate chat --as alice --to bob`: a terminal client on `ChatClient`. Each line typed is
/// sent; messages of the conversation are printed as they arrive. The token is a development
/// token signed with the config's `auth` secret (as `chatgate token`).
struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat from a terminal (a development client on the ChatClient library).",
        discussion: "Lines you type are sent; /quit (or Ctrl-D) leaves. The token is minted with the config's HS256 secret.")

    @Option(name: .customLong("as"), help: ArgumentHelp("Your user id.", valueName: "user"))
    var user: String

    @Option(help: ArgumentHelp("The user to talk to.", valueName: "user"))
    var to: String?

    @Option(help: ArgumentHelp("The group to talk in.", valueName: "id"))
    var group: String?

    @Option(name: .shortAndLong, help: "The config file (for the auth secret and the port).")
    var config = "config.yaml"

    @Option(help: "The gateway's host.")
    var host = "127.0.0.1"

    @Option(help: "The gateway's port (default: listen.public.port of the config).")
    var port: Int?

    @Option(help: "auto, websocket or longpoll.")
    var transport = "auto"

    @Option(help: "How many earlier messages to show.")
    var history = 10

    func validate() throws {
        guard (to == nil) != (group == nil) else { throw ValidationError("give exactly one of --to USER or --group ID") }
        guard ChatClientConfiguration.TransportPreference(rawValue: transport) != nil else {
            throw ValidationError("--transport must be auto, websocket or longpoll")
        }
    }

    func run() async throws {
        let configuration = try loadConfiguration(config)
        guard let entry = configuration.pipeline.first(where: { $0.stage == "auth" }) else {
            FileHandle.standardError.write(Data("\(config): error: no auth stage in the pipeline\n".utf8))
            throw ExitCode(1)
        }
        let settings = try entry.settings.decode(AuthSettings.self)
        let user = self.user
        let address: Address = group.map { .group($0) } ?? .user(to ?? "")
        let client = ChatClient(
            configuration: .init(
                host: host, port: port ?? configuration.listen.public.port,
                transport: ChatClientConfiguration.TransportPreference(rawValue: transport) ?? .auto, device: "terminal"),
            token: { try await AuthStageFactory.mintHS256(settings: settings, user: user, ttlSeconds: 3600, now: SystemClock().nowMillis()) },
            seqStore: FromNowSeqStore())
        let printer = Task {
            for await event in client.events {
                switch event {
                case .message(let message) where Self.belongs(message, to: address, me: user):
                    Self.say(Self.line(message))
                case .state(.open(let kind)):
                    Self.say("* connected as \(user) (\(kind.rawValue))")
                case .state(.reconnecting(let delay, let reason)):
                    Self.say("* disconnected (\(reason)); reconnecting in \(delay) ms")
                case .typing(let frame) where frame["from"]?.stringValue != user:
                    Self.say("* \(frame["from"]?.stringValue ?? "?") is typing…")
                case .error(let error):
                    Self.say("* error: \(error)")
                default:
                    break
                }
            }
        }
        do {
            try await client.connect()
            let page = try await client.history(with: address, limit: max(1, min(history, 500)))
            let earlier = (page["messages"]?.arrayValue ?? []).compactMap(\.objectValue).reversed()
            for frame in earlier { Self.say(Self.line(frame)) }
            Self.say("* talking to \(address.description); type a line and press return (/quit to leave)")
        } catch {
            Self.say("* cannot connect: \(error)")
            await client.close()
            throw ExitCode(1)
        }
        for await line in Self.standardInputLines() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text == "/quit" { break }
            if text.isEmpty { continue }
            do {
                _ = try await client.submit(to: address, body: ["text": .string(text)])
            } catch {
                Self.say("* not sent: \(error)")
            }
        }
        // Wait (briefly) for what was typed last to be acked.
        let deadline = ContinuousClock.now + .seconds(5)
        while await client.unacked > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        await client.close()
        _ = await printer.value
    }

    /// Writes a line to standard output at once (no buffering: a terminal or tmux shows it now).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func belongs(_ message: ChatMessage, to address: Address, me: String) -> Bool {
        switch address {
        case .group(let id): return message.to == .group(id)
        case .user(let peer): return (message.from == peer && message.to == .user(me)) || (message.from == me && message.to == .user(peer))
        }
    }

    static func line(_ message: ChatMessage) -> String { line(message.frame) }

    static func line(_ frame: JSONObject) -> String {
        let from = frame["from"]?.stringValue ?? "?"
        let body = frame["body"]
        let text = body?["text"]?.stringValue ?? body?.jsonText ?? ""
        let seconds = (frame["ts"]?.int64Value ?? 0) / 1000
        let time = Date(timeIntervalSince1970: TimeInterval(seconds))
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return "[\(formatter.string(from: time))] \(from): \(text)"
    }

    /// Lines of standard input, read on a thread of their own (reading blocks).
    static func standardInputLines() -> AsyncStream<String> {
        AsyncStream(bufferingPolicy: .bufferingOldest(1000)) { continuation in
            let thread = Thread {
                while let line = readLine(strippingNewline: true) { continuation.yield(line) }
                continuation.finish()
            }
            thread.start()
        }
    }
}

/// The terminal shows the conversation's recent history itself; the inbox is followed from
/// the gateway's current seq on.
private final class FromNowSeqStore: SeqStore {
    /// Guards the seq per user.
    private let seqs = Mutex<[String: Int64]>([:])

    func load(user: String) -> Int64 { seqs.withLock { $0[user] ?? -1 } }
    func save(_ seq: Int64, user: String) { seqs.withLock { $0[user] = seq } }
}
