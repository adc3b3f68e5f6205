import Testing
import SwitchboardCore

/// The one parser of untrusted JSON: strict, bounded, and fast (no JSONDecoder).
@Suite("JSON parser")
struct JSONParserTests {
    @Test("values of every kind, whitespace, escapes and unicode")
    func accepts() throws {
        #expect(try JSONValue.parse(#" {"a": [1, -2.5, 3e2, true, false, null], "b": {"c": "d"}} "#)
            == ["a": [1, -2.5, 300.0, true, false, nil], "b": ["c": "d"]])
        #expect(try JSONValue.parse(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{8}\u{c}\n\r\t"))
        #expect(try JSONValue.parse(#""\u00e9\u20ac\ud83d\ude00 é€😀""#) == .string("é€😀 é€😀"))
        #expect(try JSONValue.parse("0") == 0)
        #expect(try JSONValue.parse("-0") == 0)
        #expect(try JSONValue.parse("9223372036854775807") == .int(Int64.max))
        // Beyond Int64: a double, as JSON numbers are.
        #expect(try JSONValue.parse("99999999999999999999999") == .double(1e23))
        #expect(try JSONValue.parse(#"{"a":1,"a":2}"#) == ["a": 2])
        #expect(try JSONValue.parse("[]") == [])
        #expect(try JSONValue.parse("{}") == [:])
    }

    @Test("refuses what RFC 8259 does not allow, naming the fault and its place")
    func refuses() {
        let bad = [
            "", " ", "[1,]", "{\"a\":1,}", "[1 2]", "{a:1}", "{\"a\" 1}", "'x'", "tru", "nul", "01", "1.", ".5", "1e", "+1",
            "NaN", "Infinity", "1e999", "-1e999", "\"\u{01}\"", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"",
            "[1]x", "// c\n1", "[", "{", "\"\\", "\u{FEFF}1",
        ]
        for text in bad {
            #expect(throws: (any Error).self, "\(text.debugDescription)") { try JSONValue.parse(text) }
        }
        do {
            _ = try JSONValue.parse("[1, 2,, 3]")
            Issue.record("parsed")
        } catch {
            #expect("\(error)".contains("at byte 6"))
        }
    }

    @Test("bytes that are not UTF-8 in a string are refused")
    func invalidUTF8() throws {
        #expect(throws: (any Error).self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22] as [UInt8]) }
        #expect(throws: (any Error).self) { try JSONValue.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22] as [UInt8]) }
        #expect(try JSONValue.parse([0x22, 0xC3, 0xA9, 0x22] as [UInt8]) == "é")
    }

    @Test("nesting is bounded, and the bound is an error, not a crash")
    func nesting() throws {
        let ok = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        _ = try JSONValue.parse(ok)
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: (any Error).self) { try JSONValue.parse(deep) }
        let deepObjects = String(repeating: #"{"a":"#, count: 10_000)
        #expect(throws: (any Error).self) { try JSONValue.parse(deepObjects) }
    }

    @Test("serialize then parse gives the same value, for random values")
    func roundTrip() throws {
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<500 {
            let value = Self.random(depth: 0, using: &generator)
            #expect(try JSONValue.parse(value.serialized) == value)
        }
    }

    static func random(depth: Int, using g: inout SeededGenerator) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &g) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &g))
        case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &g))
        case 3: return .double((Double(Int.random(in: -1_000_000...1_000_000, using: &g)) + 0.5) / 64)  // not whole: "64.0" serializes as 64
        case 4:
            let pool = Array("ab\"\\\n\t\u{01}é€😀 /")
            return .string(String((0..<Int.random(in: 0...8, using: &g)).map { _ in pool.randomElement(using: &g)! }))
        case 5: return .array((0..<Int.random(in: 0...4, using: &g)).map { _ in random(depth: depth + 1, using: &g) })
        default:
            var object: [String: JSONValue] = [:]
            for i in 0..<Int.random(in: 0...4, using: &g) { object["k\(i)\u{e9}"] = random(depth: depth + 1, using: &g) }
            return .object(object)
        }
    }
}
