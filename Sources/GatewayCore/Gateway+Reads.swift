import Logging
import NIOCore
import Synchronization

/// Reads: `sync` and `history` replies, and the receipts a client sends (`read`, `delivered`).
extension Gateway {
    /// A `sync` reply: the user's inbox after `since`.
    public func sync(user: String, since: Int64, limit: Int, ref: String?) async throws -> ByteBuffer {
        let head = try await stores.messages.inboxHead(user: user)
        guard since <= head else {
            throw GatewayError.badFrame("'since' (\(since)) is beyond the inbox's last seq (\(head))")
        }
        let page = try await stores.messages.inbox(user: user, after: since, limit: limit)
        let next = page.entries.last?.seq ?? since
        return ServerFrame.sync(ref: ref, entries: page.entries, next: next, more: page.more)
    }

    /// A `history` reply for a conversation the user is part of.
    public func history(user: String, with: Address, before: UInt64?, limit: Int, ref: String?) async throws -> ByteBuffer {
        if case .group(let id) = with {
            guard try await stores.groups.isMember(user, of: id) else {
                throw GatewayError.forbidden("not a member of group '\(id)'")
            }
        }
        let conversation = with.conversationKey(sender: user)
        let page = try await stores.messages.history(conversation: conversation, before: before, limit: limit)
        // Each member's read position, so a client can show read marks.
        let positions = try await stores.receipts.readPositions(conversation: conversation)
        var reads = JSONObject()
        for (member, upTo) in positions.sorted(by: { $0.key < $1.key }) { reads[member] = .string(String(upTo)) }
        return ServerFrame.history(ref: ref, messages: page.messages, more: page.more, extra: ["reads": .object(reads)])
    }

    /// `read`: moves the reader's position and sends a `receipt` to the other members.
    func read(_ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void) async throws {
        let request = try frame.readRequest()
        var envelope = Envelope(kind: .read, sender: principal, ref: frame.ref, frame: frame.object, to: request.with, timestamp: clock.nowMillis())
        guard try await runStages(&envelope, reply: reply) else { return }
        let recipients = try await Recipients.resolve(to: request.with, sender: principal.user, groups: stores.groups)
        let conversation = request.with.conversationKey(sender: principal.user)
        // Only a position that moved forward is news.
        guard try await stores.receipts.markRead(user: principal.user, conversation: conversation, upTo: request.upTo) else { return }
        // Each member sees the conversation from their side: 1:1 receipts name the reader.
        let with: Address
        switch request.with {
        case .user: with = .user(principal.user)
        case .group: with = request.with
        }
        let receipt = ServerFrame.receipt(from: principal.user, with: with, upTo: request.upTo)
        for user in recipients where user != principal.user {
            deliverEverywhere(to: user, frame: receipt)
        }
    }

    /// `delivered`: no reply and nothing stored; the stages that take it (the `push` stage,
    /// `on: [delivered]`) learn that the device holds the user's inbox up to `seq`.
    func delivered(_ frame: ClientFrame, principal: Principal, reply: (ByteBuffer) -> Void) async throws {
        _ = try frame.deliveredRequest()  // refuse a malformed frame before any stage sees it
        var envelope = Envelope(kind: .delivered, sender: principal, ref: frame.ref, frame: frame.object, timestamp: clock.nowMillis())
        _ = try await runStages(&envelope, reply: reply)
    }
}
