import GatewayConfig
import GatewayCore
import Testing

@Suite("Scalars, lists and nulls")
struct ScalarDecodingTests {
    struct One<Value: Decodable>: Decodable {
        var value: Value
    }

    struct Maybe<Value: Decodable>: Decodable {
        var value: Value?
    }

    static func decode<Value: Decodable>(_ type: Value.Type, _ yaml: String) throws -> Value {
        try settingsSource("value: \(yaml)").decode(One<Value>.self).value
    }

    static func message<Value: Decodable>(_ type: Value.Type, _ yaml: String) throws -> String? {
        let error = try #require(decodeError(One<Value>.self, from: settingsSource("value: \(yaml)")))
        return error.diagnostics.first?.message
    }

    @Test(arguments: [
        ("8080", 8080), ("\"8080\"", 8080), ("-5", -5), ("+5", 5), ("0x1F", 31), ("0o17", 15), ("0b101", 5),
        ("26_214_400", 26_214_400), ("0", 0),
    ])
    func integers(yaml: String, expected: Int) throws {
        #expect(try Self.decode(Int.self, yaml) == expected)
    }

    @Test(arguments: [
        ("1.5", "expected an integer, got '1.5'"),
        ("abc", "expected an integer, got 'abc'"),
        ("1e3", "expected an integer, got '1e3'"),
        ("_1", "expected an integer, got '_1'"),
        ("", "expected an integer, got null"),
        ("[1]", "expected an integer, got a list"),
        ("99999999999999999999", "'99999999999999999999' is out of range for Int (-9223372036854775808...9223372036854775807)"),
    ])
    func notIntegers(yaml: String, expected: String) throws {
        #expect(try Self.message(Int.self, yaml) == expected)
    }

    @Test func sizedIntegers() throws {
        #expect(try Self.decode(UInt8.self, "255") == 255)
        #expect(try Self.decode(Int64.self, "-9000000000") == -9_000_000_000)
        #expect(try Self.decode(UInt16.self, "0xFFFF") == 65535)
        #expect(try Self.message(Int8.self, "300") == "'300' is out of range for Int8 (-128...127)")
        #expect(try Self.message(UInt.self, "-1") == "'-1' is out of range for UInt (0...18446744073709551615)")
    }

    @Test func floatingPoint() throws {
        #expect(try Self.decode(Double.self, "1.5") == 1.5)
        #expect(try Self.decode(Double.self, "2") == 2)
        #expect(try Self.decode(Double.self, "1e3") == 1000)
        #expect(try Self.decode(Double.self, "-.inf") == -.infinity)
        #expect(try Self.decode(Float.self, "0.25") == 0.25)
        #expect(try Self.message(Double.self, "fast") == "expected a number, got 'fast'")
        #expect(try Self.message(Double.self, "nan") == "expected a number, got 'nan'")
    }

    @Test func booleans() throws {
        #expect(try Self.decode(Bool.self, "true") == true)
        #expect(try Self.decode(Bool.self, "False") == false)
        #expect(try Self.message(Bool.self, "yes") == "expected true or false, got 'yes'")
        #expect(try Self.message(Bool.self, "1") == "expected true or false, got '1'")
    }

    @Test(arguments: [
        ("12345", "12345"), ("true", "true"), ("1.5", "1.5"), ("\"quoted\"", "quoted"), ("'null'", "null"),
        ("\"\"", ""), ("plain text here", "plain text here"),
    ])
    func stringsTakeTheScalarText(yaml: String, expected: String) throws {
        #expect(try Self.decode(String.self, yaml) == expected)
    }

    @Test func stringFromAMappingOrNull() throws {
        #expect(try Self.message(String.self, "{ a: 1 }") == "expected a string, got a mapping")
        #expect(try Self.message(String.self, "~") == "expected a string, got null")
    }

    @Test(arguments: ["", "~", "null", "Null", "NULL"])
    func nullsForOptionals(yaml: String) throws {
        let decoded = try settingsSource("value: \(yaml)").decode(Maybe<Int>.self)
        #expect(decoded.value == nil)
    }

    @Test func absentOptional() throws {
        let decoded = try settingsSource("{}").decode(Maybe<String>.self)
        #expect(decoded.value == nil)
        #expect(try settingsSource("value: 'null'").decode(Maybe<String>.self).value == "null")
    }

    @Test func listsSetsAndDictionaries() throws {
        #expect(try Self.decode([Int].self, "[1, 2, 3]") == [1, 2, 3])
        #expect(try Self.decode([Int].self, "[]") == [])
        #expect(try Self.decode(Set<String>.self, "[a, b, a]") == ["a", "b"])
        #expect(try Self.decode([String: Int].self, "{ a: 1, b: 2 }") == ["a": 1, "b": 2])
        #expect(try Self.decode([Int?].self, "[1, ~, 3]") == [1, nil, 3])
        #expect(try Self.decode([[Int]].self, "[[1], [2, 3]]") == [[1], [2, 3]])
        #expect(try Self.message([Int].self, "5") == "expected a list, got '5'")
    }

    @Test func errorInsideAListNamesTheIndex() throws {
        let error = try #require(decodeError(One<[Int]>.self, from: settingsSource("value: [1, 2, x]")))
        #expect(error.description == "c.yaml:4:21: error: pipeline[0].settings.value[2]: expected an integer, got 'x'")
    }
}
