import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What a process has used so far, read from `/proc/<pid>` (Linux).
struct ProcessSample: Sendable, Equatable {
    /// Resident set size (`VmRSS`).
    var rssBytes: Int
    /// User plus system CPU time.
    var cpuSeconds: Double
    /// Monotonic time of the sample.
    var atNanos: UInt64

    /// Reads a process's sample; nil when `/proc` has no such process (or is not Linux).
    static func read(pid: Int32) -> ProcessSample? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        else { return nil }
        guard let rss = parseRSS(status: status), let cpu = parseCPU(stat: stat, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
        else { return nil }
        return ProcessSample(rssBytes: rss, cpuSeconds: cpu, atNanos: MonotonicClock.nanos())
    }

    static func readSelf() -> ProcessSample? {
        read(pid: getpid())
    }

    /// `VmRSS:   12345 kB` → bytes.
    static func parseRSS(status: String) -> Int? {
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, let kib = Int(fields[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }

    /// utime + stime (fields 14 and 15 of `/proc/<pid>/stat`; the command name in parentheses
    /// may hold spaces, so fields are counted after its closing parenthesis).
    static func parseCPU(stat: String, ticksPerSecond: Double) -> Double? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        // After ")": field 3 (state) is fields[0], so utime (14) is fields[11], stime (15) fields[12].
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]), ticksPerSecond > 0 else { return nil }
        return (user + system) / ticksPerSecond
    }

    /// CPU use between two samples, in percent of one core.
    static func cpuPercent(from start: ProcessSample, to end: ProcessSample) -> Double {
        let wall = Double(end.atNanos &- start.atNanos) / 1e9
        guard wall > 0 else { return 0 }
        return (end.cpuSeconds - start.cpuSeconds) / wall * 100
    }
}

/// The machine a run happened on, for the report.
public struct MachineInfo: Sendable, Equatable {
    /// Processors this process may run on.
    public var cores: Int
    /// `model name` from /proc/cpuinfo.
    public var model: String

    static func current() -> MachineInfo {
        var model = "unknown"
        if let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) {
            for line in cpuinfo.split(separator: "\n") where line.hasPrefix("model name") {
                if let colon = line.firstIndex(of: ":") {
                    model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                break
            }
        }
        return MachineInfo(cores: ProcessInfo.processInfo.activeProcessorCount, model: model)
    }

    /// The soft limit on open files of this process (children inherit it).
    static func openFilesLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        // RLIM_INFINITY is all ones (the macro does not import as a typed constant).
        return limit.rlim_cur == rlim_t.max ? 1 << 20 : Int(limit.rlim_cur)
    }
}

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`): the generator stamps sends and receives with the
/// same clock in the same process, so end-to-end latency needs no clock sync.
enum MonotonicClock {
    @inline(__always)
    static func nanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }
}
