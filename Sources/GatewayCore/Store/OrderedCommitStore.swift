/// A store that several nodes write at once (PostgreSQL): it keeps every inbox in id order by
/// refusing a batch that would append an id below one the inbox already holds.
///
/// The `Committer` uses it instead of `MessageStore.commit` when the store conforms: on an
/// `InboxOrderConflict` it re-stamps the batch with fresh ids (through the `id` stage) and
/// commits again, a bounded number of times. With `store.commits_in_flight` above 1 it also
/// keeps several batches (with no user in common) in flight at once, so the store must take
/// concurrent calls.
public protocol OrderedCommitStore: MessageStore {
    /// Commits `batch` like `MessageStore.commit`, except that a batch that would put, in one of
    /// its inboxes, an id at or below the highest id already there is refused: nothing is stored
    /// and it throws `InboxOrderConflict`.
    ///
    /// - Parameter restamp: when given, the store first locks the inbox heads of the batch's
    ///   users, then calls `restamp(floor)` (floor: the highest id those inboxes hold) for the
    ///   batch to commit, with ids above `floor`; that is only refused when another node created
    ///   one of those inboxes meanwhile.
    /// - Returns: the batch as committed (re-stamped when `restamp` was called) and the outcome
    ///   of each message, at the same index.
    func commitInOrder(
        _ batch: [PendingMessage], restamp: (@Sendable (_ floor: UInt64) -> [PendingMessage])?
    ) async throws -> (batch: [PendingMessage], outcomes: [CommitOutcome])
}

/// An inbox of the batch already holds an id at or above one of the batch's ids for it (another
/// node committed a later message there first). Nothing of the batch was stored.
public struct InboxOrderConflict: Error, Sendable, CustomStringConvertible {
    /// The highest id the batch's inboxes hold: fresh ids must be above it.
    public let floor: UInt64

    public init(floor: UInt64) {
        self.floor = floor
    }

    public var description: String { "an inbox of the batch already holds message \(floor), a later one" }
}
