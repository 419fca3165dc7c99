import GatewayTesting
import Foundation
import GatewayCore
import Testing

/// How a test's group is served: write fanout (the default threshold of 1000) or
/// fanout-on-read (`fanout_on_read_above: 2`, so a group of 4 is above it).
enum FanoutMode: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case write
    case read

    var testDescription: String { rawValue }

    /// The pipeline YAML for `TestGateway.start(pipeline:)`.
    var pipeline: String {
        let fanout = self == .read ? "\n    settings: { fanout_on_read_above: 2 }" : ""
        return """
              - stage: auth
                settings: { hs256_secret: "\(TestGateway.secret)", leeway_s: 30 }
              - stage: id
              - stage: persist
              - stage: fanout\(fanout)
            """
    }
}

/// Groups end to end (issue 3): membership rules, every device of every member converging, and
/// the same through fanout-on-read.
@Suite("Group chat")
struct GroupTests {
    static let members = ["u0", "u1", "u2", "u3"]

    static func createGroup(_ gateway: TestGateway, id: String, owner: String, members: [String]) async throws {
        let body: JSONValue = ["id": .string(id), "name": "team", "members": .array(members.map { .string($0) })]
        let answer = try await gateway.request(.POST, "/v1/groups", token: try await gateway.token(owner), body: body.jsonText)
        #expect(answer.status == 201, "create group: \(answer.body)")
    }

    // MARK: Convergence

    /// What one device saw live: `message` frames and the acks of its own sends.
    struct Seen: Sendable {
        var messages: [JSONObject] = []
        var acks: [JSONObject] = []
        var ids: Set<String> { Set(messages.compactMap { $0["id"]?.stringValue } + acks.compactMap { $0["id"]?.stringValue }) }
    }

    /// Reads a WebSocket until `count` distinct ids arrived (as messages or acks).
    static func receive(_ stream: WebSocketStream, count: Int) async throws -> Seen {
        var seen = Seen()
        while seen.ids.count < count {
            let frame = try await stream.steadyFrame(timeout: 30)
            switch frame["type"]?.stringValue {
            case "message": seen.messages.append(frame)
            case "ack": seen.acks.append(frame)
            default: Issue.record("unexpected frame \(frame)")
            }
        }
        return seen
    }

    /// Polls a long-poll session until `count` distinct message frames arrived.
    static func receive(_ client: LongPollClient, count: Int) async throws -> Seen {
        var seen = Seen()
        let deadline = Date().addingTimeInterval(60)
        while seen.ids.count < count, Date() < deadline {
            for frame in try await client.poll(timeoutMs: 2000) {
                if frame["type"]?.stringValue == "message" { seen.messages.append(frame) } else { Issue.record("unexpected frame \(frame)") }
            }
        }
        #expect(seen.ids.count == count, "long-poll \(client.session): \(seen.ids.count) of \(count)")
        return seen
    }

    /// The whole inbox through `sync` frames on a WebSocket, in pages of 50.
    static func sync(_ stream: WebSocketStream, since start: Int64 = 0) async throws -> [JSONObject] {
        var since = start
        var all: [JSONObject] = []
        while true {
            stream.send(["type": "sync", "since": .int(since), "limit": 50, "ref": .string("s\(since)")])
            let reply = try #require(try await stream.steadyFrames(until: "sync").last)
            all += (reply["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
            since = reply["next"]?.int64Value ?? since
            if reply["more"] != true { return all }
        }
    }

    /// The whole inbox through a `sync` frame over long-poll.
    static func sync(_ client: LongPollClient) async throws -> [JSONObject] {
        let replies = try await client.send([["type": "sync", "since": 0, "limit": 1000]])
        let reply = try #require(replies.first)
        #expect(reply["type"]?.stringValue == "sync" && reply["more"] == false)
        return (reply["messages"]?.arrayValue ?? []).compactMap(\.objectValue)
    }

    @Test(arguments: FanoutMode.allCases, StoreBackend.allCases)
    func everyDeviceOfEveryMemberConverges(mode: FanoutMode, backend: StoreBackend) async throws {
        let gateway = try await TestGateway.start(pipeline: mode.pipeline, backend: backend)
        try await Self.createGroup(gateway, id: "g_team", owner: "u0", members: Self.members)
        var websockets: [String: WebSocketStream] = [:]
        var longPolls: [String: LongPollClient] = [:]
        for user in Self.members {
            websockets[user] = try await gateway.connect(user).0
            longPolls[user] = try await LongPollClient.open(gateway, user: user, device: "lp-\(user)")
        }
        // 200 messages from 3 senders at once: u0 and u2 over their WebSocket, u1 over long-poll.
        let plan: [String: Int] = ["u0": 67, "u1": 67, "u2": 66]
        let total = 200
        func frames(_ user: String) -> [JSONValue] {
            (0..<plan[user]!).map { sendFrame(to: .group("g_team"), body: ["n": .int($0)], id: "\(user)-\($0)") }
        }
        let ws = websockets
        let lp = longPolls
        let (live, lpAcks) = try await withThrowingTaskGroup(of: (String, Seen).self) { group in
            for user in ["u0", "u2"] {
                group.addTask {
                    for frame in frames(user) { ws[user]!.send(frame) }
                    return ("ws-\(user)", try await Self.receive(ws[user]!, count: total))
                }
            }
            group.addTask {
                var seen = Seen()
                let all = frames("u1")
                for start in stride(from: 0, to: all.count, by: 10) {
                    seen.acks += try await lp["u1"]!.send(Array(all[start..<min(start + 10, all.count)]))
                }
                return ("acks-u1", seen)
            }
            for user in ["u1", "u3"] {
                group.addTask { ("ws-\(user)", try await Self.receive(ws[user]!, count: total)) }
            }
            for user in Self.members {
                // u1's own long-poll session gets acks, not message frames, for what it sent.
                let count = total - (user == "u1" ? plan["u1"]! : 0)
                group.addTask { ("lp-\(user)", try await Self.receive(lp[user]!, count: count)) }
            }
            var live: [String: Seen] = [:]
            var acks = Seen()
            for try await (name, seen) in group {
                if name == "acks-u1" { acks = seen } else { live[name] = seen }
            }
            return (live, acks)
        }

        // Every send acked; the acks name the 200 ids.
        var ackSeq: [String: (user: String, seq: Int64)] = [:]
        for (name, seen) in live where name.hasPrefix("ws-") {
            for ack in seen.acks { ackSeq[ack["id"]!.stringValue!] = (String(name.dropFirst(3)), ack["seq"]!.int64Value!) }
        }
        for ack in lpAcks.acks {
            #expect(ack["type"]?.stringValue == "ack", "\(ack)")
            if let id = ack["id"]?.stringValue, let seq = ack["seq"]?.int64Value { ackSeq[id] = ("u1", seq) }
        }
        #expect(ackSeq.count == total)
        let allIDs = Set(ackSeq.keys)

        // Live: each device saw every message once (its own sends as acks).
        for (name, seen) in live {
            let user = String(name.split(separator: "-")[1])
            let ids = seen.messages.compactMap { $0["id"]?.stringValue }
            #expect(Set(ids).count == ids.count, "\(name): a live frame twice")
            let expected = name == "lp-u1" ? allIDs.subtracting(lpAcks.acks.compactMap { $0["id"]?.stringValue }) : allIDs
            #expect(Set(ids).union(seen.acks.compactMap { $0["id"]?.stringValue }) == expected, "\(name)")
            for frame in seen.messages {
                #expect(frame["to"] == ["group": "g_team"])
                // Write fanout: every frame has the member's seq. Fanout-on-read: only the
                // sender's other devices (whose inbox has it at once) get a seq.
                let hasSeq = frame["seq"]?.int64Value != nil
                #expect(hasSeq == (mode == .write || frame["from"]?.stringValue == user), "\(name): \(frame)")
            }
        }

        // After sync: the same 200, once each, seq 1...200, in id order, on every device.
        var orders: [[String]] = []
        for user in Self.members {
            for (device, inbox) in [("ws", try await Self.sync(websockets[user]!)), ("lp", try await Self.sync(longPolls[user]!))] {
                let ids = inbox.compactMap { $0["id"]?.stringValue }
                #expect(inbox.map { $0["seq"]?.int64Value } == (1...Int64(total)).map { $0 }, "\(user) \(device): seqs")
                #expect(Set(ids) == allIDs && ids.count == total, "\(user) \(device): set")
                #expect(ids == ids.sorted { UInt64($0)! < UInt64($1)! }, "\(user) \(device): not in id order")
                orders.append(ids)
                // Each ack's seq is where the sender's inbox holds the message.
                for message in inbox {
                    if let id = message["id"]?.stringValue, let ack = ackSeq[id], ack.user == user {
                        #expect(message["seq"]?.int64Value == ack.seq, "\(user): ack seq of \(id)")
                    }
                }
            }
        }
        #expect(Set(orders.map { $0.joined(separator: ",") }).count == 1, "conversation order differs between devices")

        // History agrees: the group, newest first.
        websockets["u3"]!.send(["type": "history", "with": ["group": "g_team"], "limit": 500])
        let history = try await websockets["u3"]!.steadyFrame()
        #expect(history["messages"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == orders.first?.reversed())
        for stream in websockets.values { stream.close() }
        await gateway.stop()
    }

    @Test(arguments: FanoutMode.allCases, StoreBackend.allCases)
    func aDeviceOfflineDuring100MessagesSyncsThemAllOnReturn(mode: FanoutMode, backend: StoreBackend) async throws {
        let gateway = try await TestGateway.start(pipeline: mode.pipeline, backend: backend)
        try await Self.createGroup(gateway, id: "g_team", owner: "u0", members: Self.members)
        let (u0, _) = try await gateway.connect("u0")
        var (u3, hello) = try await gateway.connect("u3")
        #expect(hello["inbox_seq"]?.int64Value == 0)

        func send(_ range: Range<Int>) async throws -> [String] {
            for n in range { u0.send(sendFrame(to: .group("g_team"), body: .int(n), id: "m\(n)")) }
            var ids: [String] = []
            for _ in range {
                let ack = try await u0.steadyFrame()
                #expect(ack["type"]?.stringValue == "ack")
                ids.append(try #require(ack["id"]?.stringValue))
            }
            return ids
        }
        // 5 messages while online: seen live, then synced (cur_max_seq = 5).
        let first = try await send(0..<5)
        for id in first { #expect(try await u3.steadyFrame()["id"]?.stringValue == id) }
        #expect(try await Self.sync(u3).count == 5)
        u3.close()

        // 100 while offline (u1 posts some over REST so two senders interleave).
        var offline = try await send(5..<55)
        let bot = try await gateway.token("u1")
        for n in 55..<105 {
            let answer = try await gateway.request(.POST, "/v1/messages", token: bot, body: sendFrame(to: .group("g_team"), body: .int(n), id: "r\(n)").jsonText)
            #expect(answer.status == 200)
            offline.append(try #require(answer.json?["id"]?.stringValue))
        }

        (u3, hello) = try await gateway.connect("u3")
        #expect(hello["inbox_seq"]?.int64Value == 105, "hello tells how far behind the device is")
        let missed = try await Self.sync(u3, since: 5)
        #expect(missed.map { $0["seq"]?.int64Value } == (6...105).map { Int64($0) })
        #expect(missed.compactMap { $0["id"]?.stringValue } == offline)
        u0.close()
        u3.close()
        await gateway.stop()
    }

    // MARK: Membership

    @Test(arguments: FanoutMode.allCases, StoreBackend.allCases)
    func onlyMembersTakePartAndOnlyTheOwnerChangesMembers(mode: FanoutMode, backend: StoreBackend) async throws {
        let gateway = try await TestGateway.start(pipeline: mode.pipeline, backend: backend)
        try await Self.createGroup(gateway, id: "g_team", owner: "u0", members: Self.members)
        let outsider = try await gateway.token("eve")
        let member = try await gateway.token("u1")
        let owner = try await gateway.token("u0")

        // A non-member cannot send, read the history or see the group.
        let (eve, _) = try await gateway.connect("eve")
        eve.send(sendFrame(to: .group("g_team"), body: "hi", id: "e1", ref: "s"))
        let refused = try await eve.steadyFrame()
        #expect(refused["type"]?.stringValue == "error" && refused["code"]?.stringValue == "forbidden" && refused["ref"]?.stringValue == "s")
        eve.send(["type": "history", "with": ["group": "g_team"], "ref": "h"])
        #expect(try await eve.steadyFrame()["code"]?.stringValue == "forbidden")
        let restHistory = try await gateway.request(.GET, "/v1/conversations/group:g_team/messages", token: outsider)
        #expect(restHistory.status == 403)
        #expect(restHistory.json?["error"]?["code"]?.stringValue == "forbidden")
        let restSend = try await gateway.request(.POST, "/v1/messages", token: outsider, body: sendFrame(to: .group("g_team"), body: "x", id: "e2").jsonText)
        #expect(restSend.status == 403)
        #expect(try await gateway.request(.GET, "/v1/groups/g_team", token: outsider).status == 404, "existence must not leak")
        #expect(try await gateway.request(.GET, "/v1/groups/g_none", token: outsider).status == 404)
        #expect(try await gateway.request(.GET, "/v1/groups/g_team", token: member).status == 200)
        #expect(try await gateway.request(.GET, "/v1/groups", token: outsider).json?["groups"]?.arrayValue?.isEmpty == true)
        let mine = try await gateway.request(.GET, "/v1/groups", token: member)
        #expect(mine.json?["groups"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["g_team"])

        // Only the owner changes members: 403 for a member, 404 for an outsider.
        let change = #"{"add":["eve"]}"#
        #expect(try await gateway.request(.POST, "/v1/groups/g_team/members", token: member, body: change).status == 403)
        #expect(try await gateway.request(.POST, "/v1/groups/g_team/members", token: outsider, body: change).status == 404)
        #expect(try await gateway.request(.GET, "/v1/groups/g_team", token: owner).json?["members"]?.arrayValue?.count == 4)

        // u3 has not read the group when it is removed: it keeps what was sent before, gets
        // nothing after, and may no longer send or read the history.
        let (u0, _) = try await gateway.connect("u0")
        let (u3, _) = try await gateway.connect("u3")
        u0.send(sendFrame(to: .group("g_team"), body: "before", id: "b1"))
        let before = try #require(try await u0.steadyFrame()["id"]?.stringValue)
        #expect(try await u3.steadyFrame()["id"]?.stringValue == before)
        let removed = try await gateway.request(.POST, "/v1/groups/g_team/members", token: owner, body: #"{"remove":["u3"],"add":["eve"]}"#)
        #expect(removed.status == 200)
        #expect(removed.json?["members"]?.arrayValue?.compactMap(\.stringValue) == ["u0", "u1", "u2", "eve"])
        u0.send(sendFrame(to: .group("g_team"), body: "after", id: "a1"))
        let after = try #require(try await u0.steadyFrame()["id"]?.stringValue)
        // A 1:1 marker sent after it: live delivery to a session is in commit order, so had u3
        // received the group message, it would come before the marker.
        u0.send(sendFrame(to: .user("u3"), body: "marker", id: "k1"))
        _ = try await u0.steadyFrame()
        let next = try await u3.steadyFrame()
        #expect(next["body"] == "marker", "removed member received \(next)")
        let inbox = try await Self.sync(u3)
        let inboxIDs = inbox.compactMap { $0["id"]?.stringValue }
        #expect(inboxIDs.contains(before))
        #expect(!inboxIDs.contains(after))
        #expect(inbox.map { $0["seq"]?.int64Value } == [1, 2])
        u3.send(sendFrame(to: .group("g_team"), body: "still here?", id: "u3-1"))
        #expect(try await u3.steadyFrame()["code"]?.stringValue == "forbidden")
        #expect(try await gateway.request(.GET, "/v1/groups/g_team", token: try await gateway.token("u3")).status == 404)

        // eve, added later, starts at the newest message: "after", not "before".
        let eveInbox = try await Self.sync(eve)
        #expect(eveInbox.compactMap { $0["id"]?.stringValue } == [after])
        for stream in [eve, u0, u3] { stream.close() }
        await gateway.stop()
    }
}

extension WebSocketStream {
    /// `nextFrame`, except that a timeout reported before `timeout` seconds have passed is
    /// retried: `next(timeout:)` leaves each call's timer armed after an event arrived, and such
    /// a stale timer (of the handshake's wait, say) fails whatever wait is current when it fires,
    /// which happens when a loaded machine makes a test outlast it.
    func steadyFrame(timeout: Double = 30) async throws -> JSONObject {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            do {
                return try await nextFrame(timeout: max(0.01, deadline.timeIntervalSinceNow))
            } catch let error as Timeout where error.description.hasPrefix("no WebSocket event") && Date() < deadline {
                continue
            }
        }
    }

    /// `frames(until:)` on `steadyFrame`.
    func steadyFrames(until type: String, timeout: Double = 30) async throws -> [JSONObject] {
        var seen: [JSONObject] = []
        while true {
            let frame = try await steadyFrame(timeout: timeout)
            seen.append(frame)
            if frame["type"]?.stringValue == type { return seen }
        }
    }
}
