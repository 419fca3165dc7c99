import GatewayCore
import Testing

@Suite("JSON parser and writer")
struct JSONTests {
    @Test(arguments: [
        "{}", "[]", "null", "true", "false", "0", "-0", "12.5e-3", "\"a\\u00e9\\ud83d\\ude00\"",
        "{\"a\":[1,2,{\"b\":null}],\"c\":\"\\n\\t\\\"\"}", "18446744073709551615123",
    ])
    func roundTrips(_ text: String) throws {
        let value = try JSONParser.parse(text)
        let again = try JSONParser.parse(value.jsonText)
        #expect(again == value)
    }

    @Test func keepsNumbersAndKeyOrderExactly() throws {
        let text = "{\"z\":1,\"a\":12345678901234567890,\"m\":1.50}"
        #expect(try JSONParser.parse(text).jsonText == text)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "{'a':1}", "01", "1.", "-", "tru", "\"\u{01}\"", "\"\\x\"", "[1] 2", "\"\\ud800\"", "{\"a\":1,}",
        "NaN", "\"unterminated",
    ])
    func rejectsInvalidDocuments(_ text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(text) }
    }

    @Test func boundsNestingDepth() throws {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let error = try #require(throws: JSONParser.Error.self) { try JSONParser.parse(deep) }
        #expect(error.reason.contains("nesting"))
        let fine = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try JSONParser.parse(fine)
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func writerEscapesControlCharacters() throws {
        let value = JSONValue.string("a\u{0}b\u{1F}\"\\")
        #expect(value.jsonText == "\"a\\u0000b\\u001f\\\"\\\\\"")
        #expect(try JSONParser.parse(value.jsonText) == value)
    }
}

@Suite("Client frames")
struct ClientFrameTests {
    func frame(_ text: String) throws(FrameError) -> ClientFrame {
        do {
            return try ClientFrame.parse(try JSONParser.parse(text))
        } catch let error as JSONParser.Error {
            throw FrameError(ref: nil, error: .badFrame(error.description))
        } catch {
            throw error as! FrameError
        }
    }

    @Test func parsesASend() throws {
        let send = try frame("{\"type\":\"send\",\"to\":{\"group\":\"g_1\"},\"body\":{\"t\":1},\"client_msg_id\":\"c\",\"ref\":\"r\"}")
        #expect(send.kind == .send)
        #expect(send.ref == "r")
        let request = try send.sendRequest()
        #expect(request.to == .group("g_1"))
        #expect(request.clientMsgID == "c")
    }

    @Test(arguments: [
        ("{\"type\":\"send\",\"to\":{\"user\":\"b\",\"group\":\"g\"},\"body\":1,\"client_msg_id\":\"c\"}", "to"),
        ("{\"type\":\"send\",\"to\":{\"user\":\"\"},\"body\":1,\"client_msg_id\":\"c\"}", "to.user"),
        ("{\"type\":\"send\",\"to\":{\"user\":\"b\"},\"body\":1,\"client_msg_id\":\"\(String(repeating: "x", count: 65))\"}", "client_msg_id"),
        ("{\"type\":\"send\",\"to\":{\"user\":\"b\"},\"body\":1,\"client_msg_id\":\"c\",\"attachments\":[1,2,3,4,5,6,7,8,9,10,11]}", "attachments"),
        ("{\"type\":\"sync\",\"since\":-1}", "since"),
        ("{\"type\":\"sync\",\"limit\":1001}", "limit"),
        ("{\"type\":\"history\",\"with\":{\"user\":\"b\"},\"before\":\"x\"}", "before"),
    ])
    func rejectsBadFields(_ text: String, field: String) throws {
        let parsed = try frame(text)
        do {
            switch parsed.kind {
            case .send: _ = try parsed.sendRequest()
            case .sync: _ = try parsed.syncRequest()
            case .history: _ = try parsed.historyRequest()
            default: Issue.record("unexpected kind")
            }
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .badFrame)
            #expect(error.message.contains(field))
        }
    }

    @Test func refTooLongAndUnknownType() {
        #expect(throws: FrameError.self) { try frame("{\"type\":\"ping\",\"ref\":\"\(String(repeating: "r", count: 65))\"}") }
        do {
            _ = try frame("{\"type\":\"warp\",\"ref\":\"x\"}")
            Issue.record("accepted an unknown type")
        } catch {
            #expect(error.ref == "x")
            #expect(error.error.message.contains("unknown frame type"))
        }
    }

    @Test func addresses() {
        #expect(Address(path: "user:bob") == .user("bob"))
        #expect(Address(path: "group:g_42") == .group("g_42"))
        #expect(Address(path: "chan:x") == nil)
        #expect(Address(path: "user:../etc") == nil)
        #expect(Address.user("bob").conversationKey(sender: "alice") == Address.user("alice").conversationKey(sender: "bob"))
    }
}
