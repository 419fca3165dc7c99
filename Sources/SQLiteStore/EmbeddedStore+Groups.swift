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
        if let cached = membersCache.members(of: group) { return cached }
        let generation = membersCache.generation
        let members = try await read { db -> [String]? in
            let exists = try db.cachedStatement(sql: "SELECT 1 FROM chat_groups WHERE id = ?")
            guard try Bool.fetchOne(exists, arguments: [group]) != nil else { return nil }
            return try Self.members(of: group, in: db)
        }
        if let members { membersCache.remember(members, of: group, readAt: generation) }
        return members
    }

    public func isMember(_ user: String, of group: String) async throws -> Bool {
        try await read { db in
            let statement = try db.cachedStatement(sql: "SELECT 1 FROM group_members WHERE group_id = ? AND user = ?")
            return try Bool.fetchOne(statement, arguments: [group, user]) != nil
        }
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
    public func updateMembers(of group: String, add: [String], remove: [String]) async throws -> GroupInfo {
        let chunk = materializationChunk
        let cache = headCache
        defer { membersCache.forget(group) }
        return try await write { db in
            let exists = try db.cachedStatement(sql: "SELECT 1 FROM chat_groups WHERE id = ?")
            guard try Bool.fetchOne(exists, arguments: [group]) != nil else {
                throw GatewayError.notFound("no group '\(group)'")
            }
            try Self.addMembers(add, to: group, in: db)
            let delete = try db.cachedStatement(sql: "DELETE FROM group_members WHERE group_id = ? AND user = ?")
            for user in remove {
                try Self.materializeAll(user: user, group: group, chunk: chunk, heads: cache, in: db)
                try delete.execute(arguments: [group, user])
            }
            guard let info = try Self.group(group, in: db) else {
                throw GatewayError.notFound("no group '\(group)'")
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

/// Members of recently used groups, as committed: a group send resolves its recipients without
/// a read. A membership change forgets the group once its transaction is over; a read that
/// overlapped a change (the generation moved) is not remembered, so the cache never brings back
/// a list older than the last change. Past `capacity` groups it starts afresh.
final class GroupMembersCache: Sendable {
    private struct State {
        var members: [String: [String]] = [:]
        var generation: UInt64 = 0
    }

    /// Guards the lists and the generation.
    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int = 10_000) {
        self.capacity = max(1, capacity)
    }

    func members(of group: String) -> [String]? {
        state.withLock { $0.members[group] }
    }

    /// Changes with every `forget`: read it before reading the table.
    var generation: UInt64 { state.withLock { $0.generation } }

    func remember(_ members: [String], of group: String, readAt generation: UInt64) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.members.count >= capacity { state.members.removeAll(keepingCapacity: true) }
            state.members[group] = members
        }
    }

    func forget(_ group: String) {
        state.withLock { state in
            state.generation &+= 1
            state.members[group] = nil
        }
    }
}
