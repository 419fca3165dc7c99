import GRDB

extension EmbeddedStore {
    /// The schema, one migration per change; a migration never changes once released.
    ///
    /// - `messages`: one row per stored message. `id` is the Snowflake (below 2^63, so it fits
    ///   `INTEGER PRIMARY KEY`, the rowid). `UNIQUE(sender, client_msg_id)` is the dedupe
    ///   record; `sender_seq` is the sender's inbox seq of the message (0 when none), which a
    ///   duplicate send answers with. `to_kind` is 0 for a user, 1 for a group.
    /// - `inbox`: one row per (user, seq); `message_id` has no foreign key, to keep the hot path
    ///   to one B-tree insert per entry (only `commit` writes it, in the message's transaction).
    /// - `inbox_heads`: each user's highest seq, the source of the next one.
    /// - `counters`: one row of totals kept by `commit`, so `statistics()` need not count rows.
    /// - `chat_groups` and `group_members`, with `position` keeping the order of joining.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE messages (
                    id INTEGER PRIMARY KEY,
                    conversation TEXT NOT NULL,
                    sender TEXT NOT NULL,
                    to_kind INTEGER NOT NULL,
                    to_id TEXT NOT NULL,
                    client_msg_id TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    body BLOB NOT NULL,
                    attachments BLOB,
                    sender_seq INTEGER NOT NULL DEFAULT 0,
                    UNIQUE (sender, client_msg_id)
                );
                CREATE INDEX messages_by_conversation ON messages(conversation, id);

                CREATE TABLE inbox (
                    user TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    message_id INTEGER NOT NULL,
                    PRIMARY KEY (user, seq)
                ) WITHOUT ROWID;

                CREATE TABLE inbox_heads (
                    user TEXT PRIMARY KEY,
                    seq INTEGER NOT NULL
                ) WITHOUT ROWID;

                CREATE TABLE counters (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    messages INTEGER NOT NULL,
                    inbox_entries INTEGER NOT NULL
                );
                INSERT INTO counters(id, messages, inbox_entries) VALUES (1, 0, 0);

                CREATE TABLE chat_groups (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    owner TEXT NOT NULL,
                    created_at INTEGER NOT NULL
                ) WITHOUT ROWID;

                CREATE TABLE group_members (
                    group_id TEXT NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,
                    user TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    PRIMARY KEY (group_id, user)
                ) WITHOUT ROWID;
                CREATE INDEX group_members_by_user ON group_members(user, group_id);
                """)
        }
        return migrator
    }
}
