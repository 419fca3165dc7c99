import Foundation
import GatewayConfig
import Testing

/// One invalid config per problem, each with the first line of its rendered error.
@Suite("Config fixtures")
struct FixtureTests {
    /// The folder next to this file, read directly: simpler than the bundle, and the same files.
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func text(of fixture: String) throws -> String {
        try String(contentsOf: fixtures.appendingPathComponent(fixture), encoding: .utf8)
    }

    /// Loads a fixture as `file` = its name, with an environment that has none of the variables
    /// the fixtures use, and returns the error.
    static func error(loading fixture: String) throws -> ConfigError {
        try #require(loadError(text(of: fixture), file: fixture), "\(fixture) loaded without error")
    }

    @Test(arguments: [
        ("unknown-top-level-key.yaml",
         "unknown-top-level-key.yaml:2:1: error: listn: unknown key 'listn' (did you mean 'listen'?)"),
        ("unknown-nested-key.yaml",
         "unknown-nested-key.yaml:2:3: error: limits.max_frame_byte: unknown key 'max_frame_byte' (did you mean 'max_frame_bytes'?)"),
        ("unknown-key-no-suggestion.yaml",
         "unknown-key-no-suggestion.yaml:4:3: error: store.colour: unknown key 'colour'"),
        ("wrong-type.yaml",
         "wrong-type.yaml:4:11: error: listen.public.port: expected an integer, got 'abc'"),
        ("float-for-integer.yaml",
         "float-for-integer.yaml:2:20: error: limits.max_frame_bytes: expected an integer, got '1.5'"),
        ("out-of-range.yaml",
         "out-of-range.yaml:1:32: error: node.worker_id: must be 0...1023 (was 5000)"),
        ("missing-stage.yaml",
         "missing-stage.yaml:3:5: error: pipeline[1]: missing required key 'stage'"),
        ("misspelt-required-key.yaml",
         "misspelt-required-key.yaml:3:5: error: pipeline[1]: missing required key 'stage' (is 'stge' a typo?)"),
        ("null-stage.yaml",
         "null-stage.yaml:2:11: error: pipeline[0].stage: expected a string, got null"),
        ("missing-pipeline.yaml",
         "missing-pipeline.yaml:1:1: error: missing required key 'pipeline'"),
        ("empty-pipeline.yaml",
         "empty-pipeline.yaml:2:11: error: pipeline: the pipeline needs at least one stage"),
        ("missing-env.yaml",
         "missing-env.yaml:3:12: error: listen.admin.token: environment variable 'GATEWAY_TEST_UNSET_TOKEN' is not set (write ${GATEWAY_TEST_UNSET_TOKEN:-default} to give a default)"),
        ("unterminated-env.yaml",
         "unterminated-env.yaml:3:8: error: store.url: '${' without a closing '}' (write '$${' for a literal '${')"),
        ("syntax-error.yaml",
         "syntax-error.yaml:3:13: error: invalid YAML: mapping values are not allowed in this context"),
        ("unclosed-flow.yaml",
         "unclosed-flow.yaml:2:9: error: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at line 1)"),
        ("duplicate-key.yaml",
         "duplicate-key.yaml:5:5: error: listen.public.port: duplicate key 'port' (first at line 3)"),
        ("duplicate-key-in-sequence.yaml",
         "duplicate-key-in-sequence.yaml:5:5: error: pipeline[1].stage: duplicate key 'stage' (first at line 3)"),
        ("admin-public-default-token.yaml",
         "admin-public-default-token.yaml:2:10: error: listen.admin.token: the admin listener is not on loopback (0.0.0.0): set a token of your own, at least 16 characters (ADMIN_TOKEN)"),
        ("postgres-without-url.yaml",
         "postgres-without-url.yaml:2:3: error: store.url: required when kind is postgres"),
        ("unknown-store-kind.yaml",
         "unknown-store-kind.yaml:1:16: error: store.kind: Cannot initialize Kind from invalid String value mysql"),
        ("bool-as-yes.yaml",
         "bool-as-yes.yaml:2:18: error: debug.echo_endpoint: expected true or false, got 'yes'"),
        ("mapping-for-scalar.yaml",
         "mapping-for-scalar.yaml:3:11: error: listen.public.port: expected an integer, got a mapping"),
        ("scalar-for-mapping.yaml",
         "scalar-for-mapping.yaml:1:9: error: listen: expected a mapping, got '8080'"),
        ("list-document.yaml",
         "list-document.yaml:1:1: error: expected a mapping, got a list"),
        ("bad-frame-kind.yaml",
         "bad-frame-kind.yaml:3:16: error: pipeline[0].on[1]: Cannot initialize FrameKind from invalid String value sned"),
    ])
    func invalidFixture(fixture: String, expected: String) throws {
        let error = try Self.error(loading: fixture)
        let first = try #require(error.description.split(separator: "\n").first)
        #expect(String(first) == expected)
    }

    @Test func validFixtureLoadsFromPath() throws {
        let path = Self.fixtures.appendingPathComponent("valid.yaml").path
        let configuration = try ConfigLoader.load(path: path, environment: [:])
        #expect(configuration.pipeline.map(\.stage) == ["auth", "id", "persist", "fanout"])
    }

    @Test func errorsFromPathNameTheFileAsGiven() throws {
        let path = Self.fixtures.appendingPathComponent("wrong-type.yaml").path
        let error = try #require(throws: ConfigError.self) { try ConfigLoader.load(path: path, environment: [:]) }
        #expect(error.description == "\(path):4:11: error: listen.public.port: expected an integer, got 'abc'")
        #expect(error.diagnostics.first?.line == 4)
        #expect(error.diagnostics.first?.column == 11)
        #expect(error.diagnostics.first?.path == "listen.public.port")
    }

    @Test func missingFileIsAConfigError() throws {
        let path = Self.fixtures.appendingPathComponent("no-such-file.yaml").path
        let error = try #require(throws: ConfigError.self) { try ConfigLoader.load(path: path, environment: [:]) }
        #expect(error.description == "\(path): error: no such file")
    }

    @Test func duplicateKeysAreAllReported() throws {
        let text = """
        node: { id: a, id: b, worker_id: 1, worker_id: 2 }
        pipeline:
          - stage: id
            stage: id
            stage: id
        """
        let error = try #require(loadError(text))
        #expect(error.description == """
        c.yaml:1:16: error: node.id: duplicate key 'id' (first at line 1)
        c.yaml:1:37: error: node.worker_id: duplicate key 'worker_id' (first at line 1)
        c.yaml:4:5: error: pipeline[0].stage: duplicate key 'stage' (first at line 3)
        c.yaml:5:5: error: pipeline[0].stage: duplicate key 'stage' (first at line 3)
        """)
    }

    @Test func everyUnknownKeyAndTheFirstDecodeErrorAreReported() throws {
        let text = """
        node: { id: node-1, workr_id: 1, colour: red }
        listen:
          public: { port: abc }
          admn: { port: 1 }
        pipeline:
          - stage: id
        """
        let error = try #require(loadError(text))
        // `listen` failed part way, so only keys of the mappings decoded in full (`node`)
        // are known to be unknown; the decode error comes with them, in file order.
        #expect(error.description == """
        c.yaml:1:21: error: node.workr_id: unknown key 'workr_id' (did you mean 'worker_id'?)
        c.yaml:1:34: error: node.colour: unknown key 'colour'
        c.yaml:3:19: error: listen.public.port: expected an integer, got 'abc'
        """)
    }

    @Test func unknownKeysAreReportedTogetherWhenDecodingSucceeds() throws {
        let text = """
        node: { id: node-1, workr_id: 1 }
        listen:
          admn: { port: 1 }
        limits: { max_frame_byte: 1024 }
        pipeline:
          - stage: id
            nme: ids
        """
        let error = try #require(loadError(text))
        #expect(error.diagnostics.map(\.path) == ["node.workr_id", "listen.admn", "limits.max_frame_byte", "pipeline[0].nme"])
        #expect(error.diagnostics.map(\.line) == [1, 3, 4, 7])
        #expect(error.diagnostics[1].message == "unknown key 'admn' (did you mean 'admin'?)")
        #expect(error.diagnostics[3].message == "unknown key 'nme' (did you mean 'name'?)")
    }
}
