import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The PostgreSQL server of `chatgate bench --postgres`: a private one the bench starts (Debian's
/// binaries: initdb, then pg_ctl on a free port of 127.0.0.1 with `fsync=on` and
/// `synchronous_commit=on`, as root as the `postgres` user), or the one `--database-url` names.
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
        let port = try freePort()
        let server = BenchPostgres(
            adminURL: "postgres://postgres@127.0.0.1:\(port)/postgres", psql: bin + "/psql", owned: (directory, bin, asPostgresUser))
        do {
            try server.asServerUser("initdb", ["-D", directory + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
            let options = "-p \(port) -h 127.0.0.1 -k \(directory) -c fsync=on -c synchronous_commit=on -c max_connections=300"
                + " -c shared_buffers=128MB -c listen_addresses=127.0.0.1"
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

    /// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, or `PG_BIN`.
    static func binDirectory() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["PG_BIN"], FileManager.default.isExecutableFile(atPath: explicit + "/initdb") {
            return explicit
        }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap(Int.init).sorted(by: >).map { "\(root)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }

    /// Runs a program to its end, its output into a file (the server `pg_ctl` starts inherits
    /// the descriptors: a pipe would never reach its end); throws with the output on failure.
    static func run(_ path: String, _ arguments: [String]) throws {
        let executable = FileManager.default.isExecutableFile(atPath: path) ? path : "/usr" + path
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-bench-pg-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw BenchError("cannot run \(executable): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw BenchError("waitpid failed for \(executable): errno \(errno)") }
        }
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw BenchError("\(executable) \(arguments.joined(separator: " ")) failed (status \(status)): \(text.prefix(500))")
        }
    }

    /// A port of 127.0.0.1 free right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw BenchError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw BenchError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
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
