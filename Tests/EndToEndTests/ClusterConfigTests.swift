import Foundation
import GatewayTesting
import Testing

/// `chatgate check-config` on the repository's config.yaml switched to PostgreSQL: the whole
/// pipeline (push and media included) builds; media on a node's local disk is refused.
@Suite("check-config in cluster mode", .timeLimit(.minutes(2)))
struct ClusterConfigTests {
    /// Runs `chatgate check-config` on `yaml`; its exit status and output.
    static func checkConfig(_ yaml: String) async throws -> (status: Int32, output: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("chatgate-cluster-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cluster.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try await Command.run(ChildGateway.binary.path, ["check-config", path])
        return (run.status.exitCode, run.output + run.error)
    }

    /// The repository's config.yaml with the store line replaced by a PostgreSQL one.
    static func repositoryConfigOnPostgres() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("config.yaml"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let storeLine = try #require(lines.firstIndex { $0.hasPrefix("store:") }, "config.yaml has a one-line store: section")
        var changed = lines
        changed[storeLine] = "store: { kind: postgres, url: \"postgres://chat@127.0.0.1:1/chat\", pool_size: 4, durability: full }"
        return changed.joined(separator: "\n")
    }

    @Test("media.backend fs on PostgreSQL is refused with a diagnostic at media.backend")
    func fsRefused() async throws {
        let yaml = try Self.repositoryConfigOnPostgres()
        #expect(yaml.contains("backend: fs"), "the repository's config keeps media on fs")
        let (status, output) = try await Self.checkConfig(yaml)
        #expect(status == 1, "\(output)")
        #expect(output.contains("error: media.backend:") && output.contains("a node's local disk is not shared"), "\(output)")
    }

    @Test("with the S3 backend the whole pipeline, push and media included, builds on PostgreSQL")
    func s3Accepted() async throws {
        let yaml = try Self.repositoryConfigOnPostgres().replacingOccurrences(
            of: "  backend: fs\n", with: "  backend: s3\n  s3: { endpoint: \"http://127.0.0.1:9000\", bucket: chat-media, path_style: true }\n")
        let (status, output) = try await Self.checkConfig(yaml)
        #expect(status == 0, "\(output)")
        #expect(output.contains("store postgres"), "\(output)")
        #expect(output.contains("push (push)") && output.contains("media (media)"), "\(output)")
    }
}
