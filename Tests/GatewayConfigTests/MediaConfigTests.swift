import GatewayConfig
import GatewayCore
import Testing

@Suite("media: settings")
struct MediaConfigTests {
    static let pipeline = """
        pipeline:
          - stage: auth
            settings: { hs256_secret: "0123456789abcdef0123456789abcdef" }
        """

    @Test func defaultsAndValues() throws {
        let none = try ConfigLoader.load(text: Self.pipeline, file: "config.yaml", environment: [:])
        #expect(none.media.backend == .fs)
        #expect(none.media.maxBytes == 25 * 1024 * 1024)
        #expect(none.media.thumbnail.maxSide == 320)
        let yaml = """
            media:
              backend: s3
              max_bytes: 1048576
              s3: { endpoint: "http://127.0.0.1:9000", bucket: chat-media, path_style: true, secret_access_key: "${S3_SECRET}" }
              thumbnail: { max_side: 200 }
            """ + "\n" + Self.pipeline
        let config = try ConfigLoader.load(text: yaml, file: "config.yaml", environment: ["S3_SECRET": "shh"])
        #expect(config.media.backend == .s3)
        #expect(config.media.maxBytes == 1_048_576)
        #expect(config.media.inlineMaxBytes == 49152)
        #expect(config.media.s3?.bucket == "chat-media")
        #expect(config.media.s3?.secretAccessKey?.value == "shh")
        #expect(config.media.thumbnail.maxSide == 200)
    }

    @Test(arguments: [
        ("media: { max_byte: 10 }", "config.yaml:1:10: error: media.max_byte: unknown key 'max_byte' (did you mean 'max_bytes'?)"),
        ("media: { backend: s3 }", "media.s3: required when backend is s3"),
        ("media: { zstd_level: 0 }", "media.zstd_level: must be 1...19 (was 0)"),
        ("media: { max_bytes: 100, inline_max_bytes: 200 }", "media.inline_max_bytes: must be 0...max_bytes (100) (was 200)"),
        ("media: { thumbnail: { max_sides: 3 } }", "unknown key 'max_sides'"),
    ])
    func invalid(line: String, expected: String) throws {
        let error = try #require(throws: ConfigError.self) {
            try ConfigLoader.load(text: line + "\n" + Self.pipeline, file: "config.yaml", environment: [:])
        }
        #expect(error.description.contains(expected), "\(error.description)")
    }
}
