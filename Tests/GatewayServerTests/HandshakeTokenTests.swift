import Testing

@testable import GatewayServer

@Suite("GatewayServer: handshake tokens and header text", .timeLimit(.minutes(1)))
struct HandshakeTokenTests {
    @Test(arguments: [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("\tBearer abc\u{200B}", "abc"),
    ])
    func bearerTakesTheSchemeInAnyCaseAndTrims(header: String, token: String) {
        #expect(WebSocketHandshake.bearer(header) == token)
    }

    @Test(arguments: ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", ""])
    func bearerRefusesOtherSchemesAndEmptyTokens(header: String) {
        #expect(WebSocketHandshake.bearer(header) == nil)
    }

    @Test func theAuthorizationHeaderWinsOverTheQuery() {
        #expect(WebSocketHandshake.token(query: "access_token=q", authorization: "Bearer h") == "h")
        #expect(WebSocketHandshake.token(query: "x=1&access_token=a%2Bb", authorization: nil) == "a+b")
        #expect(WebSocketHandshake.token(query: "x=1", authorization: "Basic z") == nil)
        #expect(WebSocketHandshake.token(query: nil, authorization: nil) == nil)
    }

    @Test func trimmingMatchesFoundationsWhitespaceSet() {
        #expect(HeaderText.trimmed(" \t a b \u{3000}") == "a b")
        #expect(HeaderText.trimmed("\n a \n") == "\n a \n", "newlines are not in CharacterSet.whitespaces")
    }
}
