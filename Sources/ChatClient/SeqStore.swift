import Foundation
import Synchronization

/// Where the client keeps `cur_max_seq`, the highest inbox seq it handed to the app, per user,
/// so a restarted app syncs from there instead of from 0.
///
/// Implementations are called on the client's actor after every batch of messages: keep
/// `save` fast (memory, a small file, `UserDefaults`).
public protocol SeqStore: Sendable {
    /// The stored seq of `user`: 0 when none (the client then syncs the whole inbox), or -1
    /// to start at the gateway's current `inbox_seq` (only messages from now on).
    func load(user: String) -> Int64
    func save(_ seq: Int64, user: String)
}

/// Keeps seqs in memory (the app syncs from 0 after a restart).
public final class MemorySeqStore: SeqStore {
    /// Guards the seq per user.
    private let seqs = Mutex<[String: Int64]>([:])

    public init() {}

    public func load(user: String) -> Int64 { seqs.withLock { $0[user] ?? 0 } }
    public func save(_ seq: Int64, user: String) { seqs.withLock { $0[user] = seq } }
}

/// Keeps each user's seq in a small file under `directory` (written atomically).
public final class FileSeqStore: SeqStore {
    public let directory: URL

    public init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    private func file(_ user: String) -> URL {
        // User ids are [A-Za-z0-9_.@-]: safe as file names, except the dot-only names.
        directory.appendingPathComponent("seq-" + user)
    }

    public func load(user: String) -> Int64 {
        guard let data = try? Data(contentsOf: file(user)) else { return 0 }
        return Int64(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    public func save(_ seq: Int64, user: String) {
        try? Data(String(seq).utf8).write(to: file(user), options: .atomic)
    }
}
