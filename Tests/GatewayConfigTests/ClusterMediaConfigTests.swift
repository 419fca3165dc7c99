import GatewayConfig
import GatewayCore
import Testing

/// On PostgreSQL (cluster mode) media cannot live on a node's local disk.
@Suite("media: settings in cluster mode")
struct ClusterMediaConfigTests {
    static let pipeline = """
        pipeline:
          - stage: auth
            settings: { hs256_secret: "0123456789abcdef0123456789abcdef" }
        """
    static let postgres = "store: { kind: postgres, url: \"postgres://chat@db/chat\" }"

    @Test("media.backend fs (given or by default) is refused on PostgreSQL, at media.backend, saying why and what to use")
    func fsRefused() throws {
        for media in ["media: { backend: fs, dir: /srv/media }", ""] {
            let yaml = Self.postgres + "\n" + media + "\n" + Self.pipeline
            let error = try #require(throws: ConfigError.self) { try ConfigLoader.load(text: yaml, file: "cluster.yaml", environment: [:]) }
            let text = error.description
            #expect(text.contains("error: media"), "\(text)")
            #expect(text.contains("a node's local disk is not shared"), "\(text)")
            #expect(text.contains("backend: s3"), "\(text)")
        }
        let located = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(text: Self.postgres + "\nmedia: { backend: fs }\n" + Self.pipeline, file: "cluster.yaml", environment: [:])
        }
        #expect(located.description.hasPrefix("cluster.yaml:2:19: error: media.backend:"), "\(located.description)")
    }

    @Test("s3, or fs declared shared_dir, is accepted on PostgreSQL; fs stays the default on SQLite")
    func accepted() throws {
        let s3 = try ConfigLoader.load(
            text: Self.postgres + "\nmedia: { backend: s3, s3: { endpoint: \"http://127.0.0.1:9000\", bucket: media } }\n" + Self.pipeline,
            file: "c.yaml", environment: [:])
        #expect(s3.media.backend == .s3 && s3.store.kind == .postgres)
        let shared = try ConfigLoader.load(
            text: Self.postgres + "\nmedia: { dir: /mnt/shared, shared_dir: true }\n" + Self.pipeline, file: "c.yaml", environment: [:])
        #expect(shared.media.backend == .fs && shared.media.sharedDir)
        let sqlite = try ConfigLoader.load(text: Self.pipeline, file: "c.yaml", environment: [:])
        #expect(sqlite.media.backend == .fs && !sqlite.media.sharedDir)
    }
}
