import GatewayCore
import PostgresNIO

extension PostgresStore: MediaMetadataStore {
    /// The record and its share of the totals in one statement (one transaction); an id already
    /// stored is a `conflict`.
    public func insertMedia(_ record: MediaRecord) async throws {
        let width = record.width.map { Int64($0) }
        let height = record.height.map { Int64($0) }
        try await access { [self] in
            let rows = try await client.query(
                """
                WITH inserted AS (
                    INSERT INTO media(id, uploader, content_type, name, size, stored_size, compression, sha256, blob_key,
                                      width, height, thumbnail_id, original_id, created_at)
                    VALUES (\(record.id), \(record.uploader), \(record.contentType), \(record.name), \(record.size), \(record.storedSize),
                            \(record.compression.rawValue), \(record.sha256), \(record.blobKey), \(width)::integer, \(height)::integer,
                            \(record.thumbnailID), \(record.originalID), \(record.createdAt))
                    ON CONFLICT (id) DO NOTHING
                    RETURNING size, stored_size, original_id
                ), totals AS (
                    INSERT INTO media_totals AS t(shard, uploads, bytes_in, bytes_stored)
                    SELECT pg_backend_pid() % 16, 1, size, stored_size FROM inserted WHERE original_id IS NULL
                    ON CONFLICT (shard) DO UPDATE SET uploads = t.uploads + 1, bytes_in = t.bytes_in + excluded.bytes_in,
                                                      bytes_stored = t.bytes_stored + excluded.bytes_stored
                )
                SELECT count(*) FROM inserted
                """, logger: logger)
            var inserted = false
            for try await count in rows.decode(Int64.self) { inserted = count > 0 }
            if !inserted { throw GatewayError(.conflict, "media id \(record.id) exists") }
        }
    }

    public func media(_ id: String) async throws -> MediaRecord? {
        try await access { [self] in
            let rows = try await client.query(
                """
                SELECT id, uploader, content_type, name, size, stored_size, compression, sha256, blob_key, width, height,
                       thumbnail_id, original_id, created_at FROM media WHERE id = \(id)
                """, logger: logger)
            for try await row in rows {
                let c = row.makeRandomAccess()
                return MediaRecord(
                    id: try c[0].decode(String.self), uploader: try c[1].decode(String.self), contentType: try c[2].decode(String.self),
                    name: try c[3].decode(String?.self), size: try c[4].decode(Int64.self), storedSize: try c[5].decode(Int64.self),
                    compression: MediaCompression(rawValue: try c[6].decode(String.self)) ?? .none, sha256: try c[7].decode(String.self),
                    blobKey: try c[8].decode(String.self), width: try c[9].decode(Int32?.self).map(Int.init),
                    height: try c[10].decode(Int32?.self).map(Int.init), thumbnailID: try c[11].decode(String?.self),
                    originalID: try c[12].decode(String?.self), createdAt: try c[13].decode(Int64.self))
            }
            return nil
        }
    }

    /// One statement; unknown ids are ignored, a pair already recorded is kept once.
    public func recordMediaSent(_ ids: [String], conversation: String) async throws {
        if ids.isEmpty { return }
        try await access { [self] in
            try await client.query(
                """
                INSERT INTO media_conversations(media_id, conversation)
                SELECT id, \(conversation) FROM media WHERE id = ANY(\(ids))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            return ()
        }
    }

    public func mediaConversations(_ id: String) async throws -> [String] {
        try await access { [self] in
            let rows = try await client.query("SELECT conversation FROM media_conversations WHERE media_id = \(id)", logger: logger)
            var conversations: [String] = []
            for try await conversation in rows.decode(String.self) { conversations.append(conversation) }
            return conversations
        }
    }

    public func mediaBytes(uploadedBy user: String) async throws -> Int64 {
        try await access { [self] in
            let rows = try await client.query(
                "SELECT coalesce(sum(size), 0)::bigint FROM media WHERE uploader = \(user) AND original_id IS NULL", logger: logger)
            for try await bytes in rows.decode(Int64.self) { return bytes }
            return 0
        }
    }

    public func mediaStatistics() async throws -> MediaStatistics {
        try await access { [self] in
            let rows = try await client.query(
                """
                SELECT coalesce(sum(uploads), 0)::bigint, coalesce(sum(bytes_in), 0)::bigint, coalesce(sum(bytes_stored), 0)::bigint
                FROM media_totals
                """, logger: logger)
            for try await (uploads, bytesIn, bytesStored) in rows.decode((Int64, Int64, Int64).self) {
                return MediaStatistics(uploads: Int(uploads), bytesIn: bytesIn, bytesStored: bytesStored)
            }
            return MediaStatistics(uploads: 0, bytesIn: 0, bytesStored: 0)
        }
    }
}
