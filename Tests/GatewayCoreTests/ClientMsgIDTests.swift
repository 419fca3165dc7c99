import GatewayCore
import Testing

/// `client_msg_id`: at most 64 bytes and no control characters (found by the frame
/// fuzzer: a NUL was acked, then stored cut at the NUL, so two such ids collided as one key).
@Suite("client_msg_id bounds")
struct ClientMsgIDTests {
    static func send(clientMsgID: String) throws -> ClientFrame {
        let cid = JSONValue.string(clientMsgID).jsonText
        return try ClientFrame.parse(try JSONParser.parse("{\"type\":\"send\",\"to\":{\"user\":\"bob\"},\"body\":1,\"client_msg_id\":\(cid)}"))
    }

    @Test(arguments: ["\u{0}", "a\u{0}b", "tab\there", "new\nline", "\u{7F}", String(repeating: "k", count: 65), String(repeating: "é", count: 33)])
    func refused(_ clientMsgID: String) throws {
        let frame = try Self.send(clientMsgID: clientMsgID)
        #expect(throws: GatewayError.self) { try frame.sendRequest() }
    }

    @Test(arguments: ["k", String(repeating: "k", count: 64), String(repeating: "é", count: 32), "émoji-🙂", "with space"])
    func accepted(_ clientMsgID: String) throws {
        #expect(try Self.send(clientMsgID: clientMsgID).sendRequest().clientMsgID == clientMsgID)
    }
}
