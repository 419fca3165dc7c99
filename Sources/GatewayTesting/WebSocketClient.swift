import Foundation
import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// What a WebSocket client connection reports.
public enum WebSocketEvent: Sendable, Equatable {
    /// The handshake's HTTP status and headers (101 when upgraded), with the body of a refusal.
    case handshake(status: Int, headers: [String: String], body: String)
    case text(String)
    case binary([UInt8])
    case pong([UInt8])
    /// The server's close frame (code nil when it carried none).
    case close(code: UInt16?, reason: String)
    /// The TCP connection ended.
    case disconnected
}

/// A small RFC 6455 client on SwiftNIO, written for many connections per event loop: no task
/// per connection, events go to a callback on the event loop. It does its own handshake and
/// framing, so tests can also send what a correct client never would (unmasked frames,
/// reserved bits, bad UTF-8) on a real socket.
public final class WebSocketClient: Sendable {
    public typealias EventHandler = @Sendable (WebSocketEvent) -> Void

    public let channel: any Channel

    init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects and sends the handshake; events (starting with `.handshake`) go to `onEvent`.
    public static func connect(
        host: String, port: Int, path: String = "/v1/ws", headers: [(String, String)] = [],
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, maxMessageBytes: Int = 16 << 20,
        receiveBufferBytes: Int? = nil, tls: TLSConfiguration? = nil, onEvent: @escaping EventHandler
    ) async throws -> WebSocketClient {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        var bootstrap = ClientBootstrap(group: group).channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let receiveBufferBytes {
            // A tiny receive window makes a client that stops reading fill the server's buffers fast.
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBufferBytes))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        // wss://: TLS under the WebSocket framing.
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandler(ClientFrameHandler(maxMessageBytes: maxMessageBytes, onEvent: onEvent))
                }
            }
            .connect(host: host, port: port).get()
        let client = WebSocketClient(channel: channel)
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        try await client.writeRaw(ByteBuffer(string: request))
        return client
    }

    /// Sends a text message as one masked frame.
    public func send(text: String) {
        sendFrame(opcode: 0x1, payload: ByteBuffer(string: text))
    }

    public func send(text: ByteBuffer) {
        sendFrame(opcode: 0x1, payload: text)
    }

    /// Sends one frame; the flags let tests break the protocol on purpose.
    public func sendFrame(opcode: UInt8, payload: ByteBuffer, fin: Bool = true, masked: Bool = true, rsv: UInt8 = 0) {
        channel.writeAndFlush(Self.encode(opcode: opcode, payload: payload, fin: fin, masked: masked, rsv: rsv), promise: nil)
    }

    /// Writes bytes as they are (a handshake, a frame header that lies about its length).
    public func writeRaw(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes).get()
    }

    /// Sends a close frame and closes the socket.
    public func close(code: UInt16 = 1000) {
        var payload = ByteBuffer()
        payload.writeInteger(code)
        channel.writeAndFlush(Self.encode(opcode: 0x8, payload: payload, fin: true, masked: true, rsv: 0)).whenComplete { [channel] _ in
            channel.close(promise: nil)
        }
    }

    /// Drops the TCP connection without a close frame.
    public func disconnect() {
        channel.close(promise: nil)
    }

    public static func encode(opcode: UInt8, payload: ByteBuffer, fin: Bool, masked: Bool, rsv: UInt8) -> ByteBuffer {
        var frame = ByteBuffer()
        frame.reserveCapacity(payload.readableBytes + 14)
        frame.writeInteger(UInt8((fin ? 0x80 : 0) | (rsv & 0x7) << 4 | (opcode & 0xF)))
        let length = payload.readableBytes
        let maskBit: UInt8 = masked ? 0x80 : 0
        if length < 126 {
            frame.writeInteger(maskBit | UInt8(length))
        } else if length <= 0xFFFF {
            frame.writeInteger(maskBit | 126)
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(maskBit | 127)
            frame.writeInteger(UInt64(length))
        }
        if masked {
            let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
            frame.writeBytes(key)
            payload.withUnsafeReadableBytes { bytes in
                for (index, byte) in bytes.enumerated() {
                    frame.writeInteger(byte ^ key[index & 3])
                }
            }
        } else {
            var copy = payload
            frame.writeBuffer(&copy)
        }
        return frame
    }
}

/// Parses the handshake response, then server frames; reassembles fragments.
final class ClientFrameHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var buffer = ByteBuffer()
    private var upgraded = false
    private var refused = false
    private var refusal: (status: Int, headers: [String: String], body: String, length: Int)?
    private var fragments: [UInt8]?
    private var fragmentOpcode: UInt8 = 1
    private let maxMessageBytes: Int
    private let onEvent: WebSocketClient.EventHandler

    init(maxMessageBytes: Int, onEvent: @escaping WebSocketClient.EventHandler) {
        self.maxMessageBytes = maxMessageBytes
        self.onEvent = onEvent
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        if !upgraded {
            guard parseHandshake(context: context) else { return }
        }
        while let frame = nextFrame() {
            handle(frame, context: context)
        }
        if buffer.readerIndex > 65536 { buffer.discardReadBytes() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let refusal {
            onEvent(.handshake(status: refusal.status, headers: refusal.headers, body: refusal.body))
            self.refusal = nil
        }
        onEvent(.disconnected)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func parseHandshake(context: ChannelHandlerContext) -> Bool {
        if var pending = refusal {
            // Waiting for the rest of a refusal's body.
            let available = buffer.readableBytes
            if available >= pending.length {
                pending.body = buffer.readString(length: pending.length) ?? ""
                onEvent(.handshake(status: pending.status, headers: pending.headers, body: pending.body))
                refusal = nil
            }
            return false
        }
        guard let text = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes),
            let end = text.range(of: "\r\n\r\n")
        else { return false }
        let headText = String(text[..<end.lowerBound])
        buffer.moveReaderIndex(forwardBy: text.utf8.distance(from: text.startIndex, to: end.upperBound))
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        let status = statusLine.count > 1 ? Int(statusLine[1]) ?? 0 : 0
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if status == 101 {
            upgraded = true
            onEvent(.handshake(status: status, headers: headers, body: ""))
            return true
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        refusal = (status, headers, "", length)
        return parseHandshake(context: context)
    }

    private struct Frame {
        var fin: Bool
        var opcode: UInt8
        var payload: [UInt8]
    }

    private func nextFrame() -> Frame? {
        let start = buffer.readerIndex
        guard let header = WebSocketFrameHeader.peek(buffer) else { return nil }
        let offset = header.headerLength
        let length = Int(min(header.payloadLength, UInt64(Int.max / 2)))
        guard buffer.readableBytes >= offset + length else { return nil }
        let payload = buffer.getBytes(at: start + offset, length: length) ?? []
        buffer.moveReaderIndex(forwardBy: offset + length)
        return Frame(fin: header.fin, opcode: header.opcode, payload: payload)
    }

    private func handle(_ frame: Frame, context: ChannelHandlerContext) {
        switch frame.opcode {
        case 0x0:
            guard fragments != nil else { return }
            fragments!.append(contentsOf: frame.payload)
            if frame.fin {
                deliver(opcode: fragmentOpcode, fragments!)
                fragments = nil
            }
        case 0x1, 0x2:
            if frame.fin {
                deliver(opcode: frame.opcode, frame.payload)
            } else {
                fragmentOpcode = frame.opcode
                fragments = frame.payload
            }
        case 0x8:
            let code = frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : nil
            let reason = frame.payload.count > 2 ? String(decoding: frame.payload[2...], as: UTF8.self) : ""
            onEvent(.close(code: code, reason: reason))
            context.close(promise: nil)
        case 0x9:
            var pong = ByteBuffer()
            pong.writeBytes(frame.payload)
            context.writeAndFlush(NIOAny(WebSocketClient.encode(opcode: 0xA, payload: pong, fin: true, masked: true, rsv: 0)), promise: nil)
        case 0xA:
            onEvent(.pong(frame.payload))
        default:
            break
        }
    }

    private func deliver(opcode: UInt8, _ payload: [UInt8]) {
        if opcode == 0x1 {
            onEvent(.text(String(decoding: payload, as: UTF8.self)))
        } else {
            onEvent(.binary(payload))
        }
    }
}
