import Foundation
import NIOCore

/// Sizes NIO's event loops to the CPUs this process may run on.
///
/// NIO counts the machine's cores, not the process's affinity mask: a gateway pinned to one
/// core (`taskset`, a cpuset) would run two or more loops taking turns on it, paying a context
/// switch between them for nothing (measured: 5–10 % more relayed messages with one loop on one
/// core). `NIO_SINGLETON_GROUP_LOOP_COUNT`, when set, still decides.
enum EventLoopSizing {
    /// Call before anything uses NIO's singleton group.
    static func apply() {
        guard ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil,
            let allowed = allowedCPUCount(), allowed < System.coreCount
        else { return }
        NIOSingletons.groupLoopCountSuggestion = max(1, allowed)
    }

    /// The number of CPUs in this process's affinity mask, from `Cpus_allowed_list` in
    /// /proc/self/status (nil where it cannot be read).
    static func allowedCPUCount() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        return cpuCount(list: line.dropFirst("Cpus_allowed_list:".count))
    }

    /// The CPUs in a list such as `0-3,6,8-9` (nil when malformed).
    static func cpuCount(list: Substring) -> Int? {
        var count = 0
        for part in list.split(separator: ",") {
            let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            switch bounds.count {
            case 1:
                guard bounds[0] != nil else { return nil }
                count += 1
            case 2:
                guard let low = bounds[0], let high = bounds[1], low <= high else { return nil }
                count += high - low + 1
            default:
                return nil
            }
        }
        return count > 0 ? count : nil
    }
}
