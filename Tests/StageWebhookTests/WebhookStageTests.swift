import Foundation
import GatewayCore
import GatewayTesting
import Logging
import ServiceLifecycle
import Testing

@testable import StageWebhook

@Suite("webhook: PROTOCOL.md section 8 against a local HTTP server")
struct WebhookStageTests {
    let harness = StageHarness()

    /// Builds the stage from `settings` (JSON; `url` is filled in), runs its services while
    /// `body` runs, then shuts them down as the gateway would.
    func withStage(
        _ server: WebhookTestServer?, _ settings: String = "{}", on: Set<FrameKind> = [.send], name: String = "hook",
        _ body: (WebhookStage) async throws -> Void
    ) async throws {
        let url = server?.url ?? "http://127.0.0.1:1/hook"
        var json = try #require(try JSONParser.parse(settings).objectValue)
        if json["url"] == nil { json["url"] = .string(url) }
        // Tests that are not about the timeout get a generous one: a loaded CI machine can take
        // over the default second for a first request.
        if json["timeout_ms"] == nil { json["timeout_ms"] = .int(10_000) }
        let stage = try #require(try harness.build(WebhookStage.factory, settings: JSONValue.object(json).jsonText, name: name, on: on) as? WebhookStage)
        let group = ServiceGroup(services: stage.services, logger: harness.logger)
        let runner = Task { try await group.run() }
        do {
            try await body(stage)
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await runner.value
            throw error
        }
        await group.triggerGracefulShutdown()
        try await runner.value
    }

    /// Runs the stage as the pipeline runner does: its `on_error` (and the frame kinds of the
    /// deprecated `settings.on`) are the runner's to apply. No runner deadline here: the
    /// harness clock does not move, and the stage's own HTTP bound is `timeout_ms`.
    func run(_ stage: WebhookStage, _ envelope: inout Envelope, clock: (any GatewayClock)? = nil) async throws -> StageOutcome {
        let context = StageContext(name: stage.name, logger: harness.logger, clock: clock ?? harness.clock, stores: harness.stores, presence: harness.presence)
        let entry = Pipeline.Entry(
            name: stage.name, kind: "webhook", on: stage.settings.on ?? [envelope.kind], stage: stage,
            policy: StagePolicy(onError: stage.policy.onError), context: context)
        return await entry.run(&envelope)
    }

    func send(_ stage: WebhookStage, _ body: JSONValue = "hello", clock: (any GatewayClock)? = nil) async throws -> (StageOutcome, Envelope) {
        var envelope = harness.send(body)
        let outcome = try await run(stage, &envelope, clock: clock)
        return (outcome, envelope)
    }

    // MARK: The three answers

    @Test func continueLetsTheFrameThroughAndTheRequestIsAsSpecified() async throws {
        let server = try await WebhookTestServer.start()
        try await withStage(server, name: "moderation") { (stage) async throws in
            var envelope = harness.send(["text": "hi"], from: "alice", to: .group("g_42"), clientMsgID: "m-1")
            envelope.attributes["lang"] = "en"
            let outcome = try await run(stage, &envelope)
            #expect(outcome.isContinue)
            #expect(envelope.body == ["text": "hi"])

            envelope.id = 7_230_000_000_000_000_123
            _ = try await run(stage, &envelope)
        }
        let calls = server.calls
        try #require(calls.count == 2)
        let request = calls[0].request
        #expect(request.keys == ["version", "stage", "user", "device", "frame", "attributes"])
        #expect(request["version"] == 1)
        #expect(request["stage"] == "moderation")
        #expect(request["user"] == "alice")
        #expect(request["device"] == "alice-device")
        #expect(request["frame"]?["type"] == "send")
        #expect(request["frame"]?["to"] == ["group": "g_42"])
        #expect(request["frame"]?["body"] == ["text": "hi"])
        #expect(request["frame"]?["client_msg_id"] == "m-1")
        #expect(request["attributes"] == ["lang": "en"])
        #expect(calls[0].contentType == "application/json")
        #expect(calls[0].signature == nil)
        // Once stamped, the id travels as a decimal string.
        #expect(calls[1].request["id"] == "7230000000000000123")
        await server.stop()
    }

    @Test func continueWithABodyAndAttributesRewritesTheEnvelope() async throws {
        let server = try await WebhookTestServer.start { request in
            let text = request["frame"]?["body"]?.stringValue ?? ""
            return .init(body: #"{"action":"continue","body":{"text":"\#(text.uppercased())","translated":true},"attributes":{"score":0.25,"lang":null}}"#)
        }
        try await withStage(server) { (stage) async throws in
            var envelope = harness.send("hello")
            envelope.attributes["lang"] = "en"
            #expect(try await run(stage, &envelope).isContinue)
            #expect(envelope.body == ["text": "HELLO", "translated": true])
            #expect(envelope.attributes["score"] == .number("0.25"))
            #expect(envelope.attributes["lang"] == nil)
        }
        await server.stop()
    }

    @Test func rejectAnswersTheSenderWithTheServicesCode() async throws {
        let server = try await WebhookTestServer.start { _ in .init(body: #"{"action":"reject","code":"x_spam","message":"looks like spam"}"#) }
        try await withStage(server) { (stage) async throws in
            let (outcome, envelope) = try await send(stage, "buy now")
            let error = try #require(outcome.rejection)
            #expect(error.code.rawValue == "x_spam")
            #expect(error.message == "looks like spam")
            #expect(envelope.body == "buy now")
        }
        server.answer(body: #"{"action":"reject","code":"rate_limited"}"#)
        try await withStage(server) { (stage) async throws in
            let error = try #require(try await send(stage).0.rejection)
            #expect(error.code == .rateLimited)
            #expect(error.message == "refused by hook")
            #expect(error.retryAfterMs == 1000)
        }
        await server.stop()
    }

    @Test func theSignatureIsTheHMACOfTheRawBody() async throws {
        let secret = "webhook-secret-0123456789"
        let server = try await WebhookTestServer.start(secret: secret)
        try await withStage(server, #"{"secret": "\#(secret)"}"#) { (stage) async throws in
            #expect(try await send(stage, ["text": "ünïcode \"quoted\"\n"]).0.isContinue)
        }
        let call = try #require(server.calls.first)
        #expect(call.signature?.hasPrefix("sha256=") == true)
        #expect(call.signature?.count == 7 + 64)
        #expect(call.signatureValid)
        await server.stop()
    }

    // MARK: Failures and on_error

    @Test(arguments: [
        "not json",
        "[]",
        #"{"verdict":"ok"}"#,
        #"{"action":"maybe"}"#,
        #"{"action":"continue","attributes":[1]}"#,
        #"{"action":"reject","code":"teapot","message":"no"}"#,
        #"{"action":"reject","code":"x_Bad-Code"}"#,
        #"{"action":"reject"}"#,
        #"{"action":"reject","code":"x_a","message":42}"#,
    ])
    func aMalformedAnswerAppliesOnError(answer: String) async throws {
        let server = try await WebhookTestServer.start { _ in .init(body: answer) }
        try await withStage(server) { (stage) async throws in
            let error = try #require(try await send(stage).0.rejection)
            #expect(error.code == .unavailable)
            #expect(error.retryAfterMs == 1000)
        }
        try await withStage(server, #"{"on_error": "continue"}"#) { (stage) async throws in
            let (outcome, envelope) = try await send(stage, "unchanged")
            #expect(outcome.isContinue)
            #expect(envelope.body == "unchanged")
        }
        await server.stop()
    }

    @Test(arguments: [201, 204, 302, 400, 500, 503])
    func anyOtherStatusAppliesOnError(status: Int) async throws {
        let server = try await WebhookTestServer.start { _ in .init(status: status, body: #"{"action":"continue"}"#) }
        try await withStage(server) { (stage) async throws in
            #expect(try await send(stage).0.rejection?.code == .unavailable)
        }
        try await withStage(server, #"{"on_error": "continue"}"#) { (stage) async throws in
            #expect(try await send(stage).0.isContinue)
        }
        await server.stop()
    }

    @Test(arguments: [WebhookSettings.OnError.reject, .continue])
    func noAnswerWithinTimeoutAppliesOnError(onError: WebhookSettings.OnError) async throws {
        // The first call gets its answer at once (it opens the pooled connection); later ones late.
        let server = try await WebhookTestServer.start { request in
            request["frame"]?["body"] == "warm-up" ? .init() : .init(body: #"{"action":"reject","code":"x_late"}"#, hold: true)
        }
        // 8 s: the warm-up call must be answered within it on a loaded machine too.
        try await withStage(server, #"{"timeout_ms": 8000, "on_error": "\#(onError.rawValue)"}"#) { (stage) async throws in
            #expect(try await send(stage, "warm-up").0.isContinue)
            let started = ContinuousClock.now
            let (outcome, envelope) = try await send(stage, "on time?")
            let elapsed = ContinuousClock.now - started
            #expect(elapsed >= .milliseconds(8000) && elapsed < .seconds(40), "the call took \(elapsed)")
            switch onError {
            case .reject: #expect(outcome.rejection?.code == .unavailable)
            case .continue:
                #expect(outcome.isContinue)
                #expect(envelope.body == "on time?")
            }
            // It was a timeout: the service did get the request.
            #expect(try await server.waitForCalls(2))
        }
        await server.stop()
    }

    @Test func failuresAreTellingApart() async throws {
        let server = try await WebhookTestServer.start { request in
            switch request["frame"]?["body"]?.stringValue {
            case "slow": .init(hold: true)
            case "status": .init(status: 502)
            default: .init(body: "{")
            }
        }
        // 8 s: a malformed or 502 answer slower than the timeout on a loaded machine would be
        // reported as a timeout instead.
        try await withStage(server, #"{"timeout_ms": 8000}"#) { (stage) async throws in
            let context = harness.context(name: stage.name)
            for (body, expected) in [("malformed", "malformed answer"), ("status", "answered HTTP 502"), ("slow", "no answer within timeout_ms")] {
                do throws(WebhookStage.Failure) {
                    _ = try await stage.call(harness.send(.string(body)), context: context)
                    Issue.record("\(body): no failure")
                } catch {
                    #expect(error.description.hasPrefix(expected), "\(body): \(error)")
                }
            }
        }
        await server.stop()
    }

    @Test func aRefusedConnectionAppliesOnError() async throws {
        try await withStage(nil) { (stage) async throws in
            #expect(try await send(stage).0.rejection?.code == .unavailable)
        }
        try await withStage(nil, #"{"on_error": "continue"}"#) { (stage) async throws in
            #expect(try await send(stage).0.isContinue)
        }
    }

    @Test func answersAndRequestsAreBounded() async throws {
        let big = String(repeating: "x", count: 4096)
        let server = try await WebhookTestServer.start { _ in .init(body: #"{"action":"continue","body":"\#(big)"}"#) }
        try await withStage(server, #"{"max_response_bytes": 1024}"#) { (stage) async throws in
            #expect(try await send(stage).0.rejection?.code == .unavailable)
        }
        #expect(server.callCount == 1)
        try await withStage(server, #"{"max_request_bytes": 1024}"#) { (stage) async throws in
            #expect(try await send(stage, .string(big)).0.rejection?.code == .unavailable)
        }
        // Too large to send: the service never sees it.
        #expect(server.callCount == 1)
        await server.stop()
    }

    @Test func shutdownLetsCallsInFlightFinishThenRefusesNewOnes() async throws {
        let server = try await WebhookTestServer.start { _ in .init(body: #"{"action":"continue","body":"late but fine"}"#, delayMs: 300) }
        // A generous timeout: this test is about shutdown, not about slow answers.
        let stage = try #require(
            try harness.build(WebhookStage.factory, settings: #"{"url": "\#(server.url)", "timeout_ms": 20000}"#) as? WebhookStage)
        let group = ServiceGroup(services: stage.services, logger: harness.logger)
        let runner = Task { try await group.run() }
        async let inFlight = send(stage)
        #expect(try await server.waitForCalls(1))
        // As a reload retiring this pipeline, or the node stopping, would.
        await group.triggerGracefulShutdown()
        try await runner.value
        let (outcome, envelope) = try await inFlight
        #expect(outcome.isContinue)
        #expect(envelope.body == "late but fine")
        #expect(try await send(stage).0.rejection?.code == .unavailable)
        #expect(server.callCount == 1)
        await server.stop()
    }

    // MARK: Circuit breaker

    @Test func theBreakerOpensAfterConsecutiveFailuresAndATrialClosesIt() async throws {
        let server = try await WebhookTestServer.start { _ in .init(status: 500) }
        try await withStage(server, #"{"breaker": {"failures": 3, "open_ms": 10000}}"#) { (stage) async throws in
            for _ in 0..<3 { #expect(try await send(stage).0.rejection?.code == .unavailable) }
            #expect(server.callCount == 3)
            #expect(stage.breaker.isOpen)
            // Open: on_error at once, and the service is not called.
            harness.clock.advance(by: 4000)
            for _ in 0..<10 {
                let error = try #require(try await send(stage).0.rejection)
                #expect(error.code == .unavailable)
                #expect(error.retryAfterMs == 6000)
            }
            #expect(server.callCount == 3)

            // After open_ms one trial call; it fails, so the breaker opens again.
            harness.clock.advance(by: 6000)
            #expect(try await send(stage).0.rejection?.code == .unavailable)
            #expect(server.callCount == 4)
            #expect(try await send(stage).0.rejection?.retryAfterMs == 10000)
            #expect(server.callCount == 4)

            // The service recovers: the next trial succeeds and closes the breaker.
            server.answer(body: #"{"action":"continue"}"#)
            harness.clock.advance(by: 10000)
            #expect(try await send(stage).0.isContinue)
            #expect(!stage.breaker.isOpen)
            for _ in 0..<3 { #expect(try await send(stage).0.isContinue) }
            #expect(server.callCount == 8)
        }
        await server.stop()
    }

    @Test func aSuccessResetsTheFailureCount() async throws {
        let server = try await WebhookTestServer.start { _ in .init(status: 500) }
        try await withStage(server, #"{"breaker": {"failures": 2, "open_ms": 10000}}"#) { (stage) async throws in
            _ = try await send(stage)
            server.answer(body: #"{"action":"continue"}"#)
            _ = try await send(stage)
            server.answer(status: 500)
            _ = try await send(stage)
            #expect(!stage.breaker.isOpen)
            _ = try await send(stage)
            #expect(stage.breaker.isOpen)
        }
        await server.stop()
    }

    @Test func theBreakerClosesAgainAfterOpenMsOnTheSystemClock() async throws {
        let server = try await WebhookTestServer.start { _ in .init(status: 503) }
        let clock = SystemClock()
        try await withStage(server, #"{"on_error": "continue", "breaker": {"failures": 2, "open_ms": 200}}"#) { (stage) async throws in
            _ = try await send(stage, clock: clock)
            _ = try await send(stage, clock: clock)
            #expect(server.callCount == 2)
            #expect(try await send(stage, clock: clock).0.isContinue)
            #expect(server.callCount == 2)
            server.answer(body: #"{"action":"continue","body":"via service"}"#)
            // Wait for the condition, not a fixed time: frames keep coming until one reaches
            // the service again.
            let deadline = ContinuousClock.now + .seconds(10)
            var envelope = harness.send("direct")
            while ContinuousClock.now < deadline {
                envelope = harness.send("direct")
                _ = try await run(stage, &envelope, clock: clock)
                if server.callCount > 2 { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(server.callCount == 3)
            #expect(envelope.body == "via service")
            #expect(!stage.breaker.isOpen)
        }
        await server.stop()
    }

    @Test func whileTheTrialCallRunsOtherFramesDoNotCall() async throws {
        let server = try await WebhookTestServer.start { _ in .init(status: 500) }
        try await withStage(server, #"{"timeout_ms": 20000, "breaker": {"failures": 1, "open_ms": 1000}}"#) { (stage) async throws in
            _ = try await send(stage)
            #expect(server.callCount == 1)
            // The trial's answer is held until the other frames are done (with a 1 s delay, a
            // loaded machine could finish the trial first, and the breaker was closed for them).
            server.answer { _ in .init(hold: true) }
            harness.clock.advance(by: 1000)
            async let trial = send(stage)
            #expect(try await server.waitForCalls(2))
            // Half-open with the trial in flight: the others apply on_error without calling.
            for _ in 0..<7 { #expect(try await send(stage).0.rejection?.code == .unavailable) }
            server.release()
            #expect(try await trial.0.isContinue)
            #expect(server.callCount == 2)
            #expect(!stage.breaker.isOpen)
        }
        await server.stop()
    }

    // MARK: Frame types

    @Test func settingsOnSkipsOtherFrameTypes() async throws {
        let server = try await WebhookTestServer.start()
        try await withStage(server, #"{"on": ["typing"]}"#, on: [.send, .typing]) { (stage) async throws in
            #expect(try await send(stage).0.isContinue)
            #expect(server.callCount == 0)
            var typing = harness.typing(from: "alice", to: .user("bob"))
            #expect(try await run(stage, &typing).isContinue)
        }
        #expect(server.callCount == 1)
        #expect(server.calls.first?.request["frame"] == ["type": "typing", "to": ["user": "bob"]])
        await server.stop()
    }

    @Test func settingsOnMustBeHandedToTheStageByItsEntry() throws {
        let error = #expect(throws: WebhookSettingsError.self) {
            _ = try harness.build(WebhookStage.factory, settings: #"{"url": "http://127.0.0.1:1/", "on": ["send", "typing"]}"#)
        }
        #expect(error?.description.contains("settings.on lists typing") == true)
        #expect(error?.description.contains("add 'on: [send, typing]' to the entry") == true)
    }

    // MARK: Settings

    static func failure(_ json: String) -> (path: String, message: String)? {
        do {
            _ = try JSONDecoder().decode(WebhookSettings.self, from: Data(json.utf8))
            return nil
        } catch DecodingError.dataCorrupted(let context) {
            return (context.codingPath.map(\.stringValue).joined(separator: "."), context.debugDescription)
        } catch DecodingError.keyNotFound(let key, let context) {
            return ((context.codingPath + [key]).map(\.stringValue).joined(separator: "."), "missing")
        } catch {
            return ("?", "\(error)")
        }
    }

    @Test(arguments: [
        (#"{}"#, "url", "missing"),
        (#"{"url": "ftp://example.com/"}"#, "url", "must be an http:// or https:// URL with a host (was 'ftp://example.com/')"),
        (#"{"url": "http://h/", "timeout_ms": 0}"#, "timeout_ms", "must be 1...60000 (was 0)"),
        (#"{"url": "http://h/", "on_error": "drop"}"#, "on_error", "must be reject or continue (was 'drop')"),
        (#"{"url": "http://h/", "secret": ""}"#, "secret", "must not be empty (leave the key out for unsigned requests)"),
        (#"{"url": "http://h/", "on": []}"#, "on", "may list send, typing, read, presence.subscribe (at least one)"),
        (#"{"url": "http://h/", "on": ["sync"]}"#, "on", "may list send, typing, read, presence.subscribe (at least one)"),
        (#"{"url": "http://h/", "breaker": {"failures": 0}}"#, "breaker.failures", "must be 1...1000 (was 0)"),
        (#"{"url": "http://h/", "breaker": {"open_ms": 0}}"#, "breaker.open_ms", "must be 1...3600000 (was 0)"),
        (#"{"url": "http://h/", "max_response_bytes": 10}"#, "max_response_bytes", "must be 1024...16777216 (was 10)"),
    ])
    func invalidSettingsNameTheirKey(json: String, path: String, message: String) {
        let failure = Self.failure(json)
        #expect(failure?.path == path)
        #expect(failure?.message == message)
    }

    @Test func defaultsAndRedaction() throws {
        let settings = try JSONDecoder().decode(WebhookSettings.self, from: Data(#"{"url": "https://hooks.example/x", "secret": "0123456789abcdef"}"#.utf8))
        #expect(settings.timeoutMs == 1000)
        #expect(settings.onError == .reject)
        #expect(settings.on == nil)
        #expect(settings.breaker == .init(failures: 5, openMs: 10000))
        let built = try WebhookStage.factory.make(
            StageBuildContext(
                name: "hook", kind: "webhook", settings: JSONSettingsSource(#"{"url": "https://hooks.example/x", "secret": "0123456789abcdef"}"#),
                logger: harness.logger, clock: harness.clock, stores: harness.stores, node: .init()))
        #expect(built.settings["secret"] == "<redacted>")
        #expect(built.settings["timeout_ms"] == 1000)
    }
}
