import GRDB
import GRDBSQLite

/// One of GRDB's cached statements driven through SQLite's C API, for the commit's hot
/// inserts: binding values straight from Swift strings, integers and byte arrays skips
/// GRDB's `StatementArguments` (an array of `DatabaseValue`s per execution) and the `Data`
/// copy of each body.
///
/// Only the commit uses these statements, on the writer connection, and always leaves them
/// reset; GRDB keeps owning (and finalizing) them.
struct BoundStatement {
    private let statement: Statement
    private let handle: OpaquePointer

    init(_ statement: Statement) {
        self.statement = statement
        self.handle = statement.sqliteStatement
        sqlite3_reset(handle)
    }

    /// SQLite copies the bytes (its `SQLITE_TRANSIENT`).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    func bind(_ index: Int32, _ value: Int64) {
        sqlite3_bind_int64(handle, index, value)
    }

    func bind(_ index: Int32, _ value: String) {
        var value = value
        value.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { text in
                if let base = text.baseAddress {
                    _ = sqlite3_bind_text(handle, index, base, Int32(text.count), Self.transient)
                } else {
                    // An empty string is still text, not NULL.
                    _ = sqlite3_bind_text(handle, index, "", 0, Self.transient)
                }
            }
        }
    }

    /// A blob, or NULL for nil.
    func bind(_ index: Int32, bytes: [UInt8]?) {
        guard let bytes else {
            sqlite3_bind_null(handle, index)
            return
        }
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress {
                _ = sqlite3_bind_blob(handle, index, base, Int32(raw.count), Self.transient)
            } else {
                // An empty body is still a blob, not NULL.
                _ = sqlite3_bind_zeroblob(handle, index, 0)
            }
        }
    }

    /// Runs the statement (which must return no rows) and resets it.
    func execute(in db: Database) throws {
        let code = sqlite3_step(handle)
        guard code == SQLITE_DONE else {
            let connection = db.sqliteConnection
            let extended = connection.map { sqlite3_extended_errcode($0) } ?? code
            let message = connection.map { String(cString: sqlite3_errmsg($0)) }
            sqlite3_reset(handle)
            throw DatabaseError(resultCode: ResultCode(rawValue: extended), message: message, sql: statement.sql)
        }
        sqlite3_reset(handle)
    }
}
