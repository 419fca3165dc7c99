import NIOCore

/// The header of one RFC 6455 frame (section 5.2), read from raw bytes: for the clients that
/// speak WebSocket without NIO's frame decoder (the load generator of `chatgate bench`, the
/// raw test client in GatewayTesting), so they share one parser.
public struct WebSocketFrameHeader: Sendable, Hashable {
    public var fin: Bool
    /// The low four bits of the first byte (0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong).
    public var opcode: UInt8
    /// Whether a 4-byte mask key follows the length (client-to-server frames).
    public var masked: Bool
    /// The payload's length as the header gives it (up to 2^63 - 1).
    public var payloadLength: UInt64
    /// The bytes before the payload: 2, plus 2 or 8 of extended length, plus 4 of mask key.
    public var headerLength: Int

    public init(fin: Bool, opcode: UInt8, masked: Bool, payloadLength: UInt64, headerLength: Int) {
        self.fin = fin
        self.opcode = opcode
        self.masked = masked
        self.payloadLength = payloadLength
        self.headerLength = headerLength
    }

    /// The header at `buffer`'s reader index, without moving it; nil until all of it has
    /// arrived.
    public static func peek(_ buffer: ByteBuffer) -> WebSocketFrameHeader? {
        let start = buffer.readerIndex
        guard let b0 = buffer.getInteger(at: start, as: UInt8.self), let b1 = buffer.getInteger(at: start + 1, as: UInt8.self) else {
            return nil
        }
        var headerLength = 2
        var length = UInt64(b1 & 0x7F)
        if length == 126 {
            guard let extended = buffer.getInteger(at: start + 2, as: UInt16.self) else { return nil }
            length = UInt64(extended)
            headerLength = 4
        } else if length == 127 {
            guard let extended = buffer.getInteger(at: start + 2, as: UInt64.self) else { return nil }
            length = extended
            headerLength = 10
        }
        let masked = b1 & 0x80 != 0
        if masked {
            headerLength += 4
            guard buffer.readableBytes >= headerLength else { return nil }
        }
        return WebSocketFrameHeader(fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, masked: masked, payloadLength: length, headerLength: headerLength)
    }
}
