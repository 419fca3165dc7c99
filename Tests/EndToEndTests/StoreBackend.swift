import Foundation
import GatewayTesting
import Testing

/// The store a test's gateway runs on: the single-node behaviour tests (chat, groups,
/// kill -9 durability) run on both.
enum StoreBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// The `store:` line (and, on PostgreSQL, a `media:` line) of a gateway's config: a file in `directory`, or a fresh database of
    /// the test process's PostgreSQL server (the test is skipped, with the reason, when
    /// PostgreSQL is not installed and not required).
    func storeLine(directory: URL, durability: String = "relaxed") throws -> String {
        switch self {
        case .sqlite:
            return "store: { kind: sqlite, path: \"\(directory.path)/chat.db\", durability: \(durability) }"
        case .postgres:
            guard let server = try PostgresTestServer.shared() else {
                try Test.cancel(Comment(rawValue: PostgresTestServer.unavailableReason))
            }
            // timeout_ms 30000: see openPostgres in PostgresStoreTests (a loaded 2-core machine).
            // A test's nodes share its directory, so its media dir may be declared shared (media
            // backend fs is refused on PostgreSQL otherwise).
            return "store: { kind: postgres, url: \"\(try server.createDatabase())\", pool_size: 8, durability: \(durability), timeout_ms: 30000 }\n"
                + "media: { dir: \"\(directory.path)/media\", shared_dir: true }"
        }
    }
}
