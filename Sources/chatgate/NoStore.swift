import GatewayCore

/// Stores for `check-config`, which builds the pipeline without opening the real store.
struct NoStore: MessageStore, GroupStore, ReceiptStore {
    func commit(_ batch: [PendingMessage]) async throws -> [CommitOutcome] { throw GatewayError.unavailable("no store") }
    func inbox(user: String, after: Int64, limit: Int) async throws -> (entries: [InboxEntry], more: Bool) { ([], false) }
    func inboxHead(user: String) async throws -> Int64 { 0 }
    func history(conversation: String, before: UInt64?, limit: Int) async throws -> (messages: [StoredMessage], more: Bool) { ([], false) }
    func message(from sender: String, clientMsgID: String) async throws -> StoredMessage? { nil }
    func lastMessageID() async throws -> UInt64? { nil }
    func statistics() async throws -> StoreStatistics { StoreStatistics(messages: 0, inboxEntries: 0, bytes: 0) }
    func close() async throws {}
    func createGroup(_ group: GroupInfo) async throws {}
    func group(_ id: String) async throws -> GroupInfo? { nil }
    func members(of group: String) async throws -> [String]? { nil }
    func isMember(_ user: String, of group: String) async throws -> Bool { false }
    func groups(of user: String) async throws -> [GroupInfo] { [] }
    func updateMembers(of group: String, add: [String], remove: [String], maxMembers: Int) async throws -> GroupInfo { throw GatewayError.notFound("no store") }
    func markRead(user: String, conversation: String, upTo: UInt64) async throws -> Bool { false }
    func readPositions(conversation: String) async throws -> [String: UInt64] { [:] }
}

struct NoPresence: PresenceQuery {
    func isOnline(_ user: String) -> Bool { false }
}
