import Synchronization

/// A value a test waits on: whoever changes it (a reader task, a server route) wakes the
/// waits whose condition now holds, so a test awaits "three messages arrived" instead of
/// polling for it.
///
/// ```swift
/// let inbox = Observed<[String]>([])
/// ... // a reader task: inbox.update { $0.append(text) }
/// #expect(await inbox.wait { $0.count == 3 })
/// ```
///
/// `Sendable`: the value and the waits are behind one lock.
public final class Observed<Value: Sendable>: Sendable {
    private struct Waiter {
        let id: UInt64
        let condition: @Sendable (Value) -> Bool
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var value: Value
        var waiters: [Waiter] = []
        var nextID: UInt64 = 0
    }

    /// Guards the value and the waits.
    private let state: Mutex<State>

    public init(_ value: Value) {
        state = Mutex(State(value: value))
    }

    /// The value now.
    public var value: Value { state.withLock { $0.value } }

    /// Changes the value and wakes the waits whose condition now holds.
    public func update(_ body: (inout Value) -> Void) {
        let woken = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            body(&state.value)
            var woken: [CheckedContinuation<Bool, Never>] = []
            let value = state.value
            state.waiters.removeAll { waiter in
                guard waiter.condition(value) else { return false }
                woken.append(waiter.continuation)
                return true
            }
            return woken
        }
        for continuation in woken { continuation.resume(returning: true) }
    }

    /// Returns true once `condition` holds for the value (at once if it does now), or false after
    /// `timeout` of real time without it (a bound on a failing test, not a wait to rely on).
    public func wait(timeout: Duration = .seconds(10), until condition: @escaping @Sendable (Value) -> Bool) async -> Bool {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            self.expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { state -> Bool in
                if condition(state.value) { return true }
                state.waiters.append(Waiter(id: id, condition: condition, continuation: continuation))
                return false
            }
            if now { continuation.resume(returning: true) }
        }
    }

    /// Ends a wait that timed out (false), if it still waits.
    private func expire(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(returning: false)
    }
}
