import Synchronization

/// How one stage's turn ended, before its entry's `on_error` is applied.
enum StageRun: Sendable {
    case finished(StageOutcome)
    case failed(any Error)
    case timedOut(Int)
}

extension Pipeline.Entry {
    /// An entry around a stage built elsewhere, for stage tests that run one stage under a
    /// policy (GatewayTesting's `StageHarness.run(_:_:policy:)`); `Pipeline.build` makes the
    /// entries of a pipeline.
    public convenience init(name: String, kind: String, on: Set<FrameKind>, stage: any Stage, policy: StagePolicy = .default, context: StageContext) {
        self.init(
            name: name, kind: kind, on: on, built: BuiltStage(stage: stage, settings: .null), provides: [], policy: policy, stats: StageStats(),
            context: context)
    }

    /// Runs this entry's stage on `envelope` as the runner does: under its policy, counted in
    /// its stats. `.continue` also for a frame kind the entry does not take (nothing runs).
    public func run(_ envelope: inout Envelope) async -> StageOutcome {
        guard on.contains(envelope.kind) else { return .continue }
        return await runStage(&envelope)
    }

    /// One stage's turn: `process` under the entry's policy, then its outcome counted.
    func runStage(_ envelope: inout Envelope) async -> StageOutcome {
        let start = monotonicNanos()
        let result: StageRun
        if let timeoutMs = policy.timeoutMs {
            result = await runWithDeadline(&envelope, timeoutMs: timeoutMs)
        } else if policy.onError == .continue {
            // A failure lets the frame go on as it was before this stage.
            var attempt = envelope
            do {
                let outcome = try await stage.process(&attempt, context: context)
                envelope = attempt
                result = .finished(outcome)
            } catch {
                result = .failed(error)
            }
        } else {
            do {
                result = .finished(try await stage.process(&envelope, context: context))
            } catch {
                result = .failed(error)
            }
        }
        stats.latency.record(nanoseconds: monotonicNanos() &- start)
        stats.processed.wrappingIncrement(ordering: .relaxed)
        switch result {
        case .finished(let outcome):
            if case .reject = outcome { stats.rejected.wrappingIncrement(ordering: .relaxed) }
            return outcome
        case .failed(let error):
            stats.errors.wrappingIncrement(ordering: .relaxed)
            return failed(error, session: envelope.sender.session).map(StageOutcome.reject) ?? .continue
        case .timedOut(let ms):
            stats.errors.wrappingIncrement(ordering: .relaxed)
            return timedOut(after: ms, session: envelope.sender.session).map(StageOutcome.reject) ?? .continue
        }
    }

    /// Runs `process` in a task of its own, raced against the clock's deadline `timeoutMs`
    /// from now. The envelope changes only when the stage finished in time; the loser of the
    /// race is cancelled (a stage that ignores cancellation finishes in the background, and
    /// its result is dropped).
    func runWithDeadline(_ envelope: inout Envelope, timeoutMs: Int) async -> StageRun {
        let context = self.context
        let stage = self.stage
        let deadline = context.clock.nowMillis() + Int64(timeoutMs)
        let input = envelope
        let race = DeadlineRace()
        let work = Task {
            var copy = input
            do {
                let outcome = try await stage.process(&copy, context: context)
                race.finish(.stage(.finished(outcome), copy))
            } catch {
                race.finish(.stage(.failed(error), nil))
            }
        }
        let timer = Task {
            do {
                try await context.clock.sleep(until: deadline)
                race.finish(.deadline)
            } catch {
                // Cancelled: the stage finished first.
            }
        }
        let winner = await withTaskCancellationHandler {
            await race.value()
        } onCancel: {
            work.cancel()
            timer.cancel()
        }
        switch winner {
        case .stage(let run, let changed):
            timer.cancel()
            if let changed { envelope = changed }
            return run
        case .deadline:
            work.cancel()
            return .timedOut(timeoutMs)
        }
    }

    /// Applies `on_error` to a stage that threw: the error to reject with, or nil to go on.
    func failed(_ error: any Error, session: String) -> GatewayError? {
        let clientError = GatewayError.from(error)
        if clientError.code == .internal {
            context.logger.error("stage failed", metadata: ["error": "\(error)", "gateway.session": "\(session)", "gateway.on_error": "\(policy.onError.rawValue)"])
        } else {
            context.logger.debug("stage failed", metadata: ["error": "\(error)", "gateway.session": "\(session)", "gateway.on_error": "\(policy.onError.rawValue)"])
        }
        switch policy.onError {
        case .reject: return clientError
        case .continue: return nil
        }
    }

    /// Applies `on_error` to a stage that missed its deadline.
    func timedOut(after ms: Int, session: String) -> GatewayError? {
        context.logger.debug("stage missed its deadline", metadata: ["gateway.session": "\(session)", "gateway.timeout_ms": "\(ms)", "gateway.on_error": "\(policy.onError.rawValue)"])
        switch policy.onError {
        case .reject: return .unavailable("the \(name) stage did not answer within \(ms) ms", retryAfterMs: 1000)
        case .continue: return nil
        }
    }
}

/// The first of a stage's result and its deadline; resolved once, awaited once.
final class DeadlineRace: Sendable {
    enum Winner: Sendable {
        case stage(StageRun, Envelope?)
        case deadline
    }

    struct State {
        var winner: Winner?
        var waiter: CheckedContinuation<Winner, Never>?
    }

    /// Guards the winner and the waiting runner.
    private let state = Mutex(State())

    func finish(_ winner: Winner) {
        let waiter: CheckedContinuation<Winner, Never>? = state.withLock { state in
            guard state.winner == nil else { return nil }
            state.winner = winner
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: winner)
    }

    func value() async -> Winner {
        await withCheckedContinuation { continuation in
            let ready: Winner? = state.withLock { state in
                if let winner = state.winner { return winner }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}
