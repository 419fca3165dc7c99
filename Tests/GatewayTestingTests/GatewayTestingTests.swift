import AsyncHTTPClient
import GatewayCore
import GatewayTesting
import NIOCore
import NIOPosix
import Testing

/// The helpers stage authors test with: each does what its documentation says, including how it
/// fails.
@Suite("GatewayTesting helpers", .timeLimit(.minutes(1)))
struct GatewayTestingTests {
    struct ShoutSettings: Decodable, Sendable {
        var suffix: String
        var level: Int

        enum CodingKeys: String, CodingKey {
            case suffix
            case level
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            suffix = try c.decodeIfPresent(String.self, forKey: .suffix) ?? "!"
            level = try c.decodeIfPresent(Int.self, forKey: .level) ?? 1
            guard (1...3).contains(level) else {
                throw DecodingError.dataCorruptedError(forKey: .level, in: c, debugDescription: "must be 1...3 (was \(level))")
            }
        }
    }

    @Test func stageSettingsDecodeAsTheConfigLoaderDoes() throws {
        #expect(try StageSettings.decode(ShoutSettings.self, from: #"{"suffix": "?"}"#).suffix == "?")
        #expect(try StageSettings.decode(ShoutSettings.self, from: "level: 2\n").level == 2)
        #expect(StageSettings.problems(ShoutSettings.self, in: "{}").isEmpty)
        // Unknown keys are errors, as in a config file (Foundation's JSONDecoder lets them pass);
        // invalid values are reported at their key.
        #expect(StageSettings.problems(ShoutSettings.self, in: #"{"level": 9}"#).map(\.description) == ["settings.level: must be 1...3 (was 9)"])
        #expect(StageSettings.problems(ShoutSettings.self, in: #"{"sufix": "?"}"#).map(\.description) == [
            "settings.sufix: unknown key 'sufix' (did you mean 'suffix'?)"
        ])
        #expect(StageSettings.problems(ShoutSettings.self, in: "{ level: ").count == 1)
    }

    @Test func aLocalServiceRecordsRequestsAndAnswersAsTold() async throws {
        let service = try await LocalHTTPService.start { request in
            .init(status: request.path.hasPrefix("/missing") ? 404 : 201, headers: ["X-Seen": request.method], body: "ok")
        }
        var request = HTTPClientRequest(url: service.baseURL + "/hook?x=1")
        request.method = .POST
        request.headers.add(name: "X-Token", value: "abc")
        request.body = .bytes(ByteBuffer(string: #"{"a": 1}"#))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        #expect(response.status.code == 201)
        #expect(response.headers["x-seen"].first == "POST")
        #expect(String(buffer: try await response.body.collect(upTo: 1024)) == "ok")
        #expect(await service.waitForRequests(1))
        let seen = try #require(service.requests.first)
        #expect(seen.method == "POST" && seen.path == "/hook?x=1" && seen.headers["x-token"] == "abc")
        #expect(seen.json == ["a": 1])
        // A held answer waits for release().
        service.answer { _ in .init(status: 200, hold: true) }
        let held = Task { try await HTTPClient.shared.execute(HTTPClientRequest(url: service.baseURL + "/slow"), timeout: .seconds(10)) }
        #expect(await service.waitForRequests(2))
        service.release()
        #expect(try await held.value.status.code == 200)
        // A wait that is never satisfied ends at its bound with false.
        #expect(await service.waitForRequests(3, timeout: .milliseconds(50)) == false)
        await service.stop()
    }

    @Test func anObservedValueWakesItsWaiters() async {
        let value = Observed(0)
        let waiter = Task { await value.wait { $0 >= 2 } }
        value.update { $0 += 1 }
        value.update { $0 += 1 }
        #expect(await waiter.value)
        #expect(await value.wait { $0 == 2 })
        #expect(await value.wait(timeout: .milliseconds(20)) { $0 == 3 } == false)
    }

    @Test func theTeardownCheckNamesWhatIsLeft() async {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let open = Observed(1)
        // Closed by a task on an event loop: the check lets the loops run it before it looks again.
        loop.execute { open.update { $0 = 0 } }
        #expect(await TeardownCheck.leftovers { ["connections": open.value] }.isEmpty)
        let left = await TeardownCheck.leftovers(within: .milliseconds(30)) { ["connections": 0, "sessions": 2] }
        #expect(left == ["sessions": 2])
        #expect(await TeardownCheck.wait(within: .milliseconds(30)) { false } == false)
    }
}
