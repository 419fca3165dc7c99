import GatewayCore
import GatewayTesting
import Testing

@testable import chatgate

/// A graceful shutdown ends every WebSocket connection, not only sessions: one still waiting for
/// its `auth` frame and one on the echo endpoint are closed with 1001 too (they are not in the
/// hub, so they used to stay open until their own timers or the client ended them), and nothing
/// is left (`TestGateway.stop` fails on any leftover count or timer).
@Suite("Graceful shutdown", .timeLimit(.minutes(2)))
struct ShutdownTests {
    @Test func connectionsThatAreNotSessionsAreClosedWith1001() async throws {
        // A frozen clock: the auth timeout can never be what closes the waiting connection.
        let clock = TestClock()
        let gateway = try await TestGateway.start(extra: "debug: { echo_endpoint: true }\nlimits: { auth_timeout_ms: 60000 }", clock: clock)
        let (session, _) = try await gateway.connect("alice")
        let (waiting, waitingStatus, _) = try await WebSocketStream.connect(port: gateway.port)
        #expect(waitingStatus == 101)
        let (echo, echoStatus, _) = try await WebSocketStream.connect(port: gateway.port, path: "/v1/echo")
        #expect(echoStatus == 101)
        echo.send("still here")
        #expect(try await echo.nextText() == "still here")
        let application = gateway.bootstrap.application
        #expect(await TeardownCheck.wait { application.lifecycleCounts["sessionless_websockets"] == 2 })
        await gateway.stop()
        for stream in [session, waiting, echo] {
            #expect(try await stream.closeCode() == 1001)
        }
    }
}
