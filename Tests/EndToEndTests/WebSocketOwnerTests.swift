import GatewayCore
import GatewayTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOWebSocket
import Testing

@testable import GatewayServer
@testable import chatgate

/// The WebSocket connection's owner (`WebSocketSessionHandler`) on an `EmbeddedChannel`, with a
/// real gateway behind it: one outbound bound over every frame not yet written to the socket,
/// and outboxes that belong to the application.
@Suite("WebSocket connection owner", .timeLimit(.minutes(2)))
struct WebSocketOwnerTests {
    /// An owner on an embedded channel and its connection. An `EmbeddedEventLoop` must be used
    /// from one thread: each test uses it with no suspension between its first and last use.
    struct Rig {
        let channel: EmbeddedChannel
        let handler: WebSocketSessionHandler
        let connection: WebSocketConnection

        init(_ gateway: TestGateway) throws {
            let application = gateway.bootstrap.application
            let environment = WebSocketEnvironment(
                gateway: application.gateway, outboxes: LoopOutboxes(group: MultiThreadedEventLoopGroup.singleton),
                deadlines: application.tokenDeadlines, sessionless: application.sessionless, logger: Logger(label: "owner-test"))
            handler = WebSocketSessionHandler(environment: environment, mode: .gateway(identity: nil, address: nil))
            channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(handler)
            connection = try #require(handler.connection)
        }

        /// The text frames written so far, then the close code if a close frame followed.
        func written() throws -> (texts: [String], close: UInt16?) {
            var texts: [String] = []
            while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
                var data = frame.unmaskedData
                switch frame.opcode {
                case .text: texts.append(data.readString(length: data.readableBytes) ?? "")
                case .connectionClose: return (texts, data.readInteger(as: UInt16.self))
                default: break
                }
            }
            return (texts, nil)
        }

        func finish() {
            _ = try? channel.finish()
        }
    }

    static func frame(_ n: Int) -> ByteBuffer {
        ByteBuffer(string: "{\"type\":\"n\",\"n\":\(n)}")
    }

    @Test func framesHeldForHelloCountAgainstTheOneOutboundBound() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { outbound_queue: 4 }")
        let before = gateway.gateway.stats.slowConsumers.load(ordering: .relaxed)
        do {
            let rig = try Rig(gateway)
            for n in 0..<4 { #expect(rig.connection.send(Self.frame(n))) }
            // Crossed to the loop, and held there: no `hello` has gone out yet. Still counted.
            rig.channel.embeddedEventLoop.run()
            #expect(rig.connection.queuedFrames == 4)
            #expect(try rig.written().texts.isEmpty)
            #expect(!rig.connection.send(Self.frame(4)), "a fifth frame is past outbound_queue")
            rig.channel.embeddedEventLoop.run()
            #expect(try rig.written().close == CloseCode.slowConsumer.rawValue)
            #expect(gateway.gateway.stats.slowConsumers.load(ordering: .relaxed) == before + 1)
            // Closing dropped the held frames, and uncounted them.
            #expect(rig.connection.queuedFrames == 0)
            rig.finish()
        }
        await gateway.stop()
    }

    @Test func framesTheSocketCannotTakeShareTheBoundAndABurstToAReaderIsWritten() async throws {
        let gateway = try await TestGateway.start(extra: "limits: { outbound_queue: 4 }")
        do {
            // Everything on the embedded loop runs on this thread, with no suspension between.
            let rig = try Rig(gateway)
            #expect(rig.connection.send(Self.frame(-1)), "a delivery before hello, held for it")
            #expect(rig.connection.post(ByteBuffer(string: "{\"type\":\"hello\"}"), order: .hello))
            rig.channel.embeddedEventLoop.run()
            #expect(try rig.written().texts == ["{\"type\":\"hello\"}", "{\"type\":\"n\",\"n\":-1}"])
            #expect(rig.connection.queuedFrames == 0)

            // A burst past the bound to a client that reads only crosses to the loop: written.
            for n in 0..<10 { #expect(rig.connection.send(Self.frame(n))) }
            rig.channel.embeddedEventLoop.run()
            #expect(try rig.written().texts.count == 10)
            #expect(rig.connection.queuedFrames == 0)

            rig.channel.isWritable = false
            for n in 0..<3 { #expect(rig.connection.send(Self.frame(n))) }
            rig.channel.embeddedEventLoop.run()
            #expect(try rig.written().texts.isEmpty, "the socket takes nothing")
            #expect(rig.connection.queuedFrames == 3)

            rig.channel.isWritable = true
            rig.channel.pipeline.fireChannelWritabilityChanged()
            #expect(try rig.written().texts == (0..<3).map { "{\"type\":\"n\",\"n\":\($0)}" })
            #expect(rig.connection.queuedFrames == 0)

            // Four waiting for the socket fill the bound: the fifth closes (4008), not the ninth.
            rig.channel.isWritable = false
            for n in 0..<4 { #expect(rig.connection.send(Self.frame(n))) }
            rig.channel.embeddedEventLoop.run()
            #expect(!rig.connection.send(Self.frame(4)))
            rig.channel.embeddedEventLoop.run()
            #expect(try rig.written().close == CloseCode.slowConsumer.rawValue)
            #expect(rig.connection.queuedFrames == 0)
            rig.finish()
        }
        // `stop` checks that the connection and its owner are gone.
        await gateway.stop()
    }

    @Test func outboxesBelongToTheirApplicationOnePerLoop() {
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let first = LoopOutboxes(group: group)
        let second = LoopOutboxes(group: group)
        #expect(first.outbox(for: loop) === first.outbox(for: loop))
        #expect(first.outbox(for: loop) !== second.outbox(for: loop))
        #expect(first.outbox(for: loop).eventLoop === loop)
    }
}
