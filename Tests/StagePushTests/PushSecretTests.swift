import GatewayCore
import GatewayTesting
import StagePush
import Testing

/// Issue 9's secure defaults, for the push stage: receivers verify the webhook provider's
/// signature with its secret, so `config.yaml`'s placeholder is refused once the gateway is
/// reachable from the network.
@Suite("Push: published secrets off loopback")
struct PushSecretTests {
    static func build(secret: String, exposure: ListenerExposure) throws {
        let harness = StageHarness()
        let context = StageBuildContext(
            name: "push", kind: "push", settings: try StageSettings.source(#"{"providers": {"webhook": {"secret": "\#(secret)"}}}"#),
            on: [.send, .read, .delivered], logger: harness.logger, clock: harness.clock, stores: harness.stores, node: harness.node,
            exposure: exposure)
        _ = try PushStage.factory.make(context)
    }

    @Test func thePlaceholderIsRefusedOffLoopbackOnly() throws {
        #expect {
            try Self.build(secret: "change-me", exposure: .network)
        } throws: { error in
            "\(error)".contains("PUSH_WEBHOOK_SECRET")
        }
        try Self.build(secret: "change-me", exposure: .loopback)
        #expect(throws: (any Error).self) { try Self.build(secret: "dev-only-push-secret-change-me", exposure: .network) }
        try Self.build(secret: "a-secret-of-our-own-0123456789-abcdef", exposure: .network)
    }
}
