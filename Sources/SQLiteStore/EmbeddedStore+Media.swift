import GRDB
import GatewayCore

extension EmbeddedStore: MediaMetadataStore {
    public func insertMedia(_ record: MediaRecord) async throws {
        try await write { db in
            do {
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO media(id, uploader, content_type, name, size, stored_size, compression, sha256, blob_key,
                                      width, height, thumbnail_id, original_id, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                try insert.execute(arguments: [
                    record.id, record.uploader, record.contentType, record.name, record.size, record.storedSize,
                    record.compression.rawValue, record.sha256, record.blobKey, record.width, record.height, record.thumbnailID,
                    record.originalID, record.createdAt,
                ])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw GatewayError(.conflict, "media id \(record.id) exists")
            }
            if record.originalID == nil {
                try db.execute(
                    sql: "UPDATE media_totals SET uploads = uploads + 1, bytes_in = bytes_in + ?, bytes_stored = bytes_stored + ? WHERE id = 1",
                    arguments: [record.size, record.storedSize])
            }
        }
    }

    public func media(_ id: String) async throws -> MediaRecord? {
        try await read { db in
            let select = try db.cachedStatement(sql: """
                SELECT id, uploader, content_type, name, size, stored_size, compression, sha256, blob_key, width, height,
                       thumbnail_id, original_id, created_at FROM media WHERE id = ?
                """)
            guard let row = try Row.fetchOne(select, arguments: [id]) else { return nil }
            return MediaRecord(
                id: row[0], uploader: row[1], contentType: row[2], name: row[3], size: row[4], storedSize: row[5],
                compression: MediaCompression(rawValue: row[6]) ?? .none, sha256: row[7], blobKey: row[8], width: row[9], height: row[10],
                thumbnailID: row[11], originalID: row[12], createdAt: row[13])
        }
    }

    public func recordMediaSent(_ ids: [String], conversation: String) async throws {
        if ids.isEmpty { return }
        try await write { db in
            let insert = try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO media_conversations(media_id, conversation)
                SELECT id, ? FROM media WHERE id = ?
                """)
            for id in ids { try insert.execute(arguments: [conversation, id]) }
        }
    }

    public func mediaConversations(_ id: String) async throws -> [String] {
        try await read { db in
            try String.fetchAll(db, sql: "SELECT conversation FROM media_conversations WHERE media_id = ?", arguments: [id])
        }
    }

    public func mediaBytes(uploadedBy user: String) async throws -> Int64 {
        try await read { db in
            try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(size), 0) FROM media WHERE uploader = ? AND original_id IS NULL", arguments: [user]) ?? 0
        }
    }

    public func mediaStatistics() async throws -> MediaStatistics {
        try await read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT uploads, bytes_in, bytes_stored FROM media_totals WHERE id = 1") else {
                return MediaStatistics(uploads: 0, bytesIn: 0, bytesStored: 0)
            }
            return MediaStatistics(uploads: row[0], bytesIn: row[1], bytesStored: row[2])
        }
    }
}
