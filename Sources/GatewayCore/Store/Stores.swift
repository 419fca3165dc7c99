/// The messages and inboxes of every user.
///
/// Implementations: `SQLiteStore` (embedded) and, for clusters, a PostgreSQL backend.
/// Writes go through `commit` only, which the core's `Committer` calls with batches (group
/// commit): one transaction, one fsync, many messages.
public protocol MessageStore: Sendable {
    /// Writes a batch in one transaction: each message, its dedupe record and one inbox entry
    /// per user in `inboxes`, with that user's next contiguous `seq`. A message whose
    /// (sender, `client_msg_id`) is already stored (earlier, or earlier in the same batch) is
    /// not written again and comes back as `.duplicate`. Throws when nothing of the batch was
    /// stored; never stores part of a batch.
    func commit(_ batch: [PendingMessage]) async throws -> [CommitOutcome]

    /// Entries of `user`'s inbox with `seq > after`, in seq order, at most `limit`; `more` tells
    /// whether further entries exist.
    func inbox(user: String, after: Int64, limit: Int) async throws -> (entries: [InboxEntry], more: Bool)

    /// The user's highest inbox seq (0 when the inbox is empty).
    func inboxHead(user: String) async throws -> Int64

    /// Messages of a conversation (see `Address.conversationKey`) with `id < before`, newest
    /// first, at most `limit`.
    func history(conversation: String, before: UInt64?, limit: Int) async throws -> (messages: [StoredMessage], more: Bool)

    /// The message a sender stored under a `client_msg_id`, if any.
    func message(from sender: String, clientMsgID: String) async throws -> StoredMessage?

    /// The highest message id stored, so ids keep increasing across a restart (nil when empty).
    func lastMessageID() async throws -> UInt64?

    /// Figures for `/admin/stats`.
    func statistics() async throws -> StoreStatistics

    /// Flushes and closes; later calls fail.
    func close() async throws
}

public struct StoreStatistics: Sendable, Hashable {
    public var messages: Int
    public var inboxEntries: Int
    public var bytes: Int

    public init(messages: Int, inboxEntries: Int, bytes: Int) {
        self.messages = messages
        self.inboxEntries = inboxEntries
        self.bytes = bytes
    }
}

/// A group: its members and owner.
public struct GroupInfo: Sendable, Hashable {
    public var id: String
    public var name: String
    public var owner: String
    public var members: [String]
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64

    public init(id: String, name: String, owner: String, members: [String], createdAt: Int64) {
        self.id = id
        self.name = name
        self.owner = owner
        self.members = members
        self.createdAt = createdAt
    }

    public var json: JSONValue {
        [
            "id": .string(id), "name": .string(name), "owner": .string(owner),
            "members": .array(members.map { .string($0) }), "created_at": .int(createdAt),
        ]
    }
}

/// Groups and their members.
public protocol GroupStore: Sendable {
    /// Creates a group; throws `GatewayError(.conflict)` when the id is taken.
    func createGroup(_ group: GroupInfo) async throws
    func group(_ id: String) async throws -> GroupInfo?
    /// Members of a group, or nil when there is no such group.
    func members(of group: String) async throws -> [String]?
    func isMember(_ user: String, of group: String) async throws -> Bool
    func groups(of user: String) async throws -> [GroupInfo]
    /// Adds and removes members (removals first) in one transaction; returns the group after
    /// the change. Throws `not_found`, or `too_large` and changes nothing when the group would
    /// end with more than `maxMembers` members.
    func updateMembers(of group: String, add: [String], remove: [String], maxMembers: Int) async throws -> GroupInfo
}

extension GroupStore {
    /// `updateMembers` with no cap.
    public func updateMembers(of group: String, add: [String], remove: [String]) async throws -> GroupInfo {
        try await updateMembers(of: group, add: add, remove: remove, maxMembers: .max)
    }
}

/// Read positions: how far each user has read each conversation.
public protocol ReceiptStore: Sendable {
    /// Records that `user` read `conversation` (see `Address.conversationKey`) up to message
    /// `upTo`; a position never moves back. Returns whether it moved forward.
    func markRead(user: String, conversation: String, upTo: UInt64) async throws -> Bool
    /// Every recorded read position in a conversation, by user.
    func readPositions(conversation: String) async throws -> [String: UInt64]
}

/// The stores a gateway runs on, handed to stages through their context.
public struct Stores: Sendable {
    public let messages: any MessageStore
    public let groups: any GroupStore
    public let receipts: any ReceiptStore
    /// Push targets (`/v1/devices`); nil when the backend keeps none.
    public let devices: (any DeviceStore)?
    /// The durable push queue of the `push` stage; nil when the backend keeps none.
    public let pushQueue: (any PushQueue)?
    /// Media uploads and attachments (docs/MEDIA.md); nil when the gateway serves no media.
    public var media: (any MediaLibrary)?

    public init(
        messages: any MessageStore, groups: any GroupStore, receipts: any ReceiptStore, devices: (any DeviceStore)? = nil,
        pushQueue: (any PushQueue)? = nil
    ) {
        self.messages = messages
        self.groups = groups
        self.receipts = receipts
        self.devices = devices
        self.pushQueue = pushQueue
    }

    /// One object that is all three (the embedded store, `InMemoryStore`), and the push
    /// stores too when it is those.
    public init(_ store: some MessageStore & GroupStore & ReceiptStore) {
        self.init(messages: store, groups: store, receipts: store, devices: store as? any DeviceStore, pushQueue: store as? any PushQueue)
    }
}
