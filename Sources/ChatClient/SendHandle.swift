import Synchronization

/// A send in flight: `ack()` waits for the gateway's ack (across reconnects and resends).
public final class SendHandle: Sendable {
    public let clientMsgID: String
    /// Guards the outcome and the tasks waiting for it.
    private let state = Mutex<(result: Result<Ack, ChatError>?, waiters: [CheckedContinuation<Ack, any Error>])>((nil, []))

    init(clientMsgID: String) {
        self.clientMsgID = clientMsgID
    }

    /// The ack, once the message is durable; throws the gateway's refusal or `closed`.
    public func ack() async throws -> Ack {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Ack, any Error>) in
            let done: Result<Ack, ChatError>? = state.withLock { state in
                if let result = state.result { return result }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(with: done.mapError { $0 as any Error }) }
        }
    }

    func complete(_ result: Result<Ack, ChatError>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Ack, any Error>] in
            guard state.result == nil else { return [] }
            state.result = result
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(with: result.mapError { $0 as any Error }) }
    }
}
