import GatewayCore
import GatewayTesting
import Testing
@testable import StagePush

/// RFC 8291 Appendix A's subscription keys: valid lengths.
private let p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
private let auth = "BTBZMqHH6r4Tts7J_aSIgg"

@Suite("Push: target registration and the queue's store semantics")
struct RegistrationTests {

    @Test(
        "bad targets are refused with a message naming the field",
        arguments: [
            (#"{"platform": "sms"}"#, "unknown platform"),
            (#"{"url": "https://x"}"#, "'platform'"),
            (#"{"platform": "webhook", "url": "ftp://x/y"}"#, "'url'"),
            (#"{"platform": "webhook", "url": "https://"}"#, "with a host"),
            (#"{"platform": "webpush", "endpoint": "http://push.example/x", "keys": {"p256dh": "\#(p256dh)", "auth": "\#(auth)"}}"#, "https://"),
            (#"{"platform": "webpush", "endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "\#(auth)"}}"#, "keys.p256dh"),
            (#"{"platform": "webpush", "endpoint": "https://push.example/x", "keys": {"p256dh": "\#(p256dh)", "auth": "AAAA"}}"#, "keys.auth"),
            (#"{"platform": "webpush", "endpoint": "https://push.example/x", "keys": {"p256dh": "\#(p256dh)", "auth": "!!!!!!!!!!!!!!!!!!!!!!"}}"#, "keys.auth"),
            (#"{"platform": "webpush", "endpoint": "https://push.example/x"}"#, "'keys'"),
            (#"{"platform": "apns", "token": "xyz", "topic": "com.example"}"#, "hex"),
            (#"{"platform": "apns", "token": "\#(String(repeating: "a", count: 64))"}"#, "'topic'"),
            (#"{"platform": "apns", "token": "\#(String(repeating: "a", count: 64))", "topic": "com.example", "sandbox": "yes"}"#, "'sandbox'"),
            (#"{"platform": "fcm", "token": ""}"#, "'token'"),
            (#"{"platform": "fcm", "token": "has space"}"#, "'token'"),
            (#"{"platform": "fcm", "token": "abc", "device": "bad device"}"#, "'device'"),
        ])
    func refused(body: String, mention: String) throws {
        let value = try JSONParser.parse(body)
        let error = #expect(throws: GatewayError.self) { try PushRegistration.parse(value, allowHTTP: false) }
        #expect(error?.code == .badFrame)
        #expect(error?.message.contains(mention) == true, "\(error?.message ?? "")")
    }

    @Test("valid targets are normalised; plain http endpoints only with allow_http")
    func accepted() throws {
        let webpush = try PushRegistration.parse(
            try JSONParser.parse(#"{"platform": "webpush", "endpoint": "http://127.0.0.1:1/x", "keys": {"p256dh": "\#(p256dh)", "auth": "\#(auth)"}, "expirationTime": null}"#),
            allowHTTP: true)
        #expect(webpush.address == "http://127.0.0.1:1/x" && webpush.fields["keys"]?["auth"] == .string(auth))
        let apns = try PushRegistration.parse(
            try JSONParser.parse(#"{"platform": "apns", "token": "\#(String(repeating: "AB", count: 32))", "topic": "com.example.app", "device": "phone-1"}"#),
            allowHTTP: false)
        #expect(apns.address == String(repeating: "ab", count: 32) && apns.device == "phone-1" && apns.fields["sandbox"] == false)
        let webhook = try PushRegistration.parse(try JSONParser.parse(#"{"platform": "webhook", "url": "http://hooks.example/p"}"#), allowHTTP: false)
        #expect(webhook.address == "http://hooks.example/p")
    }

    @Test("hosts of URLs", arguments: [
        ("https://Hooks.Example.com/p?q", "hooks.example.com"), ("http://user:pw@10.0.0.1:8080/x", "10.0.0.1"),
        ("https://[::1]:9/x", "::1"), ("https:///x", nil),
    ])
    func hosts(url: String, host: String?) {
        #expect(PushRegistration.host(of: url) == host)
    }

    @Test("providers.webhook.allowed_hosts refuses other hosts at registration and at send time")
    func allowedHosts() async throws {
        let fixture = try PushFixture.make(
            settings: #"{"providers": {"webhook": {"allowed_hosts": ["hooks.example.com"]}}, "allow_http": true}"#)
        let allowed = try PushRegistration.parse(try JSONParser.parse(#"{"platform": "webhook", "url": "https://HOOKS.example.com/a"}"#), allowHTTP: false)
        try fixture.stage.check(allowed)
        let other = try PushRegistration.parse(try JSONParser.parse(#"{"platform": "webhook", "url": "http://127.0.0.1:9090/admin"}"#), allowHTTP: false)
        let error = #expect(throws: GatewayError.self) { try fixture.stage.check(other) }
        #expect(error?.code == .badFrame && error?.message.contains("allowed_hosts") == true)
        // A target stored before the list changed is not sent to.
        try await fixture.register("bob", ["platform": "webhook", "url": "http://127.0.0.1:9/x"])
        try await fixture.send("m", id: 1)
        #expect(await fixture.stage.runDue() == 1)
        #expect(await fixture.stage.pushFigures().failed == 1)
        await fixture.close()
    }

    static func target(_ id: String, user: String, address: String) -> PushTarget {
        PushTarget(id: id, user: user, device: "d", platform: .webhook, address: address, fields: ["url": .string(address)], createdAt: 1)
    }

    @Test("the same target twice is one; at most max_devices_per_user; delete only your own", arguments: PushBackend.allCases)
    func deviceStore(backend: PushBackend) async throws {
        let fixture = try await PushFixture.make(settings: webhookSettings(), backend: backend)
        let devices = fixture.devices
        let first = try await devices.registerTarget(Self.target("a", user: "bob", address: "https://h/1"), maxPerUser: 2)
        #expect(first.created)
        let again = try await devices.registerTarget(Self.target("b", user: "bob", address: "https://h/1"), maxPerUser: 2)
        #expect(!again.created && again.target.id == "a")
        _ = try await devices.registerTarget(Self.target("c", user: "bob", address: "https://h/2"), maxPerUser: 2)
        let error = await #expect(throws: GatewayError.self) {
            try await devices.registerTarget(Self.target("d", user: "bob", address: "https://h/3"), maxPerUser: 2)
        }
        #expect(error?.code == .conflict)
        // Another user may register the same address: it is their own target.
        #expect(try await devices.registerTarget(Self.target("e", user: "carol", address: "https://h/1"), maxPerUser: 2).created)
        #expect(try await devices.targets(of: "bob").map(\.id) == ["a", "c"])
        #expect(try await devices.removeTarget(id: "a", user: "carol") == false)
        #expect(try await devices.removeTarget(id: "a", user: "bob") == true)
        #expect(try await devices.target(id: "a") == nil)
        await fixture.close()
    }

    @Test("a claimed job is leased: not claimed again, not merged into, not cancelled, until the lease ends", arguments: PushBackend.allCases)
    func leases(backend: PushBackend) async throws {
        let fixture = try await PushFixture.make(settings: webhookSettings(), backend: backend)
        let target = try await fixture.devices.registerTarget(Self.target("t", user: "bob", address: "https://h/1"), maxPerUser: 5).target
        let queue = fixture.queue
        func item(_ id: UInt64, seq: Int64, due: Int64) -> PushQueueItem {
            PushQueueItem(
                user: "bob", targetID: target.id, collapseKey: "u:alice|bob", due: due, seq: seq, messageID: id, entry: Array(#"{"id":"\#(id)"}"#.utf8), body: nil)
        }
        try await queue.enqueue([item(1, seq: 1, due: 100)], collapseMs: 0, maxListed: 20)
        #expect(try await queue.claimDue(now: 99, limit: 10, leaseMs: 1000).isEmpty)
        let claimed = try await queue.claimDue(now: 100, limit: 10, leaseMs: 1000)
        #expect(claimed.map(\.count) == [1])
        #expect(try await queue.claimDue(now: 500, limit: 10, leaseMs: 1000).isEmpty)
        // A message arriving now starts a new job rather than joining the claimed one.
        try await queue.enqueue([item(2, seq: 2, due: 500)], collapseMs: 0, maxListed: 20)
        #expect(try await queue.queuedCount() == 2)
        #expect(try await queue.cancel(user: "bob", confirmation: .delivered(upToSeq: 5), now: 500) == 1)
        // The worker died: after the lease the first job is due again.
        let reclaimed = try await queue.claimDue(now: 1100, limit: 10, leaseMs: 1000)
        #expect(reclaimed.map(\.id) == [claimed[0].id])
        try await queue.reschedule(claimed[0].id, due: 2000, attempts: 1)
        #expect(try await queue.nextDue() == 2000)
        let retried = try await queue.claimDue(now: 2000, limit: 10, leaseMs: 1000)
        #expect(retried.first?.attempts == 1)
        try await queue.complete(claimed[0].id)
        #expect(try await queue.queuedCount() == 0)
        await fixture.close()
    }

    @Test("max_listed bounds the entries; count goes on", arguments: PushBackend.allCases)
    func maxListed(backend: PushBackend) async throws {
        let fixture = try await PushFixture.make(settings: webhookSettings(), backend: backend)
        let target = try await fixture.devices.registerTarget(Self.target("t", user: "bob", address: "https://h/1"), maxPerUser: 5).target
        let items = (1...5).map { n in
            PushQueueItem(
                user: "bob", targetID: target.id, collapseKey: "k", due: 0, seq: Int64(n), messageID: UInt64(n), entry: Array("\(n)".utf8), body: nil)
        }
        try await fixture.queue.enqueue(items, collapseMs: 0, maxListed: 3)
        let job = try #require(try await fixture.queue.claimDue(now: 0, limit: 10, leaseMs: 10).first)
        #expect(job.count == 5 && job.maxSeq == 5 && String(decoding: job.messages, as: UTF8.self) == "[1,2,3]")
        await fixture.close()
    }
}
