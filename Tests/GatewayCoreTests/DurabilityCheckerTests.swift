import GatewayCore
import GatewayTesting
import Testing

/// `DurabilityChecker` counts each RELIABILITY.md fault it is shown, and nothing on a clean run.
@Suite("Durability checker")
struct DurabilityCheckerTests {
    static func message(_ id: UInt64, seq: Int, from: String, to: Address, cid: String) -> JSONObject {
        ["id": .string(String(id)), "seq": .int(seq), "from": .string(from), "to": to.json, "client_msg_id": .string(cid), "body": "x"]
    }

    /// alice sends a1 and a2 to bob, acked as 100 and 101; both inboxes hold both.
    static func cleanRun() -> (DurabilityChecker, [String: [JSONObject]]) {
        let log = DurabilityChecker()
        for (cid, id) in [("a1", "100"), ("a2", "101")] {
            log.sent(sender: "alice", clientMsgID: cid, to: .user("bob"), recipients: ["alice", "bob"])
            log.acked(sender: "alice", clientMsgID: cid, id: id)
        }
        let inbox = [
            message(100, seq: 1, from: "alice", to: .user("bob"), cid: "a1"),
            message(101, seq: 2, from: "alice", to: .user("bob"), cid: "a2"),
        ]
        return (log, ["alice": inbox, "bob": inbox])
    }

    @Test func cleanRunCountsNothing() {
        let (log, inboxes) = Self.cleanRun()
        let report = log.verify(inboxes: inboxes)
        #expect(report.counts.isClean, "\(report)")
        #expect(report.storedMessages == 2)
        #expect(report.ackedOperations == 2)
        #expect(log.ackedCount == 2)
        #expect(log.unacked(sender: "alice").isEmpty)
    }

    /// `whenAcked` runs inside the `acked` call that reaches its count (a kill lands there, not
    /// in a task woken later), once, and at once when the count was already reached; a resent
    /// operation acked again does not count twice.
    @Test func whenAckedRunsInsideTheAckThatReachesItsCount() {
        let log = DurabilityChecker()
        let fired = Observed<[String]>([])
        log.whenAcked(2) { fired.update { $0.append("two") } }
        for cid in ["a1", "a2", "a3"] { log.sent(sender: "alice", clientMsgID: cid, to: .user("bob"), recipients: ["alice", "bob"]) }
        log.acked(sender: "alice", clientMsgID: "a1", id: "100")
        log.sent(sender: "alice", clientMsgID: "a1", to: .user("bob"), recipients: ["alice", "bob"])
        log.acked(sender: "alice", clientMsgID: "a1", id: "100")
        #expect(fired.value.isEmpty, "one operation acked twice is one ack")
        log.acked(sender: "alice", clientMsgID: "a2", id: "101")
        #expect(fired.value == ["two"], "run before acked returned")
        log.acked(sender: "alice", clientMsgID: "a3", id: "102")
        #expect(fired.value == ["two"], "once")
        log.whenAcked(1) { fired.update { $0.append("one") } }
        #expect(fired.value == ["two", "one"], "a count already reached runs at once")
    }

    @Test func lostWhenAckedButInNoInbox() {
        let (log, _) = Self.cleanRun()
        let inbox = [Self.message(100, seq: 1, from: "alice", to: .user("bob"), cid: "a1")]
        let report = log.verify(inboxes: ["alice": inbox, "bob": inbox])
        #expect(report.counts.lost == 1)
        #expect(report.counts.torn == 0)
    }

    @Test func tornWhenMissingFromOneRecipient() {
        let (log, inboxes) = Self.cleanRun()
        var torn = inboxes
        torn["bob"] = [Self.message(100, seq: 1, from: "alice", to: .user("bob"), cid: "a1")]
        let report = log.verify(inboxes: torn)
        #expect(report.counts.torn == 1)
        #expect(report.counts.lost == 0)
    }

    @Test func duplicatedUnderTwoIdsOrTwiceInAnInbox() {
        let (log, inboxes) = Self.cleanRun()
        var twice = inboxes
        twice["bob"]!.append(Self.message(101, seq: 3, from: "alice", to: .user("bob"), cid: "a2"))
        #expect(log.verify(inboxes: twice).counts.duplicated == 1)
        var twoIDs = inboxes
        for user in ["alice", "bob"] { twoIDs[user]!.append(Self.message(102, seq: 3, from: "alice", to: .user("bob"), cid: "a2")) }
        #expect(log.verify(inboxes: twoIDs).counts.duplicated == 1)
    }

    @Test func unexpectedWhenNeverSent() {
        let (log, inboxes) = Self.cleanRun()
        var extra = inboxes
        extra["carol"] = [Self.message(200, seq: 1, from: "mallory", to: .user("carol"), cid: "m1")]
        let report = log.verify(inboxes: extra)
        #expect(report.counts.unexpected == 1)
        #expect(report.counts.torn == 0)
    }

    @Test func failedButPresentOnlyWhenEveryAttemptFailed() {
        let (log, inboxes) = Self.cleanRun()
        log.sent(sender: "alice", clientMsgID: "a3", to: .user("bob"), recipients: ["alice", "bob"])
        log.failed(sender: "alice", clientMsgID: "a3", code: "unavailable")
        var stored = inboxes
        for user in ["alice", "bob"] { stored[user]!.append(Self.message(103, seq: 3, from: "alice", to: .user("bob"), cid: "a3")) }
        #expect(log.verify(inboxes: stored).counts.failedButPresent == 1)
        // An attempt with no answer may have stored it.
        log.sent(sender: "alice", clientMsgID: "a3", to: .user("bob"), recipients: ["alice", "bob"])
        #expect(log.verify(inboxes: stored).counts.isClean)
        #expect(log.unacked(sender: "alice").map(\.clientMsgID) == ["a3"])
    }

    @Test func orderAndGaps() {
        let (log, inboxes) = Self.cleanRun()
        var swapped = inboxes
        swapped["bob"] = [
            Self.message(101, seq: 1, from: "alice", to: .user("bob"), cid: "a2"),
            Self.message(100, seq: 2, from: "alice", to: .user("bob"), cid: "a1"),
        ]
        #expect(log.verify(inboxes: swapped).counts.order == 1)
        var gap = inboxes
        gap["bob"] = [
            Self.message(100, seq: 1, from: "alice", to: .user("bob"), cid: "a1"),
            Self.message(101, seq: 3, from: "alice", to: .user("bob"), cid: "a2"),
        ]
        #expect(log.verify(inboxes: gap).counts.gaps == 1)
    }

    @Test func ackedUnderTwoDifferentIdsIsDuplicated() {
        let (log, inboxes) = Self.cleanRun()
        log.sent(sender: "alice", clientMsgID: "a1", to: .user("bob"), recipients: ["alice", "bob"])
        log.acked(sender: "alice", clientMsgID: "a1", id: "999")
        #expect(log.verify(inboxes: inboxes).counts.duplicated == 1)
    }
}
