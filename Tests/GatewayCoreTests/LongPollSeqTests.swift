import GatewayCore
import NIOCore
import Testing

/// The seq scans a re-homed long-poll session relies on (`LongPollDirectory.swift`): they read
/// what `ServerFrame` writes, and nothing else.
@Suite("ServerFrame: seq of message frames and inbox_seq of hello", .timeLimit(.minutes(1)))
struct LongPollSeqTests {
    static func message(seq: Int64?, body: String = "\"hi\"") -> ByteBuffer {
        let stored = StoredMessage(
            id: 385_465_628_481_294_336, from: "alice", to: .user("bob"), timestamp: 1_795_969_367_435, clientMsgID: "a-1", body: Array(body.utf8))
        return ServerFrame.message(stored, seq: seq)
    }

    @Test func messageSeqReadsTheSeqOfAMessageFrame() {
        #expect(ServerFrame.messageSeq(Self.message(seq: 7)) == 7)
        #expect(ServerFrame.messageSeq(Self.message(seq: 1_234_567_890_123)) == 1_234_567_890_123)
        #expect(ServerFrame.messageSeq(Self.message(seq: nil)) == nil)
        // A body that looks like a seq is not read.
        #expect(ServerFrame.messageSeq(Self.message(seq: nil, body: "{\"seq\":9}")) == nil)
        #expect(ServerFrame.messageSeq(ServerFrame.pong(ref: nil)) == nil)
    }

    @Test func helloInboxSeqReadsTheInboxHead() {
        let hello = ServerFrame.hello(user: "bob", device: "web", session: "n-1-2", node: "n", heartbeatMs: 5000, maxFrameBytes: 65536, inboxSeq: 42)
        #expect(ServerFrame.helloInboxSeq(hello) == 42)
        #expect(ServerFrame.helloInboxSeq(ServerFrame.pong(ref: nil)) == nil)
    }
}
