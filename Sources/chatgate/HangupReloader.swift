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
            } catch {
                // The reloader has logged the diagnostics; this line ties them to the signal.
                logger.warning("reload on \(signal) failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
