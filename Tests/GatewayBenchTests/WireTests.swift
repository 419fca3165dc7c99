import GatewayCore
import NIOCore
import Testing

@testable import GatewayBench

@Suite("generator wire format")
struct WireTests {
    struct Malformed: Error {}

    /// Unmasks a client frame the way a server does, returning its payload.
    static func payload(of frame: ByteBuffer) throws -> (opcode: UInt8, text: String) {
        var frame = frame
        guard let b0 = frame.readInteger(as: UInt8.self), let b1 = frame.readInteger(as: UInt8.self) else { throw Malformed() }
        #expect(b0 & 0x80 != 0, "FIN")
        #expect(b1 & 0x80 != 0, "client frames are masked")
        var length = Int(b1 & 0x7F)
        if length == 126 {
            guard let extended = frame.readInteger(as: UInt16.self) else { throw Malformed() }
            length = Int(extended)
        }
        guard let key = frame.readBytes(length: 4), let masked = frame.readBytes(length: length) else { throw Malformed() }
        #expect(frame.readableBytes == 0)
        let bytes = masked.enumerated().map { $0.element ^ key[$0.offset & 3] }
        return (b0 & 0x0F, String(decoding: bytes, as: UTF8.self))
    }

    @Test(arguments: [100, 64, 1000, 60_000])
    func sendFrameCarriesStampsAndAPaddedBody(bodyBytes: Int) throws {
        let frame = ClientFrames.send(
            allocator: ByteBufferAllocator(), to: ClientFrames.address(user: "bob"), number: 42, nanos: 123_456_789_012, bodyBytes: bodyBytes)
        let (opcode, text) = try Self.payload(of: frame)
        #expect(opcode == 1)
        let object = try #require(try JSONParser.parse(text).objectValue)
        #expect(object["type"] == "send")
        #expect(object["to"] == ["user": "bob"])
        #expect(object["client_msg_id"] == "b42-123456789012")
        let body = try #require(object["body"])
        #expect(body["bench_t"] == .number("123456789012"))
        #expect(body["bench_n"] == 42)
        #expect(body.jsonText.utf8.count == bodyBytes)
    }

    @Test func pingAndSyncFrames() throws {
        let ping = try Self.payload(of: ClientFrames.ping(allocator: ByteBufferAllocator(), nanos: 77))
        #expect(ping.text == #"{"type":"ping","ref":"77"}"#)
        let sync = try Self.payload(of: ClientFrames.sync(allocator: ByteBufferAllocator(), since: 12))
        #expect(sync.text == #"{"type":"sync","since":12,"limit":1000}"#)
    }

    @Test func scannerReadsServerFrames() {
        let message = #"{"type":"message","id":"7","seq":12,"from":"a","to":{"user":"b"},"body":{"bench_t":999,"bench_n":5,"pad":"x"},"ts":1,"client_msg_id":"b5-999"}"#
        let ack = #"{"type":"ack","ref":"r","id":"7","seq":3,"ts":1,"client_msg_id":"b5-999"}"#
        Array(message.utf8).withUnsafeBytes { bytes in
            #expect(FrameScanner.kind(bytes) == .message)
            #expect(FrameScanner.integer(after: FrameScanner.Keys.seq, in: bytes)?.value == 12)
            #expect(FrameScanner.integer(after: FrameScanner.Keys.benchTime, in: bytes)?.value == 999)
            #expect(FrameScanner.integer(after: FrameScanner.Keys.benchNumber, in: bytes)?.value == 5)
            #expect(FrameScanner.find(Array("nothere".utf8), in: bytes, from: 0) == nil)
        }
        Array(ack.utf8).withUnsafeBytes { bytes in
            #expect(FrameScanner.kind(bytes) == .ack)
            #expect(FrameScanner.string(after: FrameScanner.Keys.clientMsgID, in: bytes) == "5-999")
        }
        for (text, kind) in [
            (#"{"type":"hello","user":"u"}"#, FrameScanner.Kind.hello), (#"{"type":"error","code":"x"}"#, .error),
            (#"{"type":"sync","messages":[]}"#, .sync), (#"{"type":"pong"}"#, .pong), (#"{"ref":"r","type":"ack"}"#, .ack), ("[]", .other),
        ] {
            Array(text.utf8).withUnsafeBytes { #expect(FrameScanner.kind($0) == kind, "\(text)") }
        }
    }

    @Test func baselineReadsTheUserFromTheTokenSubject() {
        // {"alg":"HS256"} . {"sub":"alice","exp":1} . signature
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.c2ln"
        #expect(BaselineServer.user(authorization: "Bearer \(token)") == "alice")
        #expect(BaselineServer.user(authorization: "Basic abc") == nil)
        #expect(BaselineServer.user(token: "not-a-jwt") == nil)
    }

    @Test func seqTrackingFindsGapsAndDuplicates() {
        let client = BenchClient(index: 0, user: "u", token: "t", role: .receiver)
        #expect(client.accept(seq: 1))
        #expect(!client.accept(seq: 1))
        #expect(client.accept(seq: 3))
        #expect(client.hasGap)
        #expect(client.lastSeq == 1)
        #expect(client.accept(seq: 2))
        #expect(client.lastSeq == 3)
        #expect(!client.hasGap)
    }

    @Test func bitSet() {
        var set = BitSet()
        let first = set.insert(3)
        let again = set.insert(3)
        let far = set.insert(200)
        #expect(first && !again && far)
        #expect(set.contains(3) && set.contains(200) && !set.contains(4))
        #expect(set.members == [3, 200])
        #expect(set.count == 2)
    }

    @Test func procFilesAreParsed() throws {
        #expect(ProcessSample.parseRSS(status: "Name:\tx\nVmRSS:\t   2048 kB\nVmSwap: 0 kB\n") == 2 * 1024 * 1024)
        // The command name may hold spaces and parentheses.
        let stat = "1234 (chat gate (x)) S 1 1 1 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 100 1000 200"
        #expect(ProcessSample.parseCPU(stat: stat, ticksPerSecond: 100) == 3.0)
        let own = try #require(ProcessSample.readSelf())
        #expect(own.rssBytes > 0)
    }

    @Test func serverReadinessLines() {
        let line = "2026-11-29T16:09:27+0000 info chatgate: admin=127.0.0.1:34045 public=127.0.0.1:38049 [chatgate] listening"
        #expect(ServerUnderTest.gatewayPorts(line)?.public == 38049)
        #expect(ServerUnderTest.gatewayPorts(line)?.admin == 34045)
        #expect(ServerUnderTest.gatewayPorts("info chatgate: [HummingbirdCore] Server started and listening on 127.0.0.1:1") == nil)
        #expect(ServerUnderTest.baselinePort("baseline listening port=4321")?.public == 4321)
    }
}
