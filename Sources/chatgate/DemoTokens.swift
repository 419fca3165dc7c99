import GatewayCore
import GatewayServer
import Logging
import StageAuth

/// Development tokens for the demo page: signed with the `auth` stage's HS256 secret, like
/// `chatgate token`. Only built when `demo.enabled`.
enum DemoTokens {
    static func minter(configuration: GatewayConfiguration, clock: any GatewayClock, logger: Logger) throws -> DemoTokenMinter? {
        guard configuration.demo.enabled else { return nil }
        guard let entry = configuration.pipeline.first(where: { $0.stage == "auth" }) else {
            throw BootstrapError("demo.enabled needs an auth stage with an hs256_secret in the pipeline")
        }
        let settings = try entry.settings.decode(AuthSettings.self)
        _ = try AuthStageFactory.hs256Secret(in: settings)
        logger.warning(
            "demo mode is on: GET / serves the demo chat and POST /demo/token signs anyone in as any user; turn demo.enabled off in production",
            metadata: ["gateway.listen": "\(configuration.listen.public.host)"])
        return { user, ttl in
            try await AuthStageFactory.mintHS256(settings: settings, user: user, ttlSeconds: ttl, now: clock.nowMillis())
        }
    }
}
