import GatewayCore
import NIOCore
import Testing

@Suite("WebSocketFrameHeader: RFC 6455 section 5.2", .timeLimit(.minutes(1)))
struct WebSocketFrameHeaderTests {
    func bytes(_ values: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: values) }

    @Test func aShortUnmaskedTextFrame() throws {
        let header = try #require(WebSocketFrameHeader.peek(bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])))
        #expect(header == WebSocketFrameHeader(fin: true, opcode: 1, masked: false, payloadLength: 5, headerLength: 2))
    }

    @Test func aMaskedFrameCountsItsMaskKey() throws {
        // RFC 6455 5.7: a masked "Hello".
        let header = try #require(WebSocketFrameHeader.peek(bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])))
        #expect(header.masked)
        #expect(header.headerLength == 6)
        #expect(header.payloadLength == 5)
    }

    @Test func extendedLengths() throws {
        let medium = try #require(WebSocketFrameHeader.peek(bytes([0x02, 0x7E, 0x01, 0x00])))
        #expect(medium == WebSocketFrameHeader(fin: false, opcode: 2, masked: false, payloadLength: 256, headerLength: 4))
        let large = try #require(WebSocketFrameHeader.peek(bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])))
        #expect(large.payloadLength == 65536)
        #expect(large.headerLength == 10)
    }

    @Test func nothingUntilTheWholeHeaderArrived() {
        #expect(WebSocketFrameHeader.peek(bytes([0x81])) == nil)
        #expect(WebSocketFrameHeader.peek(bytes([0x81, 0x7E, 0x01])) == nil)
        #expect(WebSocketFrameHeader.peek(bytes([0x81, 0x7F, 0, 0, 0, 0])) == nil)
        #expect(WebSocketFrameHeader.peek(bytes([0x81, 0x85, 0x37, 0xFA, 0x21])) == nil, "the mask key is part of the header")
    }

    @Test func theReaderIndexDoesNotMove() throws {
        var buffer = bytes([0xFF, 0x88, 0x02, 0x03, 0xE8])
        buffer.moveReaderIndex(forwardBy: 1)
        let header = try #require(WebSocketFrameHeader.peek(buffer))
        #expect(header.opcode == 8)
        #expect(buffer.readerIndex == 1)
    }
}
