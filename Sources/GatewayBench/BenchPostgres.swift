import Foundation
import LocalProcess
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The PostgreSQL server of `chatgate bench --postgres`: a private one the bench starts (Debian's
/// binaries: initdb, then pg_ctl on a free port of 127.0.0.1 with `fsync=on`,
/// `synchronous_commit=on` and the WAL settings docs/OPERATIONS.md recommends, as root as the
/// `postgres` user), or the one `--database-url` names.
/// Each measured gateway gets a fresh database, dropped after the run.
final class BenchPostgres: Sendable {
    /// A database where `CREATE DATABASE` runs (`postgres` of the private server, or the URL's).
    let adminURL: String
    /// `psql`, which creates and drops the databases.
    let psql: String
    /// The private server's directory and binaries (nil for `--database-url`).
    private let owned: (directory: String, bin: String, asPostgresUser: Bool)?
    private let counter = Counter()

    private init(adminURL: String, psql: String, owned: (directory: String, bin: String, asPostgresUser: Bool)?) {
        self.adminURL = adminURL
        self.psql = psql
        self.owned = owned
    }

    /// Starts a private server, or checks that `databaseURL`'s server answers.
    static func start(databaseURL: String?, log: @Sendable (String) -> Void) throws -> BenchPostgres {
        if let databaseURL {
            guard let psql = ChildProcess.findExecutable("psql") ?? binDirectory().map({ $0 + "/psql" }) else {
                throw BenchError("--database-url needs psql (Debian's postgresql-client) to create the bench's databases")
            }
            let server = BenchPostgres(adminURL: databaseURL, psql: psql, owned: nil)
            try server.sql("SELECT 1")
            return server
        }
        guard let bin = binDirectory() else {
            throw BenchError("--postgres needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb; run scripts/setup-postgres.sh) or --database-url")
        }
        let asPostgresUser = getuid() == 0
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-bench-pg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if asPostgresUser { try run("/bin/chown", ["postgres", directory]) }
        let port = try LocalProcess.freePort()
        let server = BenchPostgres(
            adminURL: "postgres://postgres@127.0.0.1:\(port)/postgres", psql: bin + "/psql", owned: (directory, bin, asPostgresUser))
        do {
            try server.asServerUser("initdb", ["-D", directory + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            let options = "-p \(port) -h 127.0.0.1 -k \(directory) -c fsync=on -c synchronous_commit=on -c max_connections=300"
                + " -c shared_buffers=128MB -c listen_addresses=127.0.0.1"
                // What docs/OPERATIONS.md recommends for a gateway primary (fsync and
                // full_page_writes stay at their defaults).
                + " -c wal_compression=on -c max_wal_size=4GB -c checkpoint_completion_target=0.9"
            try server.asServerUser("pg_ctl", ["-D", directory + "/data", "-o", options, "-l", directory + "/server.log", "-w", "-t", "60", "start"])
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        log("PostgreSQL started on 127.0.0.1:\(port) (\(bin))")
        return server
    }

    /// Creates an empty database; its URL.
    func createDatabase() throws -> String {
        let name = "chatgate_bench_\(getpid())_\(counter.next())"
        try sql("CREATE DATABASE \(name)")
        guard var components = URLComponents(string: adminURL) else { throw BenchError("cannot parse the database URL") }
        components.path = "/" + name
        guard let url = components.string else { throw BenchError("cannot build the database URL") }
        return url
    }

    /// Drops a database `createDatabase` made (its connections are ended).
    func dropDatabase(_ url: String) {
        guard let name = URLComponents(string: url)?.path.dropFirst(), name.hasPrefix("chatgate_bench_") else { return }
        try? sql("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Stops the private server and removes its files (nothing for `--database-url`).
    func stop() {
        guard let owned else { return }
        try? asServerUser("pg_ctl", ["-D", owned.directory + "/data", "-m", "fast", "-w", "stop"])
        try? FileManager.default.removeItem(atPath: owned.directory)
    }

    /// CPU seconds the private server has used so far: its postmaster and every live child
    /// (backends, WAL writer, checkpointer), plus what its exited children used; nil for
    /// `--database-url` or when `/proc` cannot tell.
    func cpuSeconds() -> Double? {
        guard let owned,
            let pidText = try? String(contentsOfFile: owned.directory + "/data/postmaster.pid", encoding: .utf8),
            let postmaster = pidText.split(separator: "\n").first.flatMap({ Int32($0) })
        else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        /// Fields after the command name: state (0), ppid (1), … utime (11), stime (12), cutime (13), cstime (14).
        func fields(_ pid: String) -> [Substring]? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        }
        guard let own = fields(String(postmaster)), own.count > 14, ticks > 0 else { return nil }
        var total = (own[11...14].compactMap { Double($0) }).reduce(0, +)
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where entry.allSatisfy(\.isNumber) {
            guard let child = fields(entry), child.count > 12, Int32(child[1]) == postmaster else { continue }
            total += (Double(child[11]) ?? 0) + (Double(child[12]) ?? 0)
        }
        return total / ticks
    }

    private func sql(_ statement: String) throws {
        try Self.run(psql, ["-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", adminURL, "-c", statement])
    }

    private func asServerUser(_ tool: String, _ arguments: [String]) throws {
        guard let owned else { return }
        if owned.asPostgresUser {
            try Self.run("/sbin/runuser", ["-u", "postgres", "--", owned.bin + "/" + tool] + arguments)
        } else {
            try Self.run(owned.bin + "/" + tool, arguments)
        }
    }

    static func binDirectory() -> String? { LocalProcess.postgresBinDirectory() }

    /// Runs a program to its end (`LocalProcess.check`); throws with its output on failure.
    static func run(_ path: String, _ arguments: [String]) throws {
        let executable = FileManager.default.isExecutableFile(atPath: path) ? path : "/usr" + path
        do {
            try LocalProcess.check(executable, arguments)
        } catch let error as LocalProcessError {
            throw BenchError(error.description)
        }
    }
}

/// Numbers the databases of one bench run.
private final class Counter: Sendable {
    private let value = Mutex(0)
    func next() -> Int {
        value.withLock { value in
            value += 1
            return value
        }
    }
}
