import GatewayConfig
import GatewayCore
import Testing

@Suite("Loading config.yaml")
struct ConfigLoaderTests {
    static let repositoryStyle = """
    node: { id: node-1, worker_id: 1 }
    listen:
      public: { host: 0.0.0.0, port: 8080 }
      admin:  { host: 127.0.0.1, port: 9090, token: ${ADMIN_TOKEN:-change-me} }
    limits: { max_frame_bytes: 65536, outbound_queue: 1024, auth_timeout_ms: 5000 }
    store: { kind: sqlite, path: data/chat.db }
    pipeline:
      - stage: auth
        settings: { hs256_secret: ${JWT_SECRET:-dev-only-secret-change-me-0123456789}, leeway_s: 30 }
      - stage: id
      - stage: persist
      - stage: fanout
    """

    struct AuthSettings: Codable, Sendable {
        var hs256Secret: Secret
        var leewayS: Int

        enum CodingKeys: String, CodingKey {
            case hs256Secret = "hs256_secret"
            case leewayS = "leeway_s"
        }
    }

    @Test func repositoryStyleConfigDecodes() throws {
        let configuration = try loadConfig(Self.repositoryStyle).get()
        #expect(configuration.node.id == "node-1")
        #expect(configuration.node.workerID == 1)
        #expect(configuration.listen.public.host == "0.0.0.0")
        #expect(configuration.listen.public.port == 8080)
        #expect(configuration.listen.admin.host == "127.0.0.1")
        #expect(configuration.listen.admin.port == 9090)
        #expect(configuration.listen.admin.token.value == "change-me")
        #expect(configuration.limits.maxFrameBytes == 65536)
        #expect(configuration.limits.outboundQueue == 1024)
        #expect(configuration.limits.authTimeoutMs == 5000)
        #expect(configuration.limits.inboundQueue == 64, "absent keys take their defaults")
        #expect(configuration.store.kind == .sqlite)
        #expect(configuration.store.path == "data/chat.db")
        #expect(configuration.tls == nil)
        #expect(configuration.pipeline.map(\.stage) == ["auth", "id", "persist", "fanout"])
        #expect(configuration.pipeline.map(\.name) == ["auth", "id", "persist", "fanout"], "names default to the kind")
        #expect(configuration.pipeline.allSatisfy { $0.on == [.send] }, "`on` defaults to [send]")

        let auth = try configuration.pipeline[0].settings.decode(AuthSettings.self)
        #expect(auth.hs256Secret.value == "dev-only-secret-change-me-0123456789")
        #expect(auth.leewayS == 30)
        // Stages without `settings:` decode an empty block.
        _ = try configuration.pipeline[1].settings.decode(NoSettings.self)
    }

    @Test func environmentReplacesDefaults() throws {
        let environment = ["ADMIN_TOKEN": "s3cret-admin", "JWT_SECRET": "from-the-environment"]
        let configuration = try loadConfig(Self.repositoryStyle, environment: environment).get()
        #expect(configuration.listen.admin.token.value == "s3cret-admin")
        let auth = try configuration.pipeline[0].settings.decode(AuthSettings.self)
        #expect(auth.hs256Secret.value == "from-the-environment")
    }

    @Test func environmentWithoutDefault() throws {
        let text = """
        node: { id: "${NODE}", worker_id: ${WORKER} }
        pipeline:
          - stage: id
        """
        let configuration = try loadConfig(text, environment: ["NODE": "node-7", "WORKER": "7"]).get()
        #expect(configuration.node.id == "node-7")
        #expect(configuration.node.workerID == 7, "a substituted scalar decodes as an integer")

        let error = try #require(loadError(text, environment: ["NODE": "node-7"]))
        #expect(error.description == "c.yaml:1:35: error: node.worker_id: environment variable 'WORKER' is not set (write ${WORKER:-default} to give a default)")
    }

    @Test(arguments: [
        ("http://${HOST:-localhost}:${PORT}/x", ["PORT": "80"], "http://localhost:80/x"),
        ("http://${HOST:-localhost}:${PORT}/x", ["HOST": "example.org", "PORT": "80"], "http://example.org:80/x"),
        ("${EMPTY:-fallback}", ["EMPTY": ""], "fallback"),
        ("${EMPTY}", ["EMPTY": ""], ""),
        ("${UNSET:-}", [:], ""),
        ("$${LITERAL} and $$ and $", [:], "${LITERAL} and $$ and $"),
        ("${A}${B}", ["A": "1", "B": "2"], "12"),
        ("${URL:-postgres://u:p@h/db}", [:], "postgres://u:p@h/db"),
    ] as [(String, [String: String], String)])
    func substitution(template: String, environment: [String: String], expected: String) throws {
        let text = """
        logging: { level: info }
        store: { kind: sqlite, path: "\(template)" }
        pipeline:
          - stage: id
        """
        let configuration = try loadConfig(text, environment: environment).get()
        #expect(configuration.store.path == expected)
    }

    @Test func referencesStayInPlainScalarsOfFlowMappings() throws {
        // `{`, `}`, `,`, `:` and `#` of a reference are text, not YAML structure, wherever
        // the reference is written.
        let text = """
        store: { kind: sqlite, path: ${DB:-a,b:c #d}/chat.db }
        logging:
          level: ${LEVEL:-info} # a comment
        pipeline: [ { stage: id, name: ${NAME:-x} } ]
        """
        let configuration = try loadConfig(text).get()
        #expect(configuration.store.path == "a,b:c #d/chat.db")
        #expect(configuration.logging.level == "info")
        #expect(configuration.pipeline[0].name == "x")
        let renamed = try loadConfig(text, environment: ["NAME": "ids"]).get()
        #expect(renamed.pipeline[0].name == "ids")
    }

    @Test func referenceErrorsKeepTheirColumns() throws {
        let text = """
        node: { id: n, worker_id: ${W:-x} }
        pipeline: [ { stage: id } ]
        """
        let error = try #require(loadError(text))
        #expect(error.description == "c.yaml:1:27: error: node.worker_id: expected an integer, got 'x'")
    }

    @Test func invalidVariableName() throws {
        let text = """
        store: { path: "${1ST}" }
        pipeline: [ { stage: id } ]
        """
        let error = try #require(loadError(text))
        #expect(error.description == "c.yaml:1:16: error: store.path: '${1ST}' does not name an environment variable (letters, digits and '_', not starting with a digit)")
    }

    @Test func variablesInUnknownKeysAreNotRequired() throws {
        // The unknown key is the problem to report; its value is never read.
        let text = """
        store: { kind: sqlite, extra: "${NOT_SET}" }
        pipeline: [ { stage: id } ]
        """
        let error = try #require(loadError(text))
        #expect(error.description == "c.yaml:1:24: error: store.extra: unknown key 'extra'")
    }

    @Test(arguments: [
        ("max_frame_byte", "max_frame_bytes"),
        ("maxFrameBytes", "max_frame_bytes"),
        ("inbound_qeueu", "inbound_queue"),
        ("max_conections", "max_connections"),
        ("Outbound_Queue", "outbound_queue"),
        ("queue", nil),
        ("colour", nil),
    ] as [(String, String?)])
    func suggestions(typo: String, suggestion: String?) throws {
        let text = """
        limits: { \(typo): 1 }
        pipeline: [ { stage: id } ]
        """
        let error = try #require(loadError(text))
        let expected = "unknown key '\(typo)'" + (suggestion.map { " (did you mean '\($0)'?)" } ?? "")
        #expect(error.diagnostics.map(\.message) == [expected])
        #expect(error.diagnostics.first?.path == "limits.\(typo)")
    }

    @Test func pipelineEntryFields() throws {
        let text = """
        pipeline:
          - stage: auth
          - stage: webhook
            name: moderation
            on: [send, typing, read, presence.subscribe]
          - stage: webhook
            name: audit
        """
        let configuration = try loadConfig(text).get()
        #expect(configuration.pipeline.map(\.name) == ["auth", "moderation", "audit"])
        #expect(configuration.pipeline[1].on == [.send, .typing, .read, .presenceSubscribe])
        #expect(configuration.pipeline[2].on == [.send])
    }

    @Test func emptyDocumentNeedsAPipeline() throws {
        let error = try #require(loadError(""))
        #expect(error.description == "c.yaml:1:1: error: missing required key 'pipeline'")
    }

    @Test func anchorsAndMergeKeys() throws {
        let text = """
        listen:
          public: &endpoint { host: 10.0.0.1, port: 8080 }
          admin:
            <<: *endpoint
            port: 9091
            token: a-real-admin-token-0123
        pipeline:
          - stage: id
        """
        let configuration = try loadConfig(text).get()
        #expect(configuration.listen.public.host == "10.0.0.1")
        #expect(configuration.listen.admin.host == "10.0.0.1")
        #expect(configuration.listen.admin.port == 9091, "explicit keys win over merged ones")
    }

    @Test func unknownKeyFromAMergeIsReportedAtItsDefinition() throws {
        let text = """
        listen:
          public: &endpoint { host: 127.0.0.1, port: 8080, allowed_origins: [] }
          admin:
            <<: *endpoint
        pipeline:
          - stage: id
        """
        let error = try #require(loadError(text))
        #expect(error.description == "c.yaml:2:52: error: listen.admin.allowed_origins: unknown key 'allowed_origins'")
    }
}
