import Foundation
import GatewayCore
import GatewayTesting
import StageWordFilter
import Testing

@Suite("example.wordfilter: mask, reject or flag listed words")
struct WordFilterStageTests {
    let harness = StageHarness()

    func run(_ settings: String, body: JSONValue) async throws -> (StageOutcome, Envelope) {
        let stage = try harness.build(WordFilterStage.factory, settings: settings)
        var envelope = harness.send(body)
        let outcome = try await harness.run(stage, &envelope)
        return (outcome, envelope)
    }

    @Test(arguments: [
        ("what the heck", "what the ****"),
        ("HECK, Heck and hEcK!", "****, **** and ****!"),
        ("heckle and checkers stay", "heckle and checkers stay"),
        ("darn_it is one word, darn is not", "darn_it is one word, **** is not"),
        ("heck.darn", "****.****"),
        ("Ünïcödé heck ünïcödé", "Ünïcödé **** ünïcödé"),
        ("nothing to see", "nothing to see"),
        ("", ""),
    ])
    func masksWholeWordsCaseInsensitively(text: String, expected: String) async throws {
        let (outcome, envelope) = try await run(#"{"words": ["heck", "darn"]}"#, body: .string(text))
        #expect(outcome.isContinue)
        #expect(envelope.body == .string(expected))
    }

    @Test func masksNonASCIIWordsAndUsesTheReplacement() async throws {
        let (_, envelope) = try await run(##"{"words": ["Mist"], "replacement": "#"}"##, body: "So ein MIST, mist!")
        #expect(envelope.body == "So ein ####, ####!")
        let (_, german) = try await run(#"{"words": ["scheiße"]}"#, body: "SCHEIßE")
        #expect(german.body == "*******")
    }

    @Test func masksTheTextFieldOfObjectBodiesAndKeepsTheRest() async throws {
        let body: JSONValue = ["text": "heck yes", "mentions": ["heck"], "n": 1]
        let (outcome, envelope) = try await run(#"{"words": ["heck"]}"#, body: body)
        #expect(outcome.isContinue)
        #expect(envelope.body == ["text": "**** yes", "mentions": ["heck"], "n": 1])
    }

    @Test func otherBodiesPassUnchanged() async throws {
        for body: JSONValue in [["caption": "heck"], ["heck"], 42, nil, ["text": 7]] {
            let (outcome, envelope) = try await run(#"{"words": ["heck"], "action": "reject"}"#, body: body)
            #expect(outcome.isContinue)
            #expect(envelope.body == body)
        }
    }

    @Test func rejectRefusesWithACustomCode() async throws {
        let (outcome, envelope) = try await run(#"{"words": ["heck"], "action": "reject"}"#, body: ["text": "oh HECK"])
        let error = try #require(outcome.rejection)
        #expect(error.code.rawValue == "x_word_filter")
        #expect(error.code == WordFilterStage.rejectCode)
        #expect(envelope.body == ["text": "oh HECK"])
        let (clean, _) = try await run(#"{"words": ["heck"], "action": "reject"}"#, body: "hecking fine")
        #expect(clean.isContinue)
    }

    @Test func flagMarksTheEnvelopeForLaterStages() async throws {
        let (outcome, envelope) = try await run(#"{"words": ["heck"], "action": "flag"}"#, body: "heck")
        #expect(outcome.isContinue)
        #expect(envelope.attributes["flagged"] == true)
        #expect(envelope.body == "heck")
        let (_, clean) = try await run(#"{"words": ["heck"], "action": "flag"}"#, body: "fine")
        #expect(clean.attributes["flagged"] == nil)
    }

    @Test func typingFramesHaveNoTextAndPass() async throws {
        let stage = try harness.build(WordFilterStage.factory, settings: #"{"words": ["heck"], "action": "reject"}"#, on: [.send, .typing])
        var typing = harness.typing()
        #expect(try await harness.run(stage, &typing).isContinue)
    }

    // MARK: Settings

    /// Each problem as the config loader reports it (`StageSettings`: the loader's own decoder),
    /// at the key's dotted path.
    @Test(arguments: [
        (#"{}"#, "settings", "missing required key 'words'"),
        (#"{"words": []}"#, "settings.words", "must list 1...10000 words (was 0)"),
        (#"{"words": ["two words"]}"#, "settings.words", "'two words' is not a single word: use letters, digits and '_' only"),
        (#"{"words": ["ok"], "action": "delete"}"#, "settings.action", "must be one of mask, reject, flag (was 'delete')"),
        (#"{"words": ["ok"], "replacement": "**"}"#, "settings.replacement", "must be exactly one character (was '**')"),
        (#"{"words": ["ok"], "replacment": "~"}"#, "settings.replacment", "unknown key 'replacment' (did you mean 'replacement'?)"),
    ])
    func invalidSettingsNameTheirKey(yaml: String, path: String, message: String) {
        #expect(StageSettings.problems(WordFilterSettings.self, in: yaml) == [.init(path: path, message: message)])
    }

    @Test func defaults() throws {
        let settings = try StageSettings.decode(WordFilterSettings.self, from: #"{"words": ["a"]}"#)
        #expect(settings.action == .mask)
        #expect(settings.replacement == "*")
    }
}
