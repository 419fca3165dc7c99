import GRDB
import Synchronization

/// Copies the WAL into the database file on a connection of its own, so that commits never
/// wait for a checkpoint.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the threshold: that commit,
/// and every send waiting on it, pays for copying the whole WAL (a stall of tens of
/// milliseconds, seen in the light-load p99). Here a passive checkpoint runs every `interval`
/// after commits happened; passive means it never waits for, nor blocks, the writer or the
/// readers. The writer keeps a (much higher) automatic threshold as a safety net, should this
/// connection fall behind.
final class BackgroundCheckpointer: Sendable {
    private let queue: DatabaseQueue
    /// Commits since the last checkpoint.
    private let commits = Atomic<Int>(0)
    /// Guards the loop's task.
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(path: String) throws {
        var configuration = Configuration()
        configuration.label = "chatgate.store.checkpoint"
        // A passive checkpoint does not wait; neither should opening or running it.
        configuration.busyMode = .timeout(0.1)
        queue = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Starts the loop (once).
    func start(every interval: Duration) {
        task.withLock { task in
            guard task == nil else { return }
            task = Task.detached { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    guard let self else { return }
                    await self.checkpointIfNeeded()
                }
            }
        }
    }

    /// Tells it a commit happened (so the next round checkpoints).
    func noteCommit() {
        commits.add(1, ordering: .relaxed)
    }

    /// Runs a passive checkpoint if anything was committed since the last one.
    func checkpointIfNeeded() async {
        guard commits.exchange(0, ordering: .relaxed) > 0 else { return }
        // A failure (busy, or the file going away at shutdown) is left to the next round or to
        // the writer's automatic checkpoint.
        _ = try? await queue.writeWithoutTransaction { db in try db.checkpoint(.passive) }
    }

    /// Ends the loop and closes the connection.
    func stop() async {
        let running = task.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        running?.cancel()
        await running?.value
        do { try queue.close() } catch {}
    }
}
