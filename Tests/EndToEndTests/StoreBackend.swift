import Foundation
import Synchronization
import GatewayTesting
import Testing

/// The store a test's gateway runs on: the single-node behaviour tests (chat, groups,
/// kill -9 durability) run on both.
enum StoreBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    /// The store of every test that does not name one: `CHATGATE_TEST_STORE=postgres` runs the
    /// single-node behaviour suites on PostgreSQL (scripts/test.sh does, in its own phase);
    /// SQLite otherwise.
    static let `default`: StoreBackend = {
        let name = ProcessInfo.processInfo.environment["CHATGATE_TEST_STORE"] ?? "sqlite"
        guard let backend = StoreBackend(rawValue: name) else {
            fatalError("CHATGATE_TEST_STORE must be sqlite or postgres, not \(name)")
        }
        return backend
    }()

    /// The `store:` line (and, on PostgreSQL, a `media:` line unless `media` is false) of a
    /// gateway's config: a file in `directory`, or a database of the test process's PostgreSQL
    /// server, one per directory (a gateway restarted on the same directory finds its data) (the test is skipped, with the reason, when
    /// PostgreSQL is not installed and not required).
    func storeLine(directory: URL, durability: String = "relaxed", media: Bool = true) throws -> String {
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
            return "store: { kind: postgres, url: \"\(try Self.database(for: directory, on: server))\", pool_size: 8, durability: \(durability), timeout_ms: 30000 }"
                + (media ? "\nmedia: { dir: \"\(directory.path)/media\", shared_dir: true }" : "")
        }
    }

    /// The database of the gateways whose files are in `directory`: created the first time.
    private static func database(for directory: URL, on server: PostgresTestServer) throws -> String {
        if let url = databases.withLock({ $0[directory.path] }) { return url }
        let url = try server.createDatabase()
        return databases.withLock { databases in
            if let existing = databases[directory.path] { return existing }
            databases[directory.path] = url
            return url
        }
    }

    private static let databases = Mutex<[String: String]>([:])
}
