import NIOCore
import NIOPosix

/// What a test left behind: counts of live things (sessions, connections, places, deadlines,
/// timers) that must all read 0 once everything the test opened has ended, as swift-nio's
/// `EmbeddedChannel.finish().isClean` says for one channel.
///
/// ```swift
/// await group.triggerGracefulShutdown()
/// let left = await TeardownCheck.leftovers { application.lifecycleCounts }
/// #expect(left.isEmpty, "left behind: \(left)")
/// ```
///
/// A connection's last steps run on its event loop after its peer has seen it close (handler
/// removal, the objects' release), so the check does not read the counts once: it lets every
/// event loop of `group` run what is queued, and the tasks that resumes, then reads them again,
/// until they are all 0 or `limit` of real time has passed (a bound on a failing test).
public enum TeardownCheck {
    /// The counts that are not 0 after everything queued has run; empty when nothing is left.
    public static func leftovers(
        in group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, within limit: Duration = .seconds(10),
        of counts: () -> [String: Int]
    ) async -> [String: Int] {
        var left = counts().filter { $0.value != 0 }
        let end = ContinuousClock.now + limit
        while !left.isEmpty, ContinuousClock.now < end {
            await settle(group)
            left = counts().filter { $0.value != 0 }
        }
        return left
    }

    /// Returns once `condition` holds (true), or after `limit` of real time (false), letting the
    /// event loops of `group` run what is queued between looks.
    public static func wait(
        in group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, within limit: Duration = .seconds(10),
        until condition: () -> Bool
    ) async -> Bool {
        let end = ContinuousClock.now + limit
        while !condition() {
            guard ContinuousClock.now < end else { return false }
            await settle(group)
        }
        return true
    }

    /// Runs an empty task on every loop of `group` (so everything queued before it has run),
    /// then lets other tasks run.
    static func settle(_ group: any EventLoopGroup) async {
        let runs = group.makeIterator().map { $0.submit {} }
        for run in runs { try? await run.get() }
        await Task.yield()
    }
}
