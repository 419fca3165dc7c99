import GatewayServer
import Logging
import ServiceLifecycle
import UnixSignals

/// Reloads the pipeline on SIGHUP (the Unix convention for "re-read your config"), as
/// `POST /admin/reload` does; the outcome is logged, and a failed reload keeps the pipeline in
/// force.
struct HangupReloader: Service {
    let signal: UnixSignal
    let application: GatewayApplication
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: signal)
        for await _ in signals.cancelOnGracefulShutdown() {
            logger.info("reloading the pipeline", metadata: ["gateway.signal": "\(signal)"])
            do {
                try await application.reloadPipeline()
            } catch where !error.isInvalidConfig {
                // An invalid config is logged by the reloader, with its diagnostics.
                logger.warning("reload on \(signal) skipped", metadata: ["error": "\(error)"])
            } catch {}
        }
    }
}
