import GatewayCore
import GatewayTesting
import NIOCore
import NIOPosix
import Testing

/// `GatewayClock`'s timers: `TestClock` fires them when a test steps it (never because real time
/// passed), `RepeatedClockTask` runs once per step however far it jumps, `SystemClock` waits for
/// real time on the loop it is given.
@Suite("Clock timers", .timeLimit(.minutes(1)))
struct ClockTests {
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    @Test func aTimerFiresWhenTheClockReachesItsDeadlineAndNotBefore() async throws {
        let clock = TestClock()
        let start = clock.nowMillis()
        let fired = Observed<[String]>([])
        _ = clock.schedule(at: start + 100, on: loop) { fired.update { $0.append("a") } }
        _ = clock.schedule(at: start + 50, on: loop) { fired.update { $0.append("b") } }
        #expect(clock.pendingDeadlines == [start + 50, start + 100])
        try await clock.advanceAndWait(by: 49)
        #expect(fired.value.isEmpty)
        try await clock.advanceAndWait(by: 1)
        #expect(fired.value == ["b"])
        // One step past both: each fires once, in deadline order.
        try await clock.advanceAndWait(by: 1000)
        #expect(fired.value == ["b", "a"])
        #expect(clock.pendingDeadlines.isEmpty)
    }

    @Test func aCancelledTimerNeverFiresAndAPastDeadlineFiresAtOnce() async throws {
        let clock = TestClock()
        let fired = Observed<[String]>([])
        let timer = clock.schedule(at: clock.nowMillis() + 10, on: loop) { fired.update { $0.append("cancelled") } }
        timer.cancel()
        #expect(clock.pendingDeadlines.isEmpty)
        _ = clock.schedule(at: clock.nowMillis(), on: loop) { fired.update { $0.append("due") } }
        #expect(await fired.wait { $0 == ["due"] })
        try await clock.advanceAndWait(by: 100)
        #expect(fired.value == ["due"])
    }

    @Test func steppingBackFiresNothing() async throws {
        let clock = TestClock()
        let start = clock.nowMillis()
        let fired = Observed(0)
        _ = clock.schedule(at: start + 10, on: loop) { fired.update { $0 += 1 } }
        clock.set(start - 60_000)
        try await clock.advanceAndWait(by: 60_009)
        #expect(fired.value == 0)
        try await clock.advanceAndWait(by: 1)
        #expect(fired.value == 1)
    }

    @Test func aSleepEndsWhenTheClockIsSteppedPastItOrItsTaskIsCancelled() async throws {
        let clock = TestClock()
        let deadline = clock.nowMillis() + 500
        let sleeper = Task { try await clock.sleep(until: deadline) }
        try await clock.waitForTimer(at: deadline)
        clock.advance(by: 499)
        #expect(clock.pendingTimers(at: deadline) == 1)
        clock.advance(by: 1)
        try await sleeper.value
        // A cancelled sleep throws and leaves no timer behind.
        let later = clock.nowMillis() + 500
        let cancelled = Task { try await clock.sleep(until: later) }
        try await clock.waitForTimer(at: later)
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(clock.pendingDeadlines.isEmpty)
        // A deadline already passed does not wait at all.
        try await clock.sleep(until: clock.nowMillis())
    }

    @Test func waitingForATimerThatNeverComesFailsWithWhatIsPending() async throws {
        let clock = TestClock()
        _ = clock.schedule(at: clock.nowMillis() + 7, on: loop) {}
        do {
            try await clock.waitForTimer(at: clock.nowMillis() + 8, timeout: .milliseconds(50))
            Issue.record("returned without the timer")
        } catch let error as TestClock.Timeout {
            #expect(error.description.contains("\(clock.nowMillis() + 7)"))
        }
    }

    @Test func aRepeatedTaskRunsOncePerStepHoweverFarTheClockJumps() async throws {
        let clock = TestClock()
        let start = clock.nowMillis()
        let runs = Observed<[Int64]>([])
        let task = RepeatedClockTask(clock: clock, interval: 100, on: loop) { runs.update { $0.append(clock.nowMillis() - start) } }
        try await clock.waitForTimer(at: start + 100)
        try await clock.advanceAndWait(by: 99)
        #expect(runs.value.isEmpty)
        try await clock.advanceAndWait(by: 1)
        #expect(runs.value == [100])
        // Four intervals at once: one run, and the next at the first interval after now.
        try await clock.waitForTimer(at: start + 200)
        try await clock.advanceAndWait(by: 450)
        #expect(runs.value == [100, 550])
        try await clock.waitForTimer(at: start + 600)
        task.cancel()
        #expect(clock.pendingDeadlines.isEmpty)
        try await clock.advanceAndWait(by: 1000)
        #expect(runs.value == [100, 550])
    }

    @Test func theSystemClocksTimersWaitForRealTime() async throws {
        let clock = SystemClock()
        let fired = Observed(false)
        let started = ContinuousClock.now
        _ = clock.schedule(at: clock.nowMillis() + 20, on: loop) { fired.update { $0 = true } }
        #expect(await fired.wait { $0 })
        #expect(ContinuousClock.now - started >= .milliseconds(15))
        let cancelled = Observed(false)
        // Scheduled and cancelled in one turn of the loop, so the timer cannot run in between
        // however long this thread is descheduled.
        try await loop.submit {
            clock.schedule(at: clock.nowMillis() + 10, on: loop) { cancelled.update { $0 = true } }.cancel()
        }.get()
        try await clock.sleep(until: clock.nowMillis() + 30)
        #expect(!cancelled.value)
    }
}
