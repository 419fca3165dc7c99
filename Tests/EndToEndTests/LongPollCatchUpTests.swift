import Foundation
import GatewayConfig
import GatewayCore
import GatewayTesting
import Logging
import NIOCore
import NIOPosix
import Testing

@testable import GatewayServer
@testable import chatgate

/// A re-homed long-poll session's catch-up (`LongPollSession.finishCatchUp`), on a real gateway
/// with an in-memory store: the inbox loaded from the client's seq comes first, then the live
/// frames that arrived meanwhile, without the message frames the inbox already gave; later live
/// messages at or below that seq are dropped too; a backlog over the queue ends the session.
@Suite("Long-poll: a re-homed session's catch-up", .timeLimit(.minutes(1)))
struct LongPollCatchUpTests {
    static func registry() throws -> (LongPollRegistry, Gateway) {
        let yaml = TestGateway.yaml(directory: FileManager.default.temporaryDirectory, extra: "limits: { outbound_queue: 8 }", pipeline: nil)
        let configuration = try ConfigLoader.load(text: yaml, file: "config.yaml", environment: [:])
        let logger = Logger(label: "catch-up", factory: { _ in SwiftLogNoOpLogHandler() })
        let stores = Stores(InMemoryStore())
        let hub = SessionHub(maxSessionsPerUser: 8)
        let pipeline = try Pipeline.build(
            configuration.pipeline, registry: try BuiltInStages.registry(), logger: logger, clock: SystemClock(), stores: stores,
            presence: hub, node: configuration.node)
        let gateway = Gateway(configuration: configuration, stores: stores, hub: hub, pipeline: pipeline, clock: SystemClock(), logger: logger)
        let registry = LongPollRegistry(
            gateway: gateway, settings: configuration.longpoll, admission: ConnectionAdmission(maxTotal: 100, maxPerAddress: 100))
        return (registry, gateway)
    }

    static func message(_ seq: Int64) -> ByteBuffer {
        ServerFrame.message(
            StoredMessage(id: UInt64(1000 + seq), from: "alice", to: .user("bob"), timestamp: 1, clientMsgID: "m\(seq)", body: Array("\"m\(seq)\"".utf8)),
            seq: seq)
    }

    static func describe(_ frames: [ByteBuffer]) -> [String] {
        frames.map { frame in ServerFrame.messageSeq(frame).map { "seq \($0)" } ?? "other" }
    }

    @Test func loadedInboxThenNewLiveFramesWithoutDuplicates() async throws {
        let (registry, gateway) = try Self.registry()
        let (connection, session) = try registry.open(
            identity: Identity(user: "bob", expiresAt: nil), device: "web", remoteAddress: nil, sessionID: "node-x-1-1", catchingUp: true)
        #expect(session.id == "node-x-1-1", "the session keeps its id")
        #expect(registry.holds("node-x-1-1"))
        // Live while the inbox loads: seq 3 (also in the inbox), seq 5 (not), a non-message frame.
        #expect(connection.send(Self.message(3)))
        #expect(connection.send(Self.message(5)))
        #expect(connection.send(ServerFrame.pong(ref: nil)))
        #expect(connection.finishCatchUp(loaded: [Self.message(3), Self.message(4)], through: 4))
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let first = await connection.poll(timeoutMs: 1000, now: SystemClock().nowMillis(), eventLoop: loop)
        #expect(Self.describe(first) == ["seq 3", "seq 4", "seq 5", "other"])
        // A late live copy of a loaded message is dropped; a new one goes through.
        #expect(connection.send(Self.message(4)))
        #expect(connection.send(Self.message(6)))
        let second = await connection.poll(timeoutMs: 1000, now: SystemClock().nowMillis(), eventLoop: loop, ack: 5)
        #expect(Self.describe(second) == ["seq 6"])
        #expect(connection.confirmedSeq == 5, "the poll's ack is what the client confirmed")
        // Without ack, a new poll confirms the answer before it.
        #expect(connection.send(Self.message(7)))
        _ = await connection.poll(timeoutMs: 1000, now: SystemClock().nowMillis(), eventLoop: loop)
        #expect(connection.confirmedSeq == 6)
        registry.stop()
        #expect(registry.count == 0)
        await gateway.drain()
    }

    @Test func aBacklogOverTheQueueIsRefused() async throws {
        let (registry, gateway) = try Self.registry()
        let (connection, _) = try registry.open(
            identity: Identity(user: "bob", expiresAt: nil), device: "web", remoteAddress: nil, sessionID: "node-x-1-2", catchingUp: true)
        #expect(!connection.finishCatchUp(loaded: (1...9).map(Self.message), through: 9), "9 frames, a queue of 8")
        registry.remove(connection)
        #expect(registry.count == 0)
        await gateway.drain()
    }
}
