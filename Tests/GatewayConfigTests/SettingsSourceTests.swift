import GatewayConfig
import GatewayCore
import Testing

@Suite("Stage settings blocks")
struct SettingsSourceTests {
    /// A stage's settings with a nested mapping, a list and a secret.
    struct SampleSettings: Codable, Sendable, Equatable {
        struct Retry: Codable, Sendable, Equatable {
            var attempts: Int
            var backoffMs: Int

            enum CodingKeys: String, CodingKey {
                case attempts
                case backoffMs = "backoff_ms"
            }
        }

        var level: Int
        var retry: Retry
        var hosts: [String]
        var secret: Secret?
    }

    /// Validation as the built-in stages do it: a range check reported at its key.
    struct LevelSettings: Decodable {
        var level: Int
        enum CodingKeys: String, CodingKey { case level }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            level = try c.decodeIfPresent(Int.self, forKey: .level) ?? 3
            if !(1...19).contains(level) {
                throw DecodingError.dataCorruptedError(forKey: .level, in: c, debugDescription: "must be 1...19 (was \(level))")
            }
        }
    }

    /// An error of the type's own, not a `DecodingError`.
    struct CheckedSettings: Decodable {
        struct Invalid: Error, CustomStringConvertible {
            var description: String { "burst must not be below rate" }
        }

        var rate: Int
        var burst: Int

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            rate = try c.decode(Int.self, forKey: .rate)
            burst = try c.decode(Int.self, forKey: .burst)
            if burst < rate { throw Invalid() }
        }

        enum CodingKeys: String, CodingKey { case rate, burst }
    }

    static let sampleConfig = """
    pipeline:
      - stage: auth
        settings: { hs256_secret: x, leeway_s: 30 }
      - stage: acme.sample
        name: sample
        settings:
          level: 3
          retry: { attempts: 5, backoff_ms: 250 }
          hosts:
            - a.example
            - "b.example"
          secret: 12345
      - stage: id
    """

    @Test func settingsDecodeThroughTheSource() throws {
        let configuration = try loadConfig(Self.sampleConfig).get()
        let settings = try configuration.pipeline[1].settings.decode(SampleSettings.self)
        #expect(settings == SampleSettings(
            level: 3, retry: .init(attempts: 5, backoffMs: 250), hosts: ["a.example", "b.example"], secret: Secret("12345")
        ))
    }

    @Test func unknownKeysInSettingsNameTheirPathAndLine() throws {
        let text = """
        pipeline:
          - stage: auth
          - stage: acme.sample
            settings:
              level: 3
              retry: { attempts: 5, backof_ms: 250, backoff_ms: 1 }
              hosts: []
              xyz: 1
        """
        // The whole-document decode leaves settings to the stage: it loads.
        let configuration = try loadConfig(text).get()
        let error = try #require(decodeError(SampleSettings.self, from: configuration.pipeline[1].settings))
        #expect(error.description == """
        c.yaml:6:29: error: pipeline[1].settings.retry.backof_ms: unknown key 'backof_ms' (did you mean 'backoff_ms'?)
        c.yaml:8:7: error: pipeline[1].settings.xyz: unknown key 'xyz'
        """)
        #expect(error.diagnostics[1].path == "pipeline[1].settings.xyz")
        #expect(error.diagnostics[1].line == 8)
    }

    @Test func invalidValueInSettings() throws {
        let text = """
        pipeline:
          - stage: auth
          - stage: id
          - stage: media
            settings:
              level: 0
        """
        let configuration = try loadConfig(text).get()
        let error = try #require(decodeError(LevelSettings.self, from: configuration.pipeline[2].settings))
        #expect(error.description == "c.yaml:6:14: error: pipeline[2].settings.level: must be 1...19 (was 0)")
    }

    @Test func missingKeyInSettingsPointsAtTheBlock() throws {
        let source = try settingsSource("rate: 5")
        let error = try #require(decodeError(CheckedSettings.self, from: source))
        #expect(error.description == "c.yaml:4:7: error: pipeline[0].settings: missing required key 'burst'")
    }

    @Test func ownErrorOfASettingsTypeIsReportedAtTheBlock() throws {
        let source = try settingsSource("rate: 5\nburst: 2")
        let error = try #require(decodeError(CheckedSettings.self, from: source))
        #expect(error.description == "c.yaml:4:7: error: pipeline[0].settings: burst must not be below rate")
    }

    @Test func absentOrNullSettingsDecodeDefaults() throws {
        let text = """
        pipeline:
          - stage: media
          - stage: media
            settings:
          - stage: media
            settings: ~
        """
        let configuration = try loadConfig(text).get()
        for entry in configuration.pipeline {
            #expect(try entry.settings.decode(LevelSettings.self).level == 3)
            _ = try entry.settings.decode(NoSettings.self)
        }
    }

    @Test func settingsForAStageThatTakesNone() throws {
        let source = try settingsSource("level: 3")
        let error = try #require(decodeError(NoSettings.self, from: source))
        #expect(error.description == "c.yaml:4:7: error: pipeline[0].settings.level: unknown key 'level'")
    }

    @Test func settingsThatAreNotAMapping() throws {
        let text = """
        pipeline:
          - stage: media
            settings: [1, 2]
        """
        let configuration = try loadConfig(text).get()
        let error = try #require(decodeError(LevelSettings.self, from: configuration.pipeline[0].settings))
        #expect(error.description == "c.yaml:3:15: error: pipeline[0].settings: expected a mapping, got a list")
    }

    @Test func variablesInSettingsAreReadWhenDecoded() throws {
        let source = try settingsSource("level: ${LEVEL}")
        let error = try #require(decodeError(LevelSettings.self, from: source))
        #expect(error.description == "c.yaml:4:14: error: pipeline[0].settings.level: environment variable 'LEVEL' is not set (write ${LEVEL:-default} to give a default)")

        let withVariable = try settingsSource("level: ${LEVEL}", environment: ["LEVEL": "7"])
        #expect(try withVariable.decode(LevelSettings.self).level == 7)
    }

    @Test func mergeKeysShareSettingsBetweenStages() throws {
        let text = """
        pipeline:
          - stage: acme.sample
            name: first
            settings: &common { level: 3, retry: { attempts: 1, backoff_ms: 10 }, hosts: [x] }
          - stage: acme.sample
            name: second
            settings:
              <<: *common
              level: 5
        """
        let configuration = try loadConfig(text).get()
        let first = try configuration.pipeline[0].settings.decode(SampleSettings.self)
        let second = try configuration.pipeline[1].settings.decode(SampleSettings.self)
        #expect(first.level == 3)
        #expect(second.level == 5)
        #expect(second.hosts == ["x"])
    }

    @Test func sourcesDecodeConcurrently() async throws {
        let configuration = try loadConfig(Self.sampleConfig).get()
        let source = configuration.pipeline[1].settings
        let levels = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask { try source.decode(SampleSettings.self).level }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(levels == Array(repeating: 3, count: 8))
    }
}
