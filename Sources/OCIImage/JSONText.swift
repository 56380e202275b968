/// JSON text to and from ``JSONValue`` directly, without Codable.
///
/// Every unpack parses the runtime-spec template and writes `config.json`. Through
/// `JSONDecoder`/`JSONEncoder` those two steps cost a fifth of the instructions of a small unpack
/// (a `JSONValue` is decoded by trying each case in turn, and every first use of a generic Codable
/// type makes the Swift runtime search all protocol conformances in the binary). This scanner
/// and writer do the same job in a sixth of those instructions.
extension JSONValue {
    /// Why a text is not JSON, and the byte offset where that was found.
    public struct SyntaxError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The byte offset in the text where the problem was found.
        public let offset: Int
        /// What is wrong with the text there.
        public let reason: String

        /// The reason followed by its byte offset, e.g. `invalid number at byte 12`.
        public var description: String { "\(reason) at byte \(offset)" }
    }

    /// Parses one JSON value (RFC 8259) that fills all of `text` but for white space.
    ///
    /// A number whose value is a 64-bit integer (`12`, `1.0`, `1e2`) becomes an `.int`, any other
    /// a `.double`, which must be finite. Strings must be UTF-8; an object may not repeat a key
    /// (keys are compared as Swift compares strings, so two spellings of `é`, composed and
    /// decomposed, are the same key); containers may nest `maxDepth` deep; a leading UTF-8 byte
    /// order mark is skipped. Unlike JSONDecoder, trailing commas and repeated keys are refused.
    public init(parsing text: [UInt8], maxDepth: Int = 512) throws(SyntaxError) {
        var scanner = JSONScanner(bytes: text, maxDepth: maxDepth)
        if text.starts(with: [0xef, 0xbb, 0xbf]) { scanner.offset = 3 }  // a UTF-8 byte order mark
        self = try scanner.value(depth: 0)
        scanner.skipWhiteSpace()
        guard scanner.offset == text.count else { throw scanner.failure("unexpected text after the JSON value") }
    }

    /// The value as indented JSON text: two spaces per level, `"key" : value`, object keys in
    /// byte order, `/` not escaped. These are the bytes `JSONEncoder` writes with
    /// `[.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]`, so `config.json` stays the same,
    /// but for -0.0 and integral doubles between 2^53 and 2^63 (see ``numberText(_:)``).
    /// Every `.double` must be finite (``allNumbersFinite``): JSON cannot write infinity or NaN.
    public func formatted() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(into: &out, indent: 0)
        return out
    }

    /// Whether every `.double` inside is finite, so that ``formatted()`` can write it. Parsed text
    /// always is; a value built in code may not be.
    public var allNumbersFinite: Bool {
        switch self {
        case .double(let value): value.isFinite
        case .array(let elements): elements.allSatisfy(\.allNumbersFinite)
        case .object(let members): members.values.allSatisfy(\.allNumbersFinite)
        default: true
        }
    }

    private func write(into out: inout [UInt8], indent: Int) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let value): out.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value): out.append(contentsOf: String(value).utf8)
        case .double(let value): out.append(contentsOf: Self.numberText(value).utf8)
        case .string(let value): Self.writeString(value, into: &out)
        case .array(let elements):
            Self.writeContainer(
                elements, open: UInt8(ascii: "["), close: UInt8(ascii: "]"), indent: indent, into: &out
            ) { element, out in element.write(into: &out, indent: indent + 2) }
        case .object(let members):
            let sorted = members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            Self.writeContainer(
                sorted, open: UInt8(ascii: "{"), close: UInt8(ascii: "}"), indent: indent, into: &out
            ) { member, out in
                Self.writeString(member.key, into: &out)
                out.append(contentsOf: " : ".utf8)
                member.value.write(into: &out, indent: indent + 2)
            }
        }
    }

    /// `[`, each element on its own line one level deeper, then `]` on its own line. An empty
    /// container is written as JSONEncoder writes it: the brackets with an empty line between.
    private static func writeContainer<Element>(
        _ elements: [Element], open: UInt8, close: UInt8, indent: Int, into out: inout [UInt8],
        element write: (Element, inout [UInt8]) -> Void
    ) {
        out.append(open)
        if elements.isEmpty { out.append(0x0a) }
        for (index, element) in elements.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(0x0a)
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent + 2))
            write(element, &out)
        }
        out.append(0x0a)
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: indent))
        out.append(close)
    }

    /// Integral values below 2^63 as integers (`1`, `0` for -0.0, `9007199254740994`), others in
    /// Swift's shortest round-tripping form (`0.1`, `1e+19`), as JSONEncoder does (checked by a
    /// test) but for two cases: JSONEncoder switches to the exponent form at 2^53 already and writes
    /// `-0`. Both would read back as integers and then be written differently; these rules make
    /// whatever is written read back to the same text.
    static func numberText(_ value: Double) -> String {
        precondition(value.isFinite, "JSON has no infinity or NaN; RuntimeConfig.encode refuses them")
        if value.rounded(.towardZero) == value, value.magnitude < 0x1p63 {
            return String(Int64(value))  // -0.0 as 0: an integer has no negative zero
        }
        return value.description
    }

    private static func writeString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x08: out.append(contentsOf: #"\b"#.utf8)
            case 0x0c: out.append(contentsOf: #"\f"#.utf8)
            case 0x0a: out.append(contentsOf: #"\n"#.utf8)
            case 0x0d: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xf)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A recursive-descent reader of RFC 8259 text over a byte array.
private struct JSONScanner {
    let bytes: [UInt8]
    let maxDepth: Int
    var offset = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func failure(_ reason: String, at position: Int? = nil) -> JSONValue.SyntaxError {
        JSONValue.SyntaxError(offset: position ?? offset, reason: reason)
    }

    private var current: UInt8? { offset < bytes.count ? bytes[offset] : nil }

    mutating func skipWhiteSpace() {
        while let byte = current, byte == 0x20 || byte == 0x0a || byte == 0x0d || byte == 0x09 { offset += 1 }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(JSONValue.SyntaxError) {
        skipWhiteSpace()
        guard current == byte else { throw unexpected(what) }
        offset += 1
    }

    private func unexpected(_ expected: String) -> JSONValue.SyntaxError {
        guard let byte = current else { return failure("unexpected end of text, expected \(expected)") }
        let shown =
            (0x21..<0x7f).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
        return failure("unexpected \(shown), expected \(expected)")
    }

    mutating func value(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        skipWhiteSpace()
        guard let byte = current else { throw unexpected("a JSON value") }
        switch byte {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw unexpected("a JSON value")
        }
    }

    private mutating func literal(_ word: String, _ value: JSONValue) throws(JSONValue.SyntaxError) -> JSONValue {
        let end = offset + word.utf8.count
        guard end <= bytes.count, bytes[offset..<end].elementsEqual(word.utf8) else {
            throw failure("invalid literal, expected \(word)")
        }
        offset = end
        return value
    }

    private mutating func object(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        guard depth <= maxDepth else { throw failure("objects and arrays nest deeper than \(maxDepth)") }
        offset += 1
        var members: [String: JSONValue] = [:]
        skipWhiteSpace()
        if current == UInt8(ascii: "}") {
            offset += 1
            return .object(members)
        }
        while true {
            skipWhiteSpace()
            guard current == UInt8(ascii: "\"") else { throw unexpected("a string key") }
            let keyOffset = offset
            let key = try string()
            try expect(UInt8(ascii: ":"), "':'")
            let member = try value(depth: depth)
            guard members.updateValue(member, forKey: key) == nil else {
                throw failure("repeated key \"\(key.truncatedForMessage)\"", at: keyOffset)
            }
            skipWhiteSpace()
            if current == UInt8(ascii: ",") {
                offset += 1
                continue
            }
            try expect(UInt8(ascii: "}"), "',' or '}'")
            return .object(members)
        }
    }

    private mutating func array(depth: Int) throws(JSONValue.SyntaxError) -> JSONValue {
        guard depth <= maxDepth else { throw failure("objects and arrays nest deeper than \(maxDepth)") }
        offset += 1
        var elements: [JSONValue] = []
        skipWhiteSpace()
        if current == UInt8(ascii: "]") {
            offset += 1
            return .array(elements)
        }
        while true {
            elements.append(try value(depth: depth))
            skipWhiteSpace()
            if current == UInt8(ascii: ",") {
                offset += 1
                continue
            }
            try expect(UInt8(ascii: "]"), "',' or ']'")
            return .array(elements)
        }
    }

    private mutating func string() throws(JSONValue.SyntaxError) -> String {
        let start = offset
        offset += 1
        var text: [UInt8] = []
        var run = offset
        while true {
            guard let byte = current else { throw failure("unterminated string", at: start) }
            if byte == UInt8(ascii: "\"") {
                text.append(contentsOf: bytes[run..<offset])
                offset += 1
                break
            }
            guard byte >= 0x20 else { throw failure("unescaped control character in a string") }
            guard byte == UInt8(ascii: "\\") else {
                offset += 1
                continue
            }
            text.append(contentsOf: bytes[run..<offset])
            offset += 1
            guard let escape = current else { throw failure("unterminated string", at: start) }
            offset += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escape)
            case UInt8(ascii: "b"): text.append(0x08)
            case UInt8(ascii: "f"): text.append(0x0c)
            case UInt8(ascii: "n"): text.append(0x0a)
            case UInt8(ascii: "r"): text.append(0x0d)
            case UInt8(ascii: "t"): text.append(0x09)
            case UInt8(ascii: "u"): UTF8.encode(try escapedScalar(), into: { text.append($0) })
            default: throw failure("invalid escape in a string", at: offset - 2)
            }
            run = offset
        }
        guard let string = String(validating: text, as: UTF8.self) else {
            // Escapes always yield valid UTF-8, so the fault is in the raw bytes of the literal.
            throw failure(
                "string is not valid UTF-8", at: Self.firstInvalidUTF8(bytes[(start + 1)..<(offset - 1)]) ?? start)
        }
        return string
    }

    /// Where the first byte sequence that is not UTF-8 starts.
    private static func firstInvalidUTF8(_ bytes: ArraySlice<UInt8>) -> Int? {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var position = bytes.startIndex
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded): position += encoded.count
            case .emptyInput: return nil
            case .error: return position
            }
        }
    }

    /// The scalar of a `\uXXXX` escape (after the `u`), joining a UTF-16 surrogate pair.
    private mutating func escapedScalar() throws(JSONValue.SyntaxError) -> Unicode.Scalar {
        let escapeOffset = offset - 2
        let first = try hexQuad()
        var value = first
        if (0xd800...0xdbff).contains(first) {
            guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u")
            else { throw failure("unpaired UTF-16 surrogate in a \\u escape", at: escapeOffset) }
            offset += 2
            let second = try hexQuad()
            guard (0xdc00...0xdfff).contains(second) else {
                throw failure("unpaired UTF-16 surrogate in a \\u escape", at: escapeOffset)
            }
            value = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        }
        guard let scalar = Unicode.Scalar(value) else {
            throw failure("unpaired UTF-16 surrogate in a \\u escape", at: escapeOffset)
        }
        return scalar
    }

    private mutating func hexQuad() throws(JSONValue.SyntaxError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            let digit: UInt8
            switch current {
            case .some(let byte) where (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte): digit = byte - 0x30
            case .some(let byte) where (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte): digit = byte - 0x57
            case .some(let byte) where (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte): digit = byte - 0x37
            default: throw failure("\\u escape needs four hexadecimal digits")
            }
            value = value << 4 | UInt32(digit)
            offset += 1
        }
        return value
    }

    private mutating func number() throws(JSONValue.SyntaxError) -> JSONValue {
        let start = offset
        if current == UInt8(ascii: "-") { offset += 1 }
        if current == UInt8(ascii: "0") {
            offset += 1
            guard digits() == 0 else { throw failure("invalid number (leading zero)", at: start) }
        } else {
            guard digits() > 0 else { throw failure("invalid number", at: start) }
        }
        var integral = true
        if current == UInt8(ascii: ".") {
            integral = false
            offset += 1
            guard digits() > 0 else { throw failure("invalid number (no digits after '.')", at: start) }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            offset += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { offset += 1 }
            guard digits() > 0 else { throw failure("invalid number (no digits in the exponent)", at: start) }
        }
        let text = String(decoding: bytes[start..<offset], as: UTF8.self)
        if integral, let value = Int64(text) { return .int(value) }
        guard let value = Double(text), value.isFinite else {
            throw failure("number \(text) is out of range", at: start)
        }
        // `1.0` and `1e2` are integers too (as JSONDecoder reads them): only a number with a
        // fraction, or one beyond 64 bits, is a double.
        if !integral, let exact = Self.exactInteger(bytes[start..<offset]) { return .int(exact) }
        return .double(value)
    }

    /// The 64-bit integer that a number with a fraction or an exponent stands for, worked out from
    /// its digits (a Double is exact only below 2^53): `12.50e1` is 125, `9007199254740993.0` is
    /// 9007199254740993, `1.5` and `1e19` are none. (JSONDecoder drops a non-zero fraction beyond
    /// 2^53; this does not.)
    private static func exactInteger(_ number: ArraySlice<UInt8>) -> Int64? {
        var digits: [UInt8] = []
        var fractionDigits = 0
        var exponent = 0
        var exponentSign = 1
        var part = 0  // 0: integer digits, 1: fraction digits, 2: exponent
        for byte in number {
            switch byte {
            case UInt8(ascii: "."): part = 1
            case UInt8(ascii: "e"), UInt8(ascii: "E"): part = 2
            case UInt8(ascii: "-") where part == 2: exponentSign = -1
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if part == 2 {
                    exponent = min(exponent * 10 + Int(byte - 0x30), 100_000)
                } else {
                    if !(digits.isEmpty && byte == UInt8(ascii: "0")) { digits.append(byte) }
                    if part == 1 { fractionDigits += 1 }
                }
            default: break  // the sign of the number, a '+' in the exponent
            }
        }
        guard !digits.isEmpty else { return 0 }  // 0.0, -0e5
        var shift = exponentSign * exponent - fractionDigits
        while shift < 0, digits.last == UInt8(ascii: "0") {
            digits.removeLast()
            shift += 1
        }
        guard shift >= 0, digits.count + shift <= 19 else { return nil }
        digits.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: shift))
        let negative = number.first == UInt8(ascii: "-")
        return Int64((negative ? "-" : "") + String(decoding: digits, as: UTF8.self))
    }

    /// Consumes ASCII digits and returns how many.
    private mutating func digits() -> Int {
        let start = offset
        while let byte = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { offset += 1 }
        return offset - start
    }
}
