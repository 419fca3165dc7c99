import NIOCore

/// A send in flight: a `send` that passed the pipeline and whose message waits in the commit
/// queue. The one name for it from `Gateway.beginSend` to the sender's answer.
///
/// It holds the committer's `CommitTicket` (the commit's outcome, once known) for the
/// `PendingMessage` it queued (the message and the inboxes the store writes). `complete` waits
/// for the commit and answers the sender (ack, duplicate ack, or error), then runs the stages'
/// `committed` hooks. When the send came with an `ackSink`, the committer already answered,
/// right after the batch's deliveries (see `Gateway.beginSend`), and `complete` only counts and
/// runs the hooks. A WebSocket session keeps up to `WebSocketConnection.maxSendsInFlight` of
/// them (`PendingSends`), answered in order.
///
/// (A class: a session keeps its pending sends in a list, and a reference is one retain per
/// move where a struct retained each of its fields.)
public final class PendingSend: Sendable {
    let ticket: CommitTicket
    let envelope: Envelope
    let pipeline: Pipeline
    let gateway: Gateway
    /// Whether the committer writes the answer.
    let answeredByCommitter: Bool

    init(ticket: CommitTicket, envelope: Envelope, pipeline: Pipeline, gateway: Gateway, answeredByCommitter: Bool) {
        self.ticket = ticket
        self.envelope = envelope
        self.pipeline = pipeline
        self.gateway = gateway
        self.answeredByCommitter = answeredByCommitter
    }

    /// Waits for the commit and answers through `reply` (unless the committer did). Returns the
    /// error the sender was answered with, if any.
    public func complete(_ reply: (ByteBuffer) -> Void) async -> GatewayError? {
        let outcome: CommitOutcome
        do {
            outcome = try await ticket.value()
        } catch {
            gateway.stats.messagesRejected.wrappingIncrement(ordering: .relaxed)
            let clientError = GatewayError.from(error)
            if !answeredByCommitter { reply(ServerFrame.error(clientError, ref: envelope.ref)) }
            return clientError
        }
        if !answeredByCommitter {
            reply(Gateway.answer(.success(outcome), ref: envelope.ref, clientMsgID: envelope.clientMsgID ?? "", sender: envelope.sender.user))
        }
        if case .stored = outcome {
            gateway.stats.messagesAccepted.wrappingIncrement(ordering: .relaxed)
            await pipeline.committed(envelope, outcome: outcome)
        }
        return nil
    }
}
