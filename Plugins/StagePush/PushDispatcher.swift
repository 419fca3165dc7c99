import GatewayCore
import Logging
import ServiceLifecycle
import Synchronization

/// Drains the durable push queue: claims due notifications, sends them through their
/// platform's provider with at most `concurrency` at once, and retries, gives up or removes
/// targets as the providers answer.
///
/// Time comes from the injected `GatewayClock`. The worker (`Worker`, the stage's service)
/// sleeps on that clock until the next due notification, at most `poll_ms`, and wakes early on
/// `kick()` (new work queued here); tests step a `TestClock` (which wakes the worker) or call
/// `runDue()`, so no test waits for real time to pass.
final class PushDispatcher: Sendable {
    let settings: PushSettings
    let devices: any DeviceStore
    let queue: any PushQueue
    let providers: [PushPlatform: any PushProvider]
    let clock: any GatewayClock
    let logger: Logger
    let counters = PushCounters()
    /// Clients the providers use; shut down when the worker stops.
    let clients: [PushHTTPClient]
    /// Guards the worker's wake-up: its waiting continuation and a kick that came while it was busy.
    private let wake = Mutex<(waiter: CheckedContinuation<Void, Never>?, kicked: Bool)>((nil, false))
    /// The random source of the backoff jitter, a value in 0..<1 (tests fix it).
    let jitter: @Sendable () -> Double

    init(
        settings: PushSettings, devices: any DeviceStore, queue: any PushQueue, providers: [PushPlatform: any PushProvider],
        clients: [PushHTTPClient], clock: any GatewayClock, logger: Logger, jitter: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) }
    ) {
        self.settings = settings
        self.devices = devices
        self.queue = queue
        self.providers = providers
        self.clients = clients
        self.clock = clock
        self.logger = logger
        self.jitter = jitter
    }

    /// Sends every notification due now, `concurrency` at a time, until none is due. Returns
    /// how many it handled (sent, retried later, given up or dropped).
    @discardableResult
    func runDue() async -> Int {
        var handled = 0
        while true {
            let jobs: [PushJob]
            do {
                jobs = try await queue.claimDue(now: clock.nowMillis(), limit: settings.concurrency, leaseMs: Int64(settings.leaseMs))
            } catch {
                logger.debug("push queue unavailable", metadata: ["error": "\(error)"])
                return handled
            }
            if jobs.isEmpty { return handled }
            await withTaskGroup(of: Void.self) { group in
                for job in jobs {
                    group.addTask { await self.handle(job) }
                }
            }
            handled += jobs.count
        }
    }

    /// Sends one claimed job and settles it in the queue; the counters move once the queue says
    /// so, so `/admin/stats` never shows a notification both sent and queued.
    func handle(_ job: PushJob) async {
        do {
            guard let target = try await devices.target(id: job.targetID) else {
                try await queue.complete(job.id)
                return
            }
            guard let provider = providers[target.platform] else {
                try await queue.complete(job.id)
                counters.record(.failed, platform: target.platform)
                return
            }
            let result = await provider.send(PushNotification.make(job: job), to: target)
            switch result {
            case .sent:
                try await queue.complete(job.id)
                counters.record(.sent, platform: target.platform)
            case .gone:
                logger.debug("push target gone", metadata: ["gateway.push.platform": "\(target.platform.rawValue)"])
                _ = try await devices.removeTarget(id: target.id, user: nil)
                try await queue.complete(job.id)
                counters.record(.targetGone, platform: target.platform)
            case .failed(let reason):
                logger.debug("push failed", metadata: ["gateway.push.platform": "\(target.platform.rawValue)", "gateway.reason": "\(reason)"])
                try await queue.complete(job.id)
                counters.record(.failed, platform: target.platform)
            case .retry(let reason, let afterMs):
                let attempts = job.attempts + 1
                guard attempts < settings.maxAttempts else {
                    logger.debug("push given up", metadata: ["gateway.push.platform": "\(target.platform.rawValue)", "gateway.reason": "\(reason)"])
                    try await queue.complete(job.id)
                    counters.record(.failed, platform: target.platform)
                    return
                }
                let delay = afterMs ?? backoff(attempt: attempts)
                try await queue.reschedule(job.id, due: clock.nowMillis() + delay, attempts: attempts)
                counters.record(.retried, platform: target.platform)
            }
        } catch {
            // The store failed: the lease runs out and the job is tried again.
            logger.debug("push queue update failed", metadata: ["error": "\(error)"])
        }
    }

    /// `backoff_ms * 2^(attempt-1)`, at most `max_backoff_ms`, with "equal jitter": between
    /// half and all of it, so retries of many notifications spread out.
    func backoff(attempt: Int) -> Int64 {
        let exponent = min(attempt - 1, 30)
        let full = min(Int64(settings.backoffMs) << Int64(exponent), Int64(settings.maxBackoffMs))
        return full / 2 + Int64(Double(full / 2) * jitter())
    }

    /// Wakes the worker to look at the queue now.
    func kick() {
        let waiter = wake.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.kicked = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Waits for a `kick()` (returns at once if one came since the last wait) or cancellation.
    private func waitForKick() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = wake.withLock { state -> Bool in
                    if state.kicked || Task.isCancelled {
                        state.kicked = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = wake.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    /// The worker loop: drain, then sleep until the next due time (at most `poll_ms`) or a kick.
    func run() async {
        while !Task.isCancelled {
            await runDue()
            var waitMs = Int64(settings.pollMs)
            if let next = try? await queue.nextDue() {
                waitMs = max(0, min(waitMs, next - clock.nowMillis()))
            }
            if waitMs == 0 {
                await Task.yield()
                // Due now but not claimable (leased elsewhere): do not spin.
                waitMs = 10
            }
            // On the injected clock: a test stepping it past a retry's due time wakes the worker.
            let wakeAt = clock.nowMillis() + waitMs
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [clock] in try? await clock.sleep(until: wakeAt) }
                group.addTask { await self.waitForKick() }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// The stage's service: runs the worker until the gateway shuts down (or a reload retires
    /// the pipeline), then shuts the providers' HTTP clients down.
    struct Worker: Service {
        let dispatcher: PushDispatcher

        func run() async throws {
            await cancelWhenGracefulShutdown {
                await dispatcher.run()
            }
            for client in dispatcher.clients { await client.shutdown() }
        }
    }
}

/// The push counters (a few updates per notification: a lock is cheap here).
final class PushCounters: Sendable {
    enum Event {
        case sent, failed, retried, targetGone
    }

    /// Guards the per-platform figures and the cancellation count.
    private let state = Mutex<(byProvider: [PushPlatform: PushFigures.PerProvider], dropped: Int, cancelled: Int)>(([:], 0, 0))

    func record(_ event: Event, platform: PushPlatform) {
        state.withLock { state in
            switch event {
            case .sent: state.byProvider[platform, default: .init()].sent += 1
            case .failed: state.byProvider[platform, default: .init()].failed += 1
            case .retried: state.byProvider[platform, default: .init()].retried += 1
            case .targetGone: state.dropped += 1
            }
        }
    }

    func recordCancelled(_ count: Int) {
        state.withLock { $0.cancelled += count }
    }

    /// The figures without the queue depth.
    var figures: PushFigures {
        state.withLock { state in
            var figures = PushFigures()
            figures.byProvider = state.byProvider
            figures.sent = state.byProvider.values.reduce(0) { $0 + $1.sent }
            figures.failed = state.byProvider.values.reduce(0) { $0 + $1.failed }
            figures.retried = state.byProvider.values.reduce(0) { $0 + $1.retried }
            figures.droppedTargets = state.dropped
            figures.cancelled = state.cancelled
            return figures
        }
    }
}
