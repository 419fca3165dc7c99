import GatewayCore
import NIOCore
import Testing

@Suite("Server frames")
struct ServerFrameTests {
    static let message = StoredMessage(
        id: 385_519_763_809_374_208, from: "alice", to: .user("bob"), timestamp: 1_795_982_274_303, clientMsgID: "c1",
        body: Array(#"{"text":"hi"}"#.utf8), attachments: nil)

    /// Every frame leaves room for the WebSocket header in front of its JSON, so NIO's encoder
    /// writes the header in place; the readable bytes are exactly the JSON.
    @Test func framesLeaveRoomForTheWebSocketHeader() throws {
        let frames = [
            ServerFrame.ack(ref: "r1", id: 7, seq: 3, timestamp: 5, clientMsgID: "c1", duplicate: false),
            ServerFrame.message(Self.message, seq: 4),
            MessageFrameTemplate(Self.message).frame(seq: 4),
            ServerFrame.error(.badFrame("no"), ref: nil),
        ]
        for frame in frames {
            #expect(frame.readerIndex >= ServerFrame.headerRoom)
            let text = try #require(frame.getString(at: frame.readerIndex, length: frame.readableBytes))
            #expect(text.hasPrefix("{") && text.hasSuffix("}"), "\(text)")
        }
        #expect(frames[1] == frames[2])
        #expect(String(buffer: frames[0]) == #"{"type":"ack","ref":"r1","id":"7","seq":3,"ts":5,"client_msg_id":"c1"}"#)
    }

    /// `typing`, `receipt` and `presence`, built by `ServerFrame` like every other frame
    /// (escaped strings, ids as strings, room for the header).
    @Test func typingReceiptAndPresenceFramesAreServerFrames() {
        let typing = ServerFrame.typing(from: "al\"ice", to: .group("g1"))
        #expect(typing.readerIndex >= ServerFrame.headerRoom)
        #expect(String(buffer: typing) == #"{"type":"typing","from":"al\"ice","to":{"group":"g1"}}"#)
        let receipt = ServerFrame.receipt(from: "bob", with: .user("alice"), upTo: 385_519_763_809_374_208)
        #expect(receipt.readerIndex >= ServerFrame.headerRoom)
        #expect(String(buffer: receipt) == #"{"type":"receipt","from":"bob","with":{"user":"alice"},"up_to":"385519763809374208"}"#)
        let presence = ServerFrame.presence(ref: "r2", users: [["user": "bob", "status": "online", "last_active_at": .int(5)]])
        #expect(String(buffer: presence) == #"{"type":"presence","ref":"r2","users":[{"user":"bob","status":"online","last_active_at":5}]}"#)
    }
}
