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
    /// - v3: `messages.fanout_on_read` and `read_fanout_cursors` (fanout-on-read, docs/GROUPS.md).
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
        migrator.registerMigration("v2-read-positions") { db in
            try db.execute(sql: """
                CREATE TABLE read_positions (
                    conversation TEXT NOT NULL,
                    user TEXT NOT NULL,
                    up_to INTEGER NOT NULL,
                    PRIMARY KEY (conversation, user)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v3-fanout-on-read") { db in
            // `fanout_on_read = 1`: a group message some members get lazily, when their inbox is
            // next read (docs/GROUPS.md). The partial index holds only those, by group, so the
            // "anything waiting for this user?" probe and materialization are index range scans
            // and cost nothing for groups that never used fanout-on-read.
            // `read_fanout_cursors`: per (user, group), the id up to which the user's inbox is
            // complete for that group's fanout-on-read messages. It lives exactly as long as the
            // membership (the foreign key), and `group_id` leads its second index for that
            // cascade and for the "who is behind in this group" query of a commit.
            try db.execute(sql: """
                ALTER TABLE messages ADD COLUMN fanout_on_read INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX messages_fanout_on_read ON messages(to_id, id) WHERE fanout_on_read = 1;

                CREATE TABLE read_fanout_cursors (
                    user TEXT NOT NULL,
                    group_id TEXT NOT NULL,
                    last_id INTEGER NOT NULL,
                    PRIMARY KEY (user, group_id),
                    FOREIGN KEY (group_id, user) REFERENCES group_members(group_id, user) ON DELETE CASCADE
                ) WITHOUT ROWID;
                CREATE INDEX read_fanout_cursors_by_group ON read_fanout_cursors(group_id, user, last_id);
                INSERT INTO read_fanout_cursors(user, group_id, last_id) SELECT user, group_id, 0 FROM group_members;
                """)
        }
        registerPushMigration(in: &migrator)
        registerMediaMigration(&migrator)
        return migrator
    }
}
