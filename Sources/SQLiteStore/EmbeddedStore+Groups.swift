import GRDB
import GatewayCore
import Synchronization

extension EmbeddedStore {
    /// Creates a group with its members in the given order (a repeated member counts once).
    /// Throws `GatewayError(.conflict)` when the id is taken.
    public func createGroup(_ group: GroupInfo) async throws {
        defer { membersCache.forget(group.id) }
        try await write { db in
            let insert = try db.cachedStatement(sql: """
                INSERT INTO chat_groups(id, name, owner, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(id) DO NOTHING
                """)
            try insert.execute(arguments: [group.id, group.name, group.owner, group.createdAt])
            if db.changesCount == 0 { throw GatewayError(.conflict, "group '\(group.id)' exists") }
            try Self.addMembers(group.members, to: group.id, in: db)
        }
    }

    public func group(_ id: String) async throws -> GroupInfo? {
        try await read { db in try Self.group(id, in: db) }
    }

    /// From `membersCache` when it has the group (every group send asks), else from the table.
    public func members(of group: String) async throws -> [String]? {
        try await cachedMembers(of: group)?.list
    }

    /// From `membersCache` too: the `auth` stage asks it for every group send.
    public func isMember(_ user: String, of group: String) async throws -> Bool {
        try await cachedMembers(of: group)?.set.contains(user) ?? false
    }

    private func cachedMembers(of group: String) async throws -> GroupMembersCache.Members? {
        if let cached = membersCache.members(of: group) { return cached }
        let generation = membersCache.generation
        let list = try await read { db -> [String]? in
            let exists = try db.cachedStatement(sql: "SELECT 1 FROM chat_groups WHERE id = ?")
            guard try Bool.fetchOne(exists, arguments: [group]) != nil else { return nil }
            return try Self.members(of: group, in: db)
        }
        guard let list else { return nil }
        let members = GroupMembersCache.Members(list)
        membersCache.remember(members, of: group, readAt: generation)
        return members
    }

    /// The groups `user` belongs to, sorted by id.
    public func groups(of user: String) async throws -> [GroupInfo] {
        try await read { db in
            let groupsStatement = try db.cachedStatement(sql: """
                SELECT g.id, g.name, g.owner, g.created_at
                FROM group_members m JOIN chat_groups g ON g.id = m.group_id
                WHERE m.user = ?
                ORDER BY g.id
                """)
            let membersStatement = try db.cachedStatement(sql: """
                SELECT group_id, user FROM group_members
                WHERE group_id IN (SELECT group_id FROM group_members WHERE user = ?)
                ORDER BY group_id, position
                """)
            var members: [String: [String]] = [:]
            let memberRows = try Row.fetchCursor(membersStatement, arguments: [user])
            while let row = try memberRows.next() {
                members[try row.decode(atIndex: 0), default: []].append(try row.decode(atIndex: 1))
            }
            return try Row.fetchAll(groupsStatement, arguments: [user]).map { row in
                let id: String = try row.decode(atIndex: 0)
                return GroupInfo(
                    id: id, name: try row.decode(atIndex: 1), owner: try row.decode(atIndex: 2),
                    members: members[id] ?? [], createdAt: try row.decode(atIndex: 3))
            }
        }
    }

    /// Adds the users of `add` not yet members (after the others, in the given order), then
    /// removes those of `remove`, in one transaction. Throws `not_found` when there is no such
    /// group.
    ///
    /// An added member receives what is sent from now on (their fanout-on-read cursor starts at
    /// the group's newest message). A removed member first gets the group's fanout-on-read
    /// messages still waiting for them, as write fanout would have given them, then nothing more
    /// (the cursor goes with the membership).
    public func updateMembers(of group: String, add: [String], remove: [String], maxMembers: Int) async throws -> GroupInfo {
        let chunk = materializationChunk
        let cache = headCache
        defer { membersCache.forget(group) }
        return try await write { db in
            let exists = try db.cachedStatement(sql: "SELECT 1 FROM chat_groups WHERE id = ?")
            guard try Bool.fetchOne(exists, arguments: [group]) != nil else {
                throw GatewayError.notFound("no group '\(group)'")
            }
            let delete = try db.cachedStatement(sql: "DELETE FROM group_members WHERE group_id = ? AND user = ?")
            for user in remove {
                try Self.materializeAll(user: user, group: group, chunk: chunk, heads: cache, in: db)
                try delete.execute(arguments: [group, user])
            }
            // A user in both lists ends removed, as before removals came first.
            try Self.addMembers(add.filter { !remove.contains($0) }, to: group, in: db)
            guard let info = try Self.group(group, in: db) else {
                throw GatewayError.notFound("no group '\(group)'")
            }
            // Thrown inside the transaction: nothing of this change is kept.
            guard info.members.count <= maxMembers else {
                throw GatewayError(.tooLarge, "a group has at most \(maxMembers) members")
            }
            return info
        }
    }

    // MARK: Statements

    /// Appends `users` to the group's members, skipping those already in it.
    static func addMembers(_ users: [String], to group: String, in db: Database) throws {
        if users.isEmpty { return }
        let last = try db.cachedStatement(sql: "SELECT coalesce(max(position), 0) FROM group_members WHERE group_id = ?")
        var position = try Int64.fetchOne(last, arguments: [group]) ?? 0
        let insert = try db.cachedStatement(sql: """
            INSERT INTO group_members(group_id, user, position) VALUES (?, ?, ?)
            ON CONFLICT(group_id, user) DO NOTHING
            """)
        var added: [String] = []
        for user in users {
            try insert.execute(arguments: [group, user, position + 1])
            if db.changesCount > 0 {
                position += 1
                added.append(user)
            }
        }
        try startCursors(users: added, group: group, in: db)
    }

    static func group(_ id: String, in db: Database) throws -> GroupInfo? {
        let statement = try db.cachedStatement(sql: "SELECT name, owner, created_at FROM chat_groups WHERE id = ?")
        guard let row = try Row.fetchOne(statement, arguments: [id]) else { return nil }
        return GroupInfo(
            id: id, name: try row.decode(atIndex: 0), owner: try row.decode(atIndex: 1),
            members: try members(of: id, in: db), createdAt: try row.decode(atIndex: 2))
    }

    static func members(of group: String, in db: Database) throws -> [String] {
        let statement = try db.cachedStatement(sql: "SELECT user FROM group_members WHERE group_id = ? ORDER BY position")
        return try String.fetchAll(statement, arguments: [group])
    }
}

/// Members of recently used groups, as committed: a group send resolves its recipients, and
/// the `auth` stage checks the sender's membership, without a read. A membership change
/// forgets the group once its transaction is over; a read that overlapped a change (the
/// generation moved) is not remembered, so the cache never brings back a list older than the
/// last change. Past `capacity` members in all it starts afresh.
final class GroupMembersCache: Sendable {
    /// A group's members in order, and as a set for membership checks.
    final class Members: Sendable {
        let list: [String]
        let set: Set<String>

        init(_ list: [String]) {
            self.list = list
            self.set = Set(list)
        }
    }

    private struct State {
        var groups: [String: Members] = [:]
        var memberCount = 0
        var generation: UInt64 = 0
    }

    /// Guards the groups and the generation.
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int = 500_000) {
        self.capacity = max(1, capacity)
    }

    func members(of group: String) -> Members? {
        state.withLock { $0.groups[group] }
    }

    /// Changes with every `forget`: read it before reading the table.
    var generation: UInt64 { state.withLock { $0.generation } }

    func remember(_ members: Members, of group: String, readAt generation: UInt64) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.memberCount + members.list.count > capacity {
                state.groups.removeAll(keepingCapacity: true)
                state.memberCount = 0
            }
            state.memberCount += members.list.count - (state.groups[group]?.list.count ?? 0)
            state.groups[group] = members
        }
    }

    func forget(_ group: String) {
        state.withLock { state in
            state.generation &+= 1
            if let removed = state.groups.removeValue(forKey: group) { state.memberCount -= removed.list.count }
        }
    }
}
