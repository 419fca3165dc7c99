import GatewayCore
import PostgresNIO

extension PostgresStore {
    // MARK: GroupStore

    /// Creates a group with its members in the given order (a repeated member counts once).
    /// Throws `GatewayError(.conflict)` when the id is taken.
    public func createGroup(_ group: GroupInfo) async throws {
        let logger = self.logger
        try await access { [self] in
            try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO chat_groups(id, name, owner, created_at) VALUES (\(group.id), \(group.name), \(group.owner), \(group.createdAt))
                    ON CONFLICT (id) DO NOTHING RETURNING id
                    """, logger: logger)
                var created = false
                for try await _ in rows { created = true }
                if !created { throw GatewayError(.conflict, "group '\(group.id)' exists") }
                try await Self.addMembers(group.members, to: group.id, on: connection, logger: logger)
            }
        }
    }

    public func group(_ id: String) async throws -> GroupInfo? {
        try await access { [self] in
            try await client.withConnection { connection in try await Self.group(id, on: connection, logger: logger) }
        }
    }

    public func members(of group: String) async throws -> [String]? {
        try await access { [self] in
            let rows = try await client.query(
                """
                SELECT m.user_id FROM chat_groups g LEFT JOIN group_members m ON m.group_id = g.id
                WHERE g.id = \(group) ORDER BY m.position
                """, logger: logger)
            var members: [String]?
            for try await user in rows.decode(String?.self) {
                if members == nil { members = [] }
                if let user { members?.append(user) }
            }
            return members
        }
    }

    public func isMember(_ user: String, of group: String) async throws -> Bool {
        try await access { [self] in
            let rows = try await client.query(
                "SELECT 1 FROM group_members WHERE group_id = \(group) AND user_id = \(user)", logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    /// The groups `user` belongs to, sorted by id.
    public func groups(of user: String) async throws -> [GroupInfo] {
        try await access { [self] in
            let rows = try await client.query(
                """
                SELECT g.id, g.name, g.owner, g.created_at,
                       array(SELECT o.user_id FROM group_members o WHERE o.group_id = g.id ORDER BY o.position)
                FROM group_members m JOIN chat_groups g ON g.id = m.group_id
                WHERE m.user_id = \(user)
                ORDER BY g.id COLLATE "C"
                """, logger: logger)
            var groups: [GroupInfo] = []
            for try await (id, name, owner, createdAt, members) in rows.decode((String, String, String, Int64, [String]).self) {
                groups.append(GroupInfo(id: id, name: name, owner: owner, members: members, createdAt: createdAt))
            }
            return groups
        }
    }

    /// Adds the users of `add` not yet members (after the others, in the given order), then
    /// removes those of `remove`, in one transaction that holds the group's row lock (changes
    /// of one group from several nodes run one after the other). Throws `not_found`.
    public func updateMembers(of group: String, add: [String], remove: [String], maxMembers: Int) async throws -> GroupInfo {
        let logger = self.logger
        return try await access { [self] in
            try await client.withTransaction(logger: logger) { connection in
                var exists = false
                for try await _ in try await connection.query("SELECT 1 FROM chat_groups WHERE id = \(group) FOR UPDATE", logger: logger) {
                    exists = true
                }
                guard exists else { throw GatewayError.notFound("no group '\(group)'") }
                try await Self.addMembers(add, to: group, on: connection, logger: logger)
                if !remove.isEmpty {
                    try await connection.query(
                        "DELETE FROM group_members WHERE group_id = \(group) AND user_id = ANY(\(remove))", logger: logger)
                }
                guard let info = try await Self.group(group, on: connection, logger: logger) else {
                    throw GatewayError.notFound("no group '\(group)'")
                }
                // Thrown inside the transaction (the group row is locked): nothing of it is kept.
                guard info.members.count <= maxMembers else {
                    throw GatewayError(.tooLarge, "a group has at most \(maxMembers) members")
                }
                return info
            }
        }
    }

    // MARK: Statements

    /// Appends `users` to the group's members, skipping those already in it (one statement).
    static func addMembers(_ users: [String], to group: String, on connection: PostgresConnection, logger: Logger) async throws {
        if users.isEmpty { return }
        try await connection.query(
            """
            INSERT INTO group_members(group_id, user_id, position)
            SELECT \(group), u.user_id, (SELECT coalesce(max(position), 0) FROM group_members WHERE group_id = \(group)) + u.n
            FROM unnest(\(users)) WITH ORDINALITY AS u(user_id, n)
            ORDER BY u.n
            ON CONFLICT (group_id, user_id) DO NOTHING
            """, logger: logger)
    }

    static func group(_ id: String, on connection: PostgresConnection, logger: Logger) async throws -> GroupInfo? {
        let rows = try await connection.query(
            """
            SELECT g.name, g.owner, g.created_at,
                   array(SELECT m.user_id FROM group_members m WHERE m.group_id = g.id ORDER BY m.position)
            FROM chat_groups g WHERE g.id = \(id)
            """, logger: logger)
        for try await (name, owner, createdAt, members) in rows.decode((String, String, Int64, [String]).self) {
            return GroupInfo(id: id, name: name, owner: owner, members: members, createdAt: createdAt)
        }
        return nil
    }
}

extension PostgresStore {
    // MARK: ReceiptStore

    /// Moves `user`'s read position in `conversation` forward (never back).
    public func markRead(user: String, conversation: String, upTo: UInt64) async throws -> Bool {
        try await access { [self] in
            let rows = try await client.query(
                """
                INSERT INTO read_positions AS r(conversation, user_id, up_to) VALUES (\(conversation), \(user), \(Int64(bitPattern: upTo)))
                ON CONFLICT (conversation, user_id) DO UPDATE SET up_to = excluded.up_to WHERE excluded.up_to > r.up_to
                RETURNING 1
                """, logger: logger)
            var moved = false
            for try await _ in rows { moved = true }
            return moved
        }
    }

    public func readPositions(conversation: String) async throws -> [String: UInt64] {
        try await access { [self] in
            let rows = try await client.query(
                "SELECT user_id, up_to FROM read_positions WHERE conversation = \(conversation)", logger: logger)
            var positions: [String: UInt64] = [:]
            for try await (user, upTo) in rows.decode((String, Int64).self) {
                positions[user] = UInt64(bitPattern: upTo)
            }
            return positions
        }
    }
}
