import GRDB
import GatewayCore

extension EmbeddedStore {
    /// What a failure of SQLite means to the client.
    ///
    /// Conditions the client should retry through (busy or locked database, disk full, I/O
    /// errors, a closed or unopenable file) become `GatewayError.unavailable`, with SQLite's
    /// code in the message for the log. Anything else (a constraint violated by a bug, a
    /// malformed statement) is rethrown as is and reaches the client as `internal`.
    static func storeError(_ error: any Error) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        let reason: String
        switch error.resultCode.primaryResultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED: reason = "the database is busy"
        case .SQLITE_FULL: reason = "the disk is full"
        case .SQLITE_IOERR: reason = "disk I/O error"
        case .SQLITE_CANTOPEN: reason = "cannot open the database file"
        case .SQLITE_READONLY: reason = "the database is read-only"
        case .SQLITE_NOMEM: reason = "out of memory"
        case .SQLITE_PROTOCOL: reason = "database lock protocol error"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: reason = "the database file is damaged"
        case .SQLITE_INTERRUPT: reason = "the operation was interrupted"
        // GRDB reports use of a closed connection as misuse: a call racing `close()`.
        case .SQLITE_MISUSE: reason = "the store is closed"
        default: return error
        }
        return GatewayError.unavailable("store unavailable: \(reason) (SQLite \(error.extendedResultCode.rawValue))")
    }
}
