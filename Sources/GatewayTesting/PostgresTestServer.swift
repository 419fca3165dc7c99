import Foundation
import LocalProcess
import Synchronization

/// A private PostgreSQL server for tests: one per test process, started on first use in a
/// temporary directory (initdb, then pg_ctl on a free port of 127.0.0.1, `fsync=on`), stopped
/// when the process exits. Each test asks it for a fresh database.
///
/// ```swift
/// guard let server = try PostgresTestServer.shared() else { try Test.cancel(PostgresTestServer.unavailableReason) }
/// let url = try server.createDatabase()   // postgres://postgres@127.0.0.1:PORT/t_…
/// ```
///
/// It runs Debian's `postgresql` binaries (`/usr/lib/postgresql/<version>/bin`, installed by
/// `scripts/setup-postgres.sh`); as root, as the `postgres` user through `runuser` (PostgreSQL
/// refuses to run as root). When the binaries are missing, `shared()` returns nil, unless
/// `CHATGATE_REQUIRE_POSTGRES` is set (as `scripts/test.sh` does), where it throws: in CI a
/// missing PostgreSQL fails the tests rather than skipping them.
public final class PostgresTestServer: Sendable {
    public let port: Int
    public let directory: String
    let binDirectory: String
    let asPostgresUser: Bool
    private let databaseCounter = Mutex(0)

    /// Why PostgreSQL tests are skipped on this machine.
    public static let unavailableReason =
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/setup-postgres.sh"

    /// Whether the PostgreSQL binaries are here, or the tests must run anyway (and fail).
    public static var isAvailable: Bool {
        binDirectory() != nil || ProcessInfo.processInfo.environment["CHATGATE_REQUIRE_POSTGRES"] != nil
    }

    private static let instance = Mutex<Result<PostgresTestServer, TestServerError>?>(nil)

    /// The server of this test process, started on the first call; nil when PostgreSQL is not
    /// installed and not required.
    public static func shared() throws -> PostgresTestServer? {
        try instance.withLock { instance in
            if let instance { return try instance.get() }
            guard let bin = binDirectory() else {
                if ProcessInfo.processInfo.environment["CHATGATE_REQUIRE_POSTGRES"] != nil {
                    let failure = TestServerError("CHATGATE_REQUIRE_POSTGRES is set but " + unavailableReason)
                    instance = .failure(failure)
                    throw failure
                }
                return nil
            }
            do {
                let server = try PostgresTestServer(binDirectory: bin)
                instance = .success(server)
                return server
            } catch let error as TestServerError {
                instance = .failure(error)
                throw error
            }
        }
    }

    /// A server of its own (not the shared one), for a test that stops and restarts it; nil
    /// when PostgreSQL is not installed and not required. Stopped when the process exits.
    public static func makePrivate() throws -> PostgresTestServer? {
        guard let bin = binDirectory() else {
            if ProcessInfo.processInfo.environment["CHATGATE_REQUIRE_POSTGRES"] != nil {
                throw TestServerError("CHATGATE_REQUIRE_POSTGRES is set but " + unavailableReason)
            }
            return nil
        }
        return try PostgresTestServer(binDirectory: bin)
    }

    /// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, or `PG_BIN` when set.
    static func binDirectory() -> String? { LocalProcess.postgresBinDirectory() }

    private init(binDirectory: String) throws {
        self.binDirectory = binDirectory
        let asPostgresUser = getuid() == 0
        self.asPostgresUser = asPostgresUser
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-pg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        if asPostgresUser {
            try Self.run("/bin/chown", ["postgres", directory])
        }
        try Self.runAsServerUser(
            binDirectory: binDirectory, asPostgresUser: asPostgresUser, "initdb",
            ["-D", directory + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
        // A port free when asked can be taken before the server binds it (tests running in
        // parallel bind port 0 and connect from ephemeral ports all the time): the start then
        // fails, and with it every PostgreSQL test of the process. Another port is tried.
        var chosen: Int?
        for attempt in 1...5 where chosen == nil {
            let candidate = try Self.freePort()
            do {
                try Self.start(binDirectory: binDirectory, asPostgresUser: asPostgresUser, directory: directory, port: candidate)
                chosen = candidate
            } catch where attempt < 5 {
                continue
            }
        }
        port = chosen ?? 0
        Self.registerCleanup(self)
    }

    /// The URL of the server's `postgres` database.
    /// The last `bytes` of the server's log, for a failure message.
    public func logTail(_ bytes: Int = 2_000) -> String {
        let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
        return String(log.suffix(bytes))
    }

    public var adminURL: String { "postgres://postgres@127.0.0.1:\(port)/postgres" }

    /// Creates an empty database and returns its URL.
    public func createDatabase() throws -> String {
        let name = databaseCounter.withLock { counter in
            counter += 1
            return "t_\(getpid())_\(counter)"
        }
        try Self.run(binDirectory + "/psql", ["-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", adminURL, "-c", "CREATE DATABASE \(name)"])
        return "postgres://postgres@127.0.0.1:\(port)/\(name)"
    }

    /// Starts the server (again, after `stop`); returns once it accepts connections, or throws
    /// after `timeoutSeconds` (crash recovery on a loaded machine can take a while).
    public func start(timeoutSeconds: Int = 60) throws {
        try Self.start(binDirectory: binDirectory, asPostgresUser: asPostgresUser, directory: directory, port: port, timeoutSeconds: timeoutSeconds)
    }

    private static func start(binDirectory: String, asPostgresUser: Bool, directory: String, port: Int, timeoutSeconds: Int = 60) throws {
        let options = "-p \(port) -h 127.0.0.1 -k \(directory) -c fsync=on -c synchronous_commit=on -c max_connections=300"
            + " -c shared_buffers=64MB -c listen_addresses=127.0.0.1"
        try runAsServerUser(
            binDirectory: binDirectory, asPostgresUser: asPostgresUser, "pg_ctl",
            ["-D", directory + "/data", "-o", options, "-l", directory + "/server.log", "-w", "-t", String(timeoutSeconds), "start"])
    }

    /// Stops the server: `immediate` (the default) is like a crash (committed data survives,
    /// the next start recovers from the WAL); `fast` is a clean shutdown that ends sessions.
    public func stop(mode: String = "immediate") throws {
        try runAsServerUser("pg_ctl", ["-D", directory + "/data", "-m", mode, "-w", "stop"])
    }

    private func runAsServerUser(_ tool: String, _ arguments: [String]) throws {
        try Self.runAsServerUser(binDirectory: binDirectory, asPostgresUser: asPostgresUser, tool, arguments)
    }

    private static func runAsServerUser(binDirectory: String, asPostgresUser: Bool, _ tool: String, _ arguments: [String]) throws {
        if asPostgresUser {
            try Self.run("/sbin/runuser", ["-u", "postgres", "--", binDirectory + "/" + tool] + arguments)
        } else {
            try Self.run(binDirectory + "/" + tool, arguments)
        }
    }

    /// Runs a program to its end (`LocalProcess.check`); throws with its output when it fails.
    static func run(_ path: String, _ arguments: [String]) throws {
        let executable = FileManager.default.isExecutableFile(atPath: path) ? path : "/usr" + path
        do {
            try LocalProcess.check(executable, arguments)
        } catch let error as LocalProcessError {
            throw TestServerError(error.description)
        }
    }

    /// A port of 127.0.0.1 free right now.
    public static func freePort() throws -> Int { try LocalProcess.freePort() }

    // MARK: Cleanup

    /// The servers `atexit` stops and removes.
    private static let running = Mutex<[PostgresTestServer]>([])

    private static func registerCleanup(_ server: PostgresTestServer) {
        let first = running.withLock { running in
            running.append(server)
            return running.count == 1
        }
        if first {
            atexit {
                for server in PostgresTestServer.running.withLock({ $0 }) {
                    try? server.stop()
                    try? FileManager.default.removeItem(atPath: server.directory)
                }
            }
        }
        // Should the test process die without running `atexit` (kill -9), a watcher stops the
        // server once the process is gone.
        let watcher = Process()
        watcher.executableURL = URL(fileURLWithPath: "/bin/sh")
        let stop = server.asPostgresUser
            ? "/sbin/runuser -u postgres -- \(server.binDirectory)/pg_ctl -D \(server.directory)/data -m immediate stop"
            : "\(server.binDirectory)/pg_ctl -D \(server.directory)/data -m immediate stop"
        watcher.arguments = [
            "-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 2; done; \(stop) >/dev/null 2>&1; rm -rf \(server.directory)",
        ]
        watcher.standardOutput = FileHandle.nullDevice
        watcher.standardError = FileHandle.nullDevice
        try? watcher.run()
    }
}

public struct TestServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
