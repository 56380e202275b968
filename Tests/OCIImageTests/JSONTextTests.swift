import Foundation
import Testing

@testable import OCIImage

/// The direct JSON reader and writer must agree with Foundation's JSONDecoder/JSONEncoder,
/// which wrote and read config.json and the template before them.
@Suite struct JSONTextTests {
    static func foundationBytes(_ value: JSONValue) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    static let templateFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("bundle-templates/default.json")

    static let awkward = JSONValue.object([
        "empty array": .array([]),
        "empty object": .object([:]),
        "nested": .array([.array([]), .object([:]), .null, .bool(true), .bool(false), .array([.array([.int(1)])])]),
        "text": .string("a/b\"\\\u{0}\u{1}\u{1f}\u{7f}\n\r\t\u{8}\u{c} é😀\u{2028}"),
        "numbers": .array([
            .int(.min), .int(.max), .int(0), .int(-1), .double(1.5), .double(1e100), .double(0.1), .double(-2.5),
            .double(1.0), .double(1e21), .double(1e15), .double(1.5e300), .double(.leastNonzeroMagnitude),
            .double(-1.7976931348623157e308), .double(1e-7),
        ]),
        // Byte order: upper case before "_" before lower case, "a10" before "a9".
        "B": .null, "a10": .null, "a9": .null, "_x": .null, "Z": .null, "z": .null, "é": .null, "aB": .null,
        "ab": .null, "Ab": .null, "": .null,
    ])

    @Test func writesWhatJSONEncoderWrote() throws {
        #expect(Self.awkward.formatted() == (try Self.foundationBytes(Self.awkward)))
        let template = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: Self.templateFile))
        #expect(template.formatted() == (try Self.foundationBytes(template)))
    }

    @Test func readsWhatJSONDecoderRead() throws {
        let bytes = Array(try Data(contentsOf: Self.templateFile))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        #expect(try JSONValue(parsing: bytes) == foundation)
        let written = Self.awkward.formatted()
        #expect(try JSONValue(parsing: written) == JSONDecoder().decode(JSONValue.self, from: Data(written)))
        let numbers =
            #"[0, 1, -0, 1.0, 1e2, 1E2, 0.0, 1.5, -2.25e-3, 1e17, 9007199254740993, 9223372036854775807,"#
            + #" 9223372036854775808, -9223372036854775808, -9223372036854775809, 1e300, 123456.789,"#
            + #" -9.223372036854776e+18, 9007199254740993.0, 12.50e1, 0.05e2, 100e-2, -0.0]"#
        #expect(
            try JSONValue(parsing: Array(numbers.utf8))
                == JSONDecoder().decode(JSONValue.self, from: Data(numbers.utf8)))
        #expect(try JSONValue(parsing: [0xef, 0xbb, 0xbf] + Array("[1]".utf8)) == .array([.int(1)]))
    }

    @Test func whatIsWrittenReadsBackUnchanged() throws {
        // Integral doubles are written as integers and read back as `.int`; all else round-trips.
        var value = Self.awkward
        value["numbers"] = .array([
            .int(.min), .int(.max), .int(0), .double(1.5), .double(0.1), .double(1e-7), .double(-2.5e300),
            .double(-0x1p63), .double(0x1p63), .double(1e19),
        ])
        #expect(try JSONValue(parsing: value.formatted()) == value)
    }

    /// SplitMix64: a seeded generator, so that a failing run can be repeated with its seed
    /// (OCI_UNPACK_TEST_SEED=N).
    struct SeededGenerator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
    }

    static let seed: UInt64 =
        ProcessInfo.processInfo.environment["OCI_UNPACK_TEST_SEED"].flatMap { UInt64($0) }
        ?? UInt64.random(in: 0..<UInt64.max)

    @Test func numbersAreFormattedAsJSONEncoderFormatsThem() throws {
        var generator = SeededGenerator(state: Self.seed)
        print("numbersAreFormattedAsJSONEncoderFormatsThem: OCI_UNPACK_TEST_SEED=\(Self.seed)")
        var values: [Double] = [
            0, -0.0, 1, -1, 9_007_199_254_740_992, 9_007_199_254_740_994, 1e21, 123e18, 0.0001, 1e-5,
        ]
        for _ in 0..<3000 {
            values.append(
                Double.random(in: -10...10, using: &generator)
                    * pow(10, Double(Int.random(in: -30...30, using: &generator))))
            values.append(Double(Int64.random(in: -(1 << 60)...(1 << 60), using: &generator)))
            values.append(Double(Int64.random(in: -(1 << 20)...(1 << 20), using: &generator)))
            let bits = Double(bitPattern: UInt64.random(in: .min ... .max, using: &generator))
            if bits.isFinite { values.append(bits) }
        }
        let encoder = JSONEncoder()
        for value in values {
            let expected = String(decoding: try encoder.encode([value]), as: UTF8.self).dropFirst().dropLast()
            if value.magnitude >= 0x1p53 && value.magnitude < 0x1p63 || value == 0 && value.sign == .minus {
                // The one difference: integers, which read back as the same text.
                #expect(JSONValue.numberText(value) == String(Int64(value)), "\(value) (seed \(Self.seed))")
                #expect(Double(expected) == value)
            } else {
                #expect(JSONValue.numberText(value) == expected, "\(value) (seed \(Self.seed))")
            }
        }
    }

    /// What the fuzzer found: a fraction that rounds to an integral double beyond 2^53, written by
    /// JSONEncoder's rule as `9.007199254740994e+15`, read back as an integer and written again
    /// as `9007199254740994`. Whatever is written must read back to the same text.
    @Test func writtenNumbersReadBackToTheSameText() throws {
        let text = Array(
            "[9007199254740993.5, -9223372036854775809, 9223372036854775807.0, 1e300, 0.1, 123456789012345678.9, -9.2e-999]"
                .utf8)
        let once = try JSONValue(parsing: text).formatted()
        #expect(try JSONValue(parsing: once).formatted() == once)
    }

    @Test func readsTheWholeGrammar() throws {
        let text =
            #" { "s" : "q\" b\\ s\/ \b\f\n\r\t \u00e9 \uD83D\uDE00 \u0000" , "n": [0, -0, 12, -7, 1.0, 1e2, 2E-1, -3.5e+1,"#
            + #" 9223372036854775807, 9223372036854775808, -9223372036854775808], "l": [true,false,null,{},[]] } "#
        let value = try JSONValue(parsing: Array(text.utf8))
        #expect(value["s"] == .string("q\" b\\ s/ \u{8}\u{c}\n\r\t é 😀 \u{0}"))
        #expect(
            value["n"]
                == .array([
                    .int(0), .int(0), .int(12), .int(-7), .int(1), .int(100), .double(0.2), .int(-35),
                    .int(.max), .double(9_223_372_036_854_775_808), .int(.min),
                ]))
        #expect(value["l"] == .array([.bool(true), .bool(false), .null, .object([:]), .array([])]))
        #expect(try JSONValue(parsing: Array("\"caf\u{e9}\"".utf8)) == .string("café"))
    }

    @Test(arguments: [
        ("", 0, "unexpected end of text, expected a JSON value"),
        ("  ", 2, "unexpected end of text, expected a JSON value"),
        ("{", 1, "unexpected end of text, expected a string key"),
        ("[1,]", 3, "unexpected ']', expected a JSON value"),
        (#"{"a":1,}"#, 7, "unexpected '}', expected a string key"),
        (#"{"a" 1}"#, 5, "unexpected '1', expected ':'"),
        ("[1 2]", 3, "unexpected '2', expected ',' or ']'"),
        ("1 2", 2, "unexpected text after the JSON value"),
        ("01", 0, "invalid number (leading zero)"),
        ("-", 0, "invalid number"),
        ("+1", 0, "unexpected '+', expected a JSON value"),
        ("1.", 0, "invalid number (no digits after '.')"),
        ("1e+", 0, "invalid number (no digits in the exponent)"),
        ("1e999", 0, "number 1e999 is out of range"),
        ("NaN", 0, "unexpected 'N', expected a JSON value"),
        ("tru", 0, "invalid literal, expected true"),
        ("nul!", 0, "invalid literal, expected null"),
        ("'a'", 0, "unexpected ''', expected a JSON value"),
        (#""abc"#, 0, "unterminated string"),
        (#""a\x""#, 2, "invalid escape in a string"),
        (#""\u12G4""#, 5, "\\u escape needs four hexadecimal digits"),
        (#""\ud800""#, 1, "unpaired UTF-16 surrogate in a \\u escape"),
        (#""\ud800\u0041""#, 1, "unpaired UTF-16 surrogate in a \\u escape"),
        (#""\udc00""#, 1, "unpaired UTF-16 surrogate in a \\u escape"),
        ("\"a\tb\"", 2, "unescaped control character in a string"),
        (#"{"k":1,"k":2}"#, 7, "repeated key \"k\""),
        ("\u{1}", 0, "unexpected byte 0x1, expected a JSON value"),
    ])
    func refusesWhatIsNotJSON(text: String, offset: Int, reason: String) {
        let error = #expect(throws: JSONValue.SyntaxError.self) { try JSONValue(parsing: Array(text.utf8)) }
        #expect(error == JSONValue.SyntaxError(offset: offset, reason: reason), "\(text)")
    }

    @Test func refusesInvalidUTF8AndDeepNesting() {
        let invalid = #expect(throws: JSONValue.SyntaxError.self) { try JSONValue(parsing: [0x22, 0x61, 0xff, 0x22]) }
        #expect(invalid == JSONValue.SyntaxError(offset: 2, reason: "string is not valid UTF-8"))
        let overlong = #expect(throws: JSONValue.SyntaxError.self) {
            try JSONValue(parsing: Array(#"["ok", "\n é "#.utf8) + [0xc0, 0xaf, 0x22, 0x5d])
        }
        #expect(overlong == JSONValue.SyntaxError(offset: 14, reason: "string is not valid UTF-8"))

        let deep = Array(repeating: UInt8(ascii: "["), count: 513) + Array(repeating: UInt8(ascii: "]"), count: 513)
        let error = #expect(throws: JSONValue.SyntaxError.self) { try JSONValue(parsing: deep) }
        #expect(error == JSONValue.SyntaxError(offset: 512, reason: "objects and arrays nest deeper than 512"))
        let fine = Array(deep[1..<(deep.count - 1)])
        #expect(throws: Never.self) { try JSONValue(parsing: fine) }
    }

    @Test func exactIntegersBeyondTwoToThe53() throws {
        #expect(try JSONValue(parsing: Array("9007199254740993.0".utf8)) == .int(9_007_199_254_740_993))
        #expect(try JSONValue(parsing: Array("-9.223372036854775808e18".utf8)) == .int(.min))
        #expect(try JSONValue(parsing: Array("9007199254740993.5".utf8)) == .double(9_007_199_254_740_994))
        #expect(try JSONValue(parsing: Array("1e19".utf8)) == .double(1e19))
        // JSONDecoder reads this one as a double although its value fits in 64 bits.
        #expect(try JSONValue(parsing: Array("9.2233720368547758e18".utf8)) == .int(9_223_372_036_854_775_800))
        #expect(try JSONValue(parsing: Array("1e-999".utf8)) == .double(0), "not an integer, though it rounds to 0")
    }

    @Test func nonFiniteNumbersAreDetected() {
        #expect(JSONValue.array([.double(1), .object(["n": .double(.nan)])]).allNumbersFinite == false)
        #expect(Self.awkward.allNumbersFinite)
    }

}
