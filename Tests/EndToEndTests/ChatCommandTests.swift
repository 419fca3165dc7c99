import Foundation
import GatewayCore
import GatewayTesting
import Testing

/// `chatgate chat` in a real terminal: tmux runs it, `send-keys` types, `capture-pane` reads
/// the screen. bob talks to it over a raw WebSocket.
@Suite("chatgate chat in tmux")
struct ChatCommandTests {
    static let hasTmux = FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux")

    @discardableResult
    static func tmux(_ arguments: [String]) async throws -> String {
        try await Command.run("/usr/bin/tmux", arguments, timeout: .seconds(20)).output
    }

    /// Captures the pane until `text` shows (or `seconds` pass); returns the last screen.
    static func screen(_ session: String, showing text: String, seconds: Double = 20) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var screen = ""
        while ContinuousClock.now < deadline {
            screen = try await tmux(["capture-pane", "-p", "-t", session])
            if screen.contains(text) { return screen }
            try await Task.sleep(for: .milliseconds(50))
        }
        return screen
    }

    @Test(.enabled(if: hasTmux || PythonTools.isCI, "tmux is not installed: run scripts/setup-clients.sh"))
    func typedLinesAreSentAndMessagesPrinted() async throws {
        try #require(Self.hasTmux, "tmux is not installed: run scripts/setup-clients.sh")
        let gateway = try await TestGateway.startFromFile()
        let (bob, _) = try await gateway.connect("bob")
        // Something earlier in the conversation, shown as history when the client starts.
        bob.send(sendFrame(to: .user("alice"), body: ["text": "earlier hello"], id: "b0"))
        #expect(try await bob.nextFrame()["type"]?.stringValue == "ack")

        let session = "chatgate-chat-\(UUID().uuidString.prefix(8))"
        let command = [ChildGateway.binary.path, "chat", "--as", "alice", "--to", "bob", "--config", gateway.configPath, "--port", String(gateway.port)]
            .map { "'\($0)'" }.joined(separator: " ")
        try await Self.tmux(["new-session", "-d", "-s", session, "-x", "160", "-y", "40", command])
        defer { _ = Command.succeeds("/usr/bin/tmux", ["kill-session", "-t", session]) }

        let ready = try await Self.screen(session, showing: "talking to user:bob")
        #expect(ready.contains("connected as alice (websocket)"), "\(ready)")
        #expect(ready.contains("bob: earlier hello"), "history is shown: \(ready)")

        // A typed line reaches bob.
        try await Self.tmux(["send-keys", "-t", session, "hello from the terminal", "Enter"])
        let frame = try await bob.nextFrame()
        #expect(frame["type"]?.stringValue == "message")
        #expect(frame["from"]?.stringValue == "alice")
        #expect(frame["body"]?["text"]?.stringValue == "hello from the terminal")

        // bob's answer is printed.
        bob.send(sendFrame(to: .user("alice"), body: ["text": "hi alice, bob here"], id: "b1"))
        let printed = try await Self.screen(session, showing: "bob: hi alice, bob here")
        #expect(printed.contains("bob: hi alice, bob here"), "\(printed)")

        // /quit leaves cleanly.
        try await Self.tmux(["send-keys", "-t", session, "/quit", "Enter"])
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, Self.sessionAlive(session) {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(!Self.sessionAlive(session), "chatgate chat exited on /quit")
        bob.close()
        await gateway.stop()
    }

    static func sessionAlive(_ session: String) -> Bool {
        Command.succeeds("/usr/bin/tmux", ["has-session", "-t", session])
    }
}
