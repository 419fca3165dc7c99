import AsyncHTTPClient
import GatewayTesting
import Foundation
import GatewayCore
import NIOCore
import Synchronization
import Testing

/// RELIABILITY.md "malformed JSON, wrong types, unknown `type`, 10 MB string, 10,000-deep
/// nesting": a bounded frame fuzzer over authenticated sessions of the real executable.
/// Random mutations of valid frames go to the gateway for `CHATGATE_FUZZ_SECONDS` (60 by
/// default); afterwards the process is healthy (`/healthz`, a normal send), its RSS is flat and
/// nothing that was refused is stored. `CHATGATE_FUZZ_SEED` replays a run.
@Suite("Frame fuzzer", .serialized)
struct FrameFuzzTests {
    static let users = ["fa", "fb", "fc"]
    static let workers = 3

    /// What the fuzzer saw; shared by the workers.
    struct Tally: Sendable {
        var frames = 0
        var replies: [String: Int] = [:]
        var closes: [UInt16: Int] = [:]
        var reconnects = 0
        /// client_msg_ids acked (from the ack itself).
        var acked: Set<String> = []
        /// client_msg_ids of frames answered with an error (ref and id intact in the text).
        var refused: Set<String> = []
        /// client_msg_ids of frames with no answer before their connection closed.
        var unanswered: Set<String> = []
    }

    @Test(.enabled(if: HeavyTests.enabled, HeavyTests.reason), .timeLimit(.minutes(10)))
    func mutatedFramesNeverCrashLeakOrStore() async throws {
        let seconds = ProcessInfo.processInfo.environment["CHATGATE_FUZZ_SECONDS"].flatMap(Double.init) ?? 60
        let seed = ProcessInfo.processInfo.environment["CHATGATE_FUZZ_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        let target = try await FuzzTarget.start(name: "fuzz", extra: "limits: { max_frame_bytes: 65536 }")
        defer { target.cleanUp() }
        let port = target.server.publicPort
        // A group of all fuzz users, so group sends are valid too.
        var create = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/groups")
        create.method = .POST
        create.headers.add(name: "Authorization", value: "Bearer \(try await target.token("fa"))")
        create.body = .bytes(ByteBuffer(string: "{\"id\":\"g_fuzz\",\"name\":\"fuzz\",\"members\":[\"fb\",\"fc\"]}"))
        #expect(try await HTTPClient.shared.execute(create, timeout: .seconds(10)).status.code == 201)

        let tally = Shared(Tally())
        let started = Date()
        let deadline = started.addingTimeInterval(seconds)
        let warmedUp = started.addingTimeInterval(seconds / 4)
        let rssAtWarmUp = Shared<Int?>(nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<Self.workers {
                group.addTask {
                    var random = SplitMix(seed: seed &+ UInt64(worker))
                    try await Self.fuzz(worker: worker, port: port, target: target, until: deadline, random: &random, tally: tally)
                }
            }
            group.addTask {
                // Samples the child's RSS once the first quarter of the (real-time) run has
                // passed, caches warm: a moment of the run, not a synchronization.
                let wait = warmedUp.timeIntervalSinceNow
                if wait > 0 { try await Task.sleep(for: .milliseconds(Int(wait * 1000))) }
                let rss = target.rssBytes()
                rssAtWarmUp.withLock { $0 = rss }
            }
            try await group.waitForAll()
        }
        let result = tally.withLock { $0 }
        print("fuzz: seed \(seed), \(result.frames) frames in \(Int(seconds)) s, replies \(result.replies), closes \(result.closes), reconnects \(result.reconnects), acked \(result.acked.count)")
        #expect(result.frames > 0)

        // Healthy: the process runs, /healthz answers, a normal send is acked and delivered.
        #expect(target.server.isRunning, "the gateway died: \(target.server.output.suffix(2000))")
        var health = HTTPClientRequest(url: "http://127.0.0.1:\(target.server.adminPort)/healthz")
        health.method = .GET
        #expect(try await HTTPClient.shared.execute(health, timeout: .seconds(10)).status.code == 200)
        let (alice, status, _) = try await WebSocketStream.connect(port: port, headers: [("Authorization", "Bearer \(try await target.token("alice"))")])
        #expect(status == 101)
        let (bob, _, _) = try await WebSocketStream.connect(port: port, headers: [("Authorization", "Bearer \(try await target.token("bob"))")])
        _ = try await alice.nextFrame()
        _ = try await bob.nextFrame()
        alice.send(sendFrame(to: .user("bob"), body: "after the storm", id: "healthy"))
        #expect(try await ReliabilityTests.next("ack", on: alice)["client_msg_id"]?.stringValue == "healthy")
        #expect(try await ReliabilityTests.next("message", on: bob)["client_msg_id"]?.stringValue == "healthy")

        // Memory flat: the end within a bound of the warmed-up figure.
        if let before = rssAtWarmUp.withLock({ $0 }), let after = target.rssBytes() {
            print("fuzz: child RSS \(before >> 20) MiB after warm-up, \(after >> 20) MiB at the end")
            #expect(after - before < 48 << 20, "RSS grew \((after - before) >> 20) MiB")
        } else {
            Issue.record("could not read the child's RSS from /proc")
        }

        // Nothing refused is stored; everything stored was acked or unanswered.
        var stored: [String] = []
        for user in Self.users {
            for message in try await target.inbox(user) where Self.users.contains(message["from"]?.stringValue ?? "") {
                stored.append(message["client_msg_id"]?.stringValue ?? "")
            }
        }
        let storedSet = Set(stored)
        let refusedButStored = storedSet.intersection(result.refused.subtracting(result.acked))
        #expect(refusedButStored.isEmpty, "refused yet stored: \(refusedButStored.sorted().prefix(10))")
        let unexplained = storedSet.subtracting(result.acked).subtracting(result.unanswered)
        #expect(unexplained.isEmpty, "stored but never acked: \(unexplained.sorted().prefix(10))")
        let status2 = await target.server.terminate()
        #expect(status2 == 0, "graceful shutdown after the fuzz: \(target.server.output.suffix(1000))")
    }

    /// One worker: a session of its own user, reopened whenever the gateway closes it.
    static func fuzz(worker: Int, port: Int, target: FuzzTarget, until deadline: Date, random: inout SplitMix, tally: Shared<Tally>) async throws {
        let user = users[worker % users.count]
        let token = try await target.token(user)
        var n = 0
        while Date() < deadline {
            let (stream, status, _) = try await WebSocketStream.connect(port: port, headers: [("Authorization", "Bearer \(token)")])
            try #require(status == 101, "the gateway refused a fresh session")
            #expect(try await stream.nextFrame()["type"]?.stringValue == "hello")
            var open = true
            while open, Date() < deadline {
                n += 1
                let ref = "w\(worker)r\(n)"
                let cid = "w\(worker)c\(n)"
                let valid = validFrame(user: user, ref: ref, cid: cid, random: &random)
                let (opcode, payload) = mutate(valid, ref: ref, cid: cid, random: &random)
                let intact = payload.withUnsafeReadableBytes { bytes in
                    let text = String(decoding: bytes, as: UTF8.self)
                    return text.contains("\"\(ref)\"") && text.contains("\"\(cid)\"")
                }
                stream.raw.sendFrame(opcode: opcode, payload: payload)
                // A ping behind it: its pong says every answer to the fuzz frame has arrived.
                let probe = "p\(worker)-\(n)"
                stream.send(["type": "ping", "ref": .string(probe)])
                tally.withLock { $0.frames += 1 }
                var answered = false
                while true {
                    guard let event = try? await stream.next(timeout: 30) else {
                        Issue.record("no answer within 30 s (worker \(worker), frame \(n))")
                        open = false
                        break
                    }
                    switch event {
                    case .text(let text):
                        guard let frame = (try? JSONParser.parse(text))?.objectValue else {
                            Issue.record("the gateway sent something that is not a JSON object: \(text.prefix(200))")
                            continue
                        }
                        let type = frame["type"]?.stringValue ?? "?"
                        if type == "pong", frame["ref"]?.stringValue == probe { break }
                        tally.withLock { t in
                            t.replies[type == "error" ? "error:" + (frame["code"]?.stringValue ?? "?") : type, default: 0] += 1
                            if type == "ack", let acked = frame["client_msg_id"]?.stringValue { t.acked.insert(acked) }
                            if type == "error", intact, frame["ref"]?.stringValue == ref { t.refused.insert(cid) }
                        }
                        if frame["ref"]?.stringValue == ref { answered = true }
                        continue
                    case .close(let code, _):
                        tally.withLock { t in
                            t.closes[code ?? 0, default: 0] += 1
                            if !answered { t.unanswered.insert(cid) }
                        }
                        open = false
                    case .disconnected:
                        tally.withLock { t in if !answered { t.unanswered.insert(cid) } }
                        open = false
                    default:
                        continue
                    }
                    break
                }
            }
            stream.raw.disconnect()
            if Date() < deadline { tally.withLock { $0.reconnects += 1 } }
        }
    }

    /// A valid client frame of a random kind.
    static func validFrame(user: String, ref: String, cid: String, random: inout SplitMix) -> String {
        let peer = users.filter { $0 != user }[Int(random.next() % 2)]
        switch random.next() % 9 {
        case 0, 1, 2: return "{\"type\":\"send\",\"ref\":\"\(ref)\",\"to\":{\"user\":\"\(peer)\"},\"client_msg_id\":\"\(cid)\",\"body\":{\"text\":\"hi\",\"n\":\(random.next() % 1000)}}"
        case 3: return "{\"type\":\"send\",\"ref\":\"\(ref)\",\"to\":{\"group\":\"g_fuzz\"},\"client_msg_id\":\"\(cid)\",\"body\":\"group \(cid)\"}"
        case 4: return "{\"type\":\"sync\",\"ref\":\"\(ref)\",\"since\":\(random.next() % 50),\"limit\":10,\"client_msg_id\":\"\(cid)\"}"
        case 5: return "{\"type\":\"history\",\"ref\":\"\(ref)\",\"with\":{\"user\":\"\(peer)\"},\"limit\":5,\"client_msg_id\":\"\(cid)\"}"
        case 6: return "{\"type\":\"typing\",\"ref\":\"\(ref)\",\"to\":{\"user\":\"\(peer)\"},\"client_msg_id\":\"\(cid)\"}"
        case 7: return "{\"type\":\"presence\",\"ref\":\"\(ref)\",\"users\":[\"\(peer)\"],\"client_msg_id\":\"\(cid)\"}"
        default: return "{\"type\":\"ping\",\"ref\":\"\(ref)\",\"client_msg_id\":\"\(cid)\"}"
        }
    }

    /// One random mutation of `text`: the opcode and payload to send.
    static func mutate(_ text: String, ref: String, cid: String, random: inout SplitMix) -> (UInt8, ByteBuffer) {
        var bytes = Array(text.utf8)
        switch random.next() % 16 {
        case 0:
            break  // valid as is
        case 1, 2:
            // Flip a few bytes (may leave invalid UTF-8: close 1007).
            for _ in 0...(random.next() % 3) {
                let index = Int(random.next() % UInt64(bytes.count))
                bytes[index] ^= UInt8(truncatingIfNeeded: 1 << (random.next() % 8))
            }
        case 3:
            bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
        case 4:
            // A value of the wrong type in place of a field's value.
            let wrong = ["1", "-1", "true", "null", "[]", "{}", "\"\"", "1e309", "[[[1]]]", "\"\\u0000\""][Int(random.next() % 10)]
            let fields = ["\"to\":", "\"body\":", "\"client_msg_id\":", "\"since\":", "\"limit\":", "\"type\":", "\"with\":", "\"users\":"]
            let field = fields[Int(random.next() % UInt64(fields.count))]
            if let range = text.range(of: field) {
                bytes = Array((String(text[..<range.upperBound]) + wrong + "," + "\"x\":" + String(text[range.upperBound...])).utf8)
            }
        case 5:
            // Deep nesting in the body (or as the whole frame).
            let depth = Int(random.next() % 20_000) + 1
            let nested = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
            bytes = random.next() % 2 == 0 ? Array(nested.utf8) : Array(text.replacingOccurrences(of: "\"body\":", with: "\"body\":\(nested),\"b\":").utf8)
        case 6:
            // Huge and odd numbers.
            let number = ["99999999999999999999999999999", "-9223372036854775809", "1e400", "-0", "0.0000001e-400", "18446744073709551616", "1" + String(repeating: "0", count: 5000)][Int(random.next() % 7)]
            bytes = Array(text.replacingOccurrences(of: "\"limit\":", with: "\"limit\":\(number),\"l\":").replacingOccurrences(of: "\"since\":", with: "\"since\":\(number),\"s\":").replacingOccurrences(of: "\"n\":", with: "\"n\":\(number),\"m\":").utf8)
        case 7:
            // Invalid UTF-8 inside a string: close 1007.
            let invalid: [[UInt8]] = [[0xC3, 0x28], [0xED, 0xA0, 0x80], [0xFF], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]]
            if let index = bytes.firstIndex(of: UInt8(ascii: "h")) { bytes.insert(contentsOf: invalid[Int(random.next() % 5)], at: index) }
        case 8:
            bytes = Array(text.replacingOccurrences(of: "\"type\":\"", with: "\"type\":\"x").utf8)
        case 9:
            // Over max_frame_bytes: close 1009.
            bytes = Array(text.replacingOccurrences(of: "\"body\":", with: "\"body\":\"\(String(repeating: "z", count: 70_000))\",\"b\":").utf8)
            if bytes.count < 65536 { bytes += Array(repeating: UInt8(ascii: " "), count: 70_000) }
        case 10:
            return (0x2, ByteBuffer(bytes: bytes))  // binary
        case 11:
            // Duplicate keys, and escapes.
            bytes = Array(text.replacingOccurrences(of: "{\"type\":", with: "{\"type\":\"ping\",\"type\":").replacingOccurrences(of: "hi", with: "h\\ud800i\\u0000").utf8)
        case 12:
            bytes = (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        case 13:
            // A long string just under the limit.
            bytes = Array(text.replacingOccurrences(of: "\"body\":", with: "\"body\":\"\(String(repeating: "é", count: 30_000))\",\"b\":").utf8)
        case 14:
            // A frame spoofing its sender or missing its id.
            bytes = Array(text.replacingOccurrences(of: "\"to\":", with: "\"from\":\"someone\",\"to\":").replacingOccurrences(of: "\"client_msg_id\":\"\(cid)\",", with: "").utf8)
        default:
            // Arrays of frames, or a frame in a string.
            bytes = Array((random.next() % 2 == 0 ? "[\(text),\(text)]" : "\"\(text.replacingOccurrences(of: "\"", with: "\\\""))\"").utf8)
        }
        return (0x1, ByteBuffer(bytes: bytes))
    }
}

/// A small seeded generator (SplitMix64), so a failing run can be replayed by its seed.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A value behind a `Mutex`, shareable by reference between tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
