import GRDB

extension EmbeddedStore {
    /// v4: media metadata (docs/MEDIA.md).
    ///
    /// - `media`: one row per stored file; `original_id` is set for thumbnails. The blobs
    ///   themselves live in the media backend under `blob_key`.
    /// - `media_conversations`: the conversations each media id was sent in (who may read it).
    /// - `media_totals`: one row of totals for `/admin/stats`, kept by `insertMedia`.
    static func registerMediaMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4-media") { db in
            try db.execute(sql: """
                CREATE TABLE media (
                    id TEXT PRIMARY KEY,
                    uploader TEXT NOT NULL,
                    content_type TEXT NOT NULL,
                    name TEXT,
                    size INTEGER NOT NULL,
                    stored_size INTEGER NOT NULL,
                    compression TEXT NOT NULL,
                    sha256 TEXT NOT NULL,
                    blob_key TEXT NOT NULL,
                    width INTEGER,
                    height INTEGER,
                    thumbnail_id TEXT,
                    original_id TEXT,
                    created_at INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX media_by_uploader ON media(uploader) WHERE original_id IS NULL;

                CREATE TABLE media_conversations (
                    media_id TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
                    conversation TEXT NOT NULL,
                    PRIMARY KEY (media_id, conversation)
                ) WITHOUT ROWID;

                CREATE TABLE media_totals (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    uploads INTEGER NOT NULL,
                    bytes_in INTEGER NOT NULL,
                    bytes_stored INTEGER NOT NULL
                );
                INSERT INTO media_totals(id, uploads, bytes_in, bytes_stored) VALUES (1, 0, 0, 0);
                """)
        }
    }
}
