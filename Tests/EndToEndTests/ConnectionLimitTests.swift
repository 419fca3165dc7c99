import GatewayTesting
import Foundation
import GatewayCore
import NIOCore
import NIOPosix
import Testing

@testable import chatgate

/// RELIABILITY.md: too many connections, slowloris handshakes.
@Suite("Connection limits")
struct ConnectionLimitTests {
    @Test func tooManyFromOneAddressOrUserAreRefusedBeforeTheUpgrade() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { max_connections_per_ip: 3, max_sessions_per_user: 2 }")
        let (first, _) = try await gateway.connect("alice")
        _ = try await gateway.connect("alice")
        // A third session for alice: 429 before the upgrade.
        let token = try await gateway.token("alice")
        let third = try await WebSocketStream.connect(port: gateway.port, headers: [("Authorization", "Bearer \(token)")])
        #expect(third.status == 429)
        // Every socket holds a place from accept to close: wait for the refused one's to return.
        let application = gateway.bootstrap.application
        #expect(await TeardownCheck.wait { application.lifecycleCounts["admitted"] == 2 })
        // A third connection from this address (bob): fine; a fourth: 429.
        _ = try await gateway.connect("bob")
        // The fourth socket from this address is answered 429 before anything is read.
        let fourth = try await RawHTTP.answerBeforeAnyRequest(port: gateway.port)
        #expect(fourth.hasPrefix("HTTP/1.1 429"), "\(fourth)")
        // Existing sessions are unaffected and the health check answers.
        first.send(["type": "ping", "ref": "still"])
        #expect(try await first.nextFrame()["ref"]?.stringValue == "still")
        #expect(try await gateway.request(.GET, "/healthz", admin: true).status == 200)
        await gateway.stop()
    }

    @Test func aSlowHandshakeIsClosed() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { handshake_timeout_ms: 300 }")
        let closed = ClosedFlag()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(closed) } }
            .connect(host: "127.0.0.1", port: gateway.port).get()
        // One byte of a request line, then nothing. (On a loaded machine the deadline may pass
        // before the byte is written: the write then fails, and the close is what counts.)
        try? await channel.writeAndFlush(ByteBuffer(string: "G")).get()
        try await channel.closeFuture.get()
        #expect(closed.value)
        await gateway.stop()
    }

    final class ClosedFlag: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        // Written on the event loop, read after the channel closed.
        var value = false
        func channelInactive(context: ChannelHandlerContext) {
            value = true
            context.fireChannelInactive()
        }
    }
}
