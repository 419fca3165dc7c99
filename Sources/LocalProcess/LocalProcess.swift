import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the bench and the tests both need to run a local server by hand: a program run to its
/// end from synchronous code, a free port of 127.0.0.1, and where Debian keeps PostgreSQL.
public enum LocalProcess {
    /// Calls `body` with `posix_spawn` attributes under which the child starts with no signal
    /// blocked and every signal at its default action: a child inherits the signal mask of the
    /// thread that spawns it, and a thread of a test process may block signals (SIGTERM,
    /// SIGCHLD), so a `kill` would not end the child.
    public static func withDefaultSignals<T>(_ body: (UnsafePointer<posix_spawnattr_t>) throws -> T) rethrows -> T {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        return try body(&attributes)
    }

    /// Runs `path arguments…` to its end and returns its exit status (128 + the signal's number
    /// when a signal ended it, as a shell reports it). stdin is /dev/null; stdout and stderr go to `outputPath` (a file, not a pipe: a
    /// server the program starts, as `pg_ctl` does, inherits them and a pipe would never reach
    /// its end). `waitpid` on the child's own pid needs no `SIGCHLD` and returns however busy
    /// the process's threads are.
    public static func run(_ path: String, _ arguments: [String], outputPath: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = withDefaultSignals { attributes in posix_spawn(&pid, path, &actions, attributes, argv, environ) }
        guard spawned == 0 else { throw LocalProcessError("cannot run \(path): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw LocalProcessError("waitpid failed for \(path): errno \(errno)") }
        }
        // WIFEXITED and WEXITSTATUS, by hand: they are C macros.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Runs a program to its end; throws with (the start of) its output when it fails.
    public static func check(_ path: String, _ arguments: [String]) throws {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-run-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let status = try run(path, arguments, outputPath: outputPath)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw LocalProcessError("\(path) \(arguments.joined(separator: " ")) failed (status \(status)): \(text.prefix(2000))")
        }
    }

    /// A port of 127.0.0.1 free right now (the kernel's pick for port 0).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalProcessError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw LocalProcessError("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw LocalProcessError("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, or `PG_BIN` when set.
    public static func postgresBinDirectory() -> String? {
        if let explicit = ProcessInfo.processInfo.environment["PG_BIN"], FileManager.default.isExecutableFile(atPath: explicit + "/initdb") {
            return explicit
        }
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap(Int.init).sorted(by: >).map { "\(root)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }
    }
}

public struct LocalProcessError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
