import GatewayTesting
import Foundation
import GatewayCore
import NIOCore
import Testing

/// RFC 6455 §5.5.1 and §7.4: the answer to a client's close frame, on an authenticated session
/// (`/v1/ws`) and on the debug echo endpoint (`/v1/echo`), with hand-built frames on a raw socket.
@Suite("Close codes as RFC 6455 says")
struct CloseCodeTests {
    /// A close frame's payload: `code` (if any) then `reason` bytes.
    static func payload(code: UInt16?, reason: [UInt8] = []) -> ByteBuffer {
        var buffer = ByteBuffer()
        if let code { buffer.writeInteger(code) }
        buffer.writeBytes(reason)
        return buffer
    }

    /// One case: the payload sent and the code the server must answer with.
    struct Case: Sendable {
        let name: String
        let payload: [UInt8]
        let expected: UInt16

        init(_ name: String, code: UInt16?, reason: [UInt8] = [], expected: UInt16) {
            self.name = name
            var buffer = CloseCodeTests.payload(code: code, reason: reason)
            self.payload = buffer.readBytes(length: buffer.readableBytes) ?? []
            self.expected = expected
        }

        init(_ name: String, raw: [UInt8], expected: UInt16) {
            self.name = name
            self.payload = raw
            self.expected = expected
        }
    }

    static let cases: [Case] = [
        Case("empty payload", code: nil, expected: 1000),
        Case("1-byte payload", raw: [0x03], expected: 1002),
        Case("1000 echoed", code: 1000, expected: 1000),
        Case("1001 echoed", code: 1001, expected: 1001),
        Case("1003 echoed", code: 1003, expected: 1003),
        Case("1011 echoed", code: 1011, expected: 1011),
        Case("1013 echoed (IANA)", code: 1013, expected: 1013),
        Case("3000 echoed", code: 3000, expected: 3000),
        Case("4999 echoed", code: 4999, expected: 4999),
        Case("valid UTF-8 reason", code: 1000, reason: Array("κόσμε bye".utf8), expected: 1000),
        Case("0", code: 0, expected: 1002),
        Case("999", code: 999, expected: 1002),
        Case("1004 reserved", code: 1004, expected: 1002),
        Case("1005 never sent", code: 1005, expected: 1002),
        Case("1006 never sent", code: 1006, expected: 1002),
        Case("1015 never sent", code: 1015, expected: 1002),
        Case("1016 unassigned", code: 1016, expected: 1002),
        Case("2999 unassigned", code: 2999, expected: 1002),
        Case("5000", code: 5000, expected: 1002),
        // Autobahn 7.5.1: a reason with a UTF-16 surrogate encoded in UTF-8 (ED A0 80).
        Case("invalid UTF-8 reason", code: 1000, reason: [0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xED, 0xA0, 0x80, 0x65], expected: 1007),
        Case("truncated UTF-8 reason", code: 1000, reason: [0x61, 0xC3], expected: 1007),
    ]

    @Test func sessionsAnswerCloseFramesAsRFC6455Says() async throws {
        let gateway = try await TestGateway.start()
        for testCase in Self.cases {
            let (alice, _) = try await gateway.connect("alice")
            alice.raw.sendFrame(opcode: 0x8, payload: ByteBuffer(bytes: testCase.payload))
            #expect(try await alice.closeCode() == testCase.expected, "\(testCase.name)")
            // The server closes the TCP connection after its close frame.
            #expect(try await alice.next() == .disconnected, "\(testCase.name)")
        }
        await gateway.stop()
    }

    @Test func echoEndpointAnswersCloseFramesAsRFC6455Says() async throws {
        let gateway = try await TestGateway.start(extra: "debug: { echo_endpoint: true }")
        for testCase in Self.cases {
            let (echo, status, _) = try await WebSocketStream.connect(port: gateway.port, path: "/v1/echo")
            #expect(status == 101)
            echo.send("hello")
            #expect(try await echo.nextText() == "hello")
            echo.raw.sendFrame(opcode: 0x8, payload: ByteBuffer(bytes: testCase.payload))
            #expect(try await echo.closeCode() == testCase.expected, "\(testCase.name)")
            #expect(try await echo.next() == .disconnected, "\(testCase.name)")
        }
        await gateway.stop()
    }

    @Test func invalidUTF8InAFragmentFailsFastAndACharacterCutBetweenFragmentsIsFine() async throws {
        let gateway = try await TestGateway.start(extra: "debug: { echo_endpoint: true }")
        // "é" (C3 A9) and "€" (E2 82 AC) cut between fragments: one message, echoed whole.
        let (echo, _, _) = try await WebSocketStream.connect(port: gateway.port, path: "/v1/echo")
        echo.raw.sendFrame(opcode: 0x1, payload: ByteBuffer(bytes: [0x61, 0xC3]), fin: false)
        echo.raw.sendFrame(opcode: 0x0, payload: ByteBuffer(bytes: [0xA9, 0xE2]), fin: false)
        echo.raw.sendFrame(opcode: 0x0, payload: ByteBuffer(bytes: [0x82]), fin: false)
        echo.raw.sendFrame(opcode: 0x0, payload: ByteBuffer(bytes: [0xAC, 0x62]), fin: true)
        #expect(try await echo.nextText() == "aé€b")
        // Invalid UTF-8 in the second of three fragments: 1007 without waiting for the last.
        let cases: [(String, [UInt8])] = [
            ("a surrogate", [0xED, 0xA0, 0x80]),
            ("a cut surrogate", [0xED, 0xA0]),
            ("over U+10FFFF, cut", [0xF4, 0x90]),
            ("a stray continuation byte", [0x80]),
            ("an invalid lead byte", [0xC0]),
        ]
        for (name, bytes) in cases {
            let (stream, _, _) = try await WebSocketStream.connect(port: gateway.port, path: "/v1/echo")
            stream.raw.sendFrame(opcode: 0x1, payload: ByteBuffer(string: "κόσμε"), fin: false)
            stream.raw.sendFrame(opcode: 0x0, payload: ByteBuffer(bytes: bytes), fin: false)
            #expect(try await stream.closeCode() == 1007, "\(name)")
        }
        // The same on a session.
        let (alice, _) = try await gateway.connect("alice")
        alice.raw.sendFrame(opcode: 0x1, payload: ByteBuffer(string: "{\"type\":\"ping\",\"ref\":\""), fin: false)
        alice.raw.sendFrame(opcode: 0x0, payload: ByteBuffer(bytes: [0xFF]), fin: false)
        #expect(try await alice.closeCode() == 1007)
        await gateway.stop()
    }
}
