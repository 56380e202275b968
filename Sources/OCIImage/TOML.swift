/// The TOML that configuration files of the container tools use (`registries.conf` and its
/// drop-ins, containerd's `hosts.toml`), read strictly: tables, arrays of tables, dotted and
/// quoted keys, basic and literal strings, booleans, integers, arrays and inline tables. What
/// those files never hold (multi-line strings, floats, dates) is refused by name rather than
/// guessed at, and so is what TOML forbids (a key defined twice, a table redefined). Every error
/// names the file and line.
package enum TOML: Equatable, Sendable {
    case string(String)
    case bool(Bool)
    case integer(Int64)
    case array([TOML])
    case table(TOMLTable)
    /// `[[name]]`: an array of tables.
    case tables([TOMLTable])

    /// What the value is, for messages (`a string`, `an array`).
    package var kind: String {
        switch self {
        case .string: "a string"
        case .bool: "a boolean"
        case .integer: "an integer"
        case .array: "an array"
        case .table: "a table"
        case .tables: "an array of tables"
        }
    }

    /// An array whose items are all inline tables (`registry = [{…}, {…}]`), as the array of
    /// tables it means; nil for anything else.
    package var asTables: TOML? {
        guard case .array(let items) = self else { return nil }
        var tables: [TOMLTable] = []
        for item in items {
            guard case .table(let t) = item else { return nil }
            tables.append(t)
        }
        return .tables(tables)
    }

    /// Changes the table this value is, or the last of its array of tables, in place: the value
    /// is emptied while `body` runs, so that what it holds is not shared and is not copied.
    mutating func changeTable<E: Error>(_ body: (inout TOMLTable) throws(E) -> Void) throws(E) {
        // `if case` and then overwriting self leaves the bound copy the only owner (a `switch`
        // would keep its subject, a second owner, alive through the body).
        if case .table(var table) = self {
            self = .bool(false)
            defer { self = .table(table) }
            try body(&table)
        } else if case .tables(var tables) = self, !tables.isEmpty {
            self = .bool(false)
            defer { self = .tables(tables) }
            try body(&tables[tables.count - 1])
        }
    }

    /// Appends an element to an array of tables, in place (as ``changeTable(_:)``).
    mutating func appendTable(_ element: TOMLTable) {
        guard case .tables(var tables) = self else { return }
        self = .bool(false)
        tables.append(element)
        self = .tables(tables)
    }

    /// A document's error: the file, the line (from 1) and what is wrong.
    package struct Problem: Error, Sendable, CustomStringConvertible, Equatable {
        package let file: String
        package let line: Int
        package let message: String
        package var description: String { "\(file):\(line): \(message)" }
    }

    /// Parses `text`, which came from `file` (named in errors).
    package static func parse(_ text: String, file: String) throws(Problem) -> TOMLTable {
        var parser = TOMLParser(Array(text.utf8), file: file)
        return try parser.document()
    }
}

/// A TOML table: its keys' values, and the line each key was set on.
package struct TOMLTable: Equatable, Sendable {
    package var values: [String: TOML] = [:]
    package var lines: [String: Int] = [:]
    /// Where the table starts (its header, or the key of an inline table).
    package var line: Int = 1
    /// Set by a `[header]` of its own (a second one is an error); tables made implicitly by dotted
    /// keys or longer headers are not.
    var explicitlyDefined = false
    /// Written inline (`{ … }`): closed to later keys and headers.
    var inline = false

    package subscript(key: String) -> TOML? { values[key] }
}

/// The parser behind ``TOML/parse(_:file:)``.
struct TOMLParser {
    let bytes: [UInt8]
    let file: String
    var position = 0
    var line = 1

    init(_ bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    /// Nesting of arrays and inline tables, at most.
    static let maxDepth = 32

    func problem(_ message: String, line: Int? = nil) -> TOML.Problem {
        TOML.Problem(file: file, line: line ?? self.line, message: message)
    }

    var atEnd: Bool { position >= bytes.count }
    var current: UInt8? { atEnd ? nil : bytes[position] }

    mutating func advance() {
        if bytes[position] == UInt8(ascii: "\n") { line += 1 }
        position += 1
    }

    /// Spaces and tabs.
    mutating func skipBlanks() {
        while let c = current, c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { advance() }
    }

    /// Blanks, then a comment to the end of the line.
    mutating func skipBlanksAndComment() throws(TOML.Problem) {
        skipBlanks()
        if current == UInt8(ascii: "#") {
            while let c = current, c != UInt8(ascii: "\n") {
                if c < 0x20 && c != UInt8(ascii: "\t") && c != UInt8(ascii: "\r") {
                    throw problem("a control character in a comment")
                }
                advance()
            }
        }
    }

    /// Blanks, comments and newlines (inside arrays, and between statements).
    mutating func skipWhitespace() throws(TOML.Problem) {
        while true {
            try skipBlanksAndComment()
            guard let c = current, c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") else { return }
            advance()
        }
    }

    /// The end of a statement: blanks, an optional comment, then a newline or the end.
    mutating func endOfLine() throws(TOML.Problem) {
        try skipBlanksAndComment()
        if current == UInt8(ascii: "\r") { advance() }
        guard let c = current else { return }
        guard c == UInt8(ascii: "\n") else {
            throw problem("unexpected \(Self.describe(c)) after a value (one key = value per line)")
        }
        advance()
    }

    static func describe(_ c: UInt8) -> String {
        (0x21..<0x7f).contains(c) ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
    }

    mutating func document() throws(TOML.Problem) -> TOMLTable {
        var root = TOMLTable()
        // The table that key = value lines go into: a path of keys from the root, where an array
        // of tables stands for its last element.
        var currentPath: [String] = []
        while true {
            try skipWhitespace()
            guard let c = current else { break }
            if c == UInt8(ascii: "[") {
                let headerLine = line
                advance()
                let isArray = current == UInt8(ascii: "[")
                if isArray { advance() }
                skipBlanks()
                let path = try key()
                skipBlanks()
                guard current == UInt8(ascii: "]") else { throw problem("a table header must end with ]") }
                advance()
                if isArray {
                    guard current == UInt8(ascii: "]") else {
                        throw problem("an array-of-tables header must end with ]]")
                    }
                    advance()
                }
                try endOfLine()
                try Self.open(path, array: isArray, in: &root, line: headerLine, parser: self)
                currentPath = path
                continue
            }
            let keyLine = line
            let path = try key()
            skipBlanks()
            guard current == UInt8(ascii: "=") else {
                throw problem("expected = after the key \(path.joined(separator: "."))")
            }
            advance()
            skipBlanks()
            let value = try self.value(depth: 0)
            try endOfLine()
            try Self.set(value, at: currentPath + path, in: &root, line: keyLine, parser: self)
        }
        return root
    }

    // MARK: - Keys

    /// A dotted key: bare (`A-Za-z0-9_-`) or quoted parts.
    mutating func key() throws(TOML.Problem) -> [String] {
        var parts: [String] = []
        while true {
            skipBlanks()
            guard let c = current else { throw problem("a key is missing") }
            if c == UInt8(ascii: "\"") {
                parts.append(try basicString())
            } else if c == UInt8(ascii: "'") {
                parts.append(try literalString())
            } else {
                let start = position
                while let b = current, Self.isBareKey(b) { advance() }
                guard position > start else { throw problem("unexpected \(Self.describe(c)) where a key should be") }
                parts.append(String(decoding: bytes[start..<position], as: UTF8.self))
            }
            skipBlanks()
            guard current == UInt8(ascii: ".") else { return parts }
            guard parts.count < Self.maxDepth else { throw problem("a key has more than \(Self.maxDepth) parts") }
            advance()
        }
    }

    static func isHexDigit(_ c: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(c)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(c)
    }

    static func isBareKey(_ c: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "_")
            || c == UInt8(ascii: "-")
    }

    // MARK: - Values

    mutating func value(depth: Int) throws(TOML.Problem) -> TOML {
        guard depth < Self.maxDepth else { throw problem("arrays and inline tables nest deeper than \(Self.maxDepth)") }
        guard let c = current else { throw problem("a value is missing") }
        switch c {
        case UInt8(ascii: "\""):
            if bytes[position...].starts(with: Array("\"\"\"".utf8)) {
                throw problem("multi-line strings are not supported here")
            }
            return .string(try basicString())
        case UInt8(ascii: "'"):
            if bytes[position...].starts(with: Array("'''".utf8)) {
                throw problem("multi-line strings are not supported here")
            }
            return .string(try literalString())
        case UInt8(ascii: "["):
            return try array(depth: depth)
        case UInt8(ascii: "{"):
            return try inlineTable(depth: depth)
        default:
            let start = position
            while let b = current,
                Self.isBareKey(b) || b == UInt8(ascii: "+") || b == UInt8(ascii: ".")
                    || b == UInt8(ascii: ":")
            {
                advance()
            }
            let word = String(decoding: bytes[start..<position], as: UTF8.self)
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            if let n = Self.integer(word) { return .integer(n) }
            if word.isEmpty { throw problem("unexpected \(Self.describe(c)) where a value should be") }
            throw problem(
                "\"\(word.truncatedForMessage)\" is not a value this reader accepts (strings are quoted; floats and dates are not used here)"
            )
        }
    }

    /// A decimal integer, with an optional sign and single underscores between digits.
    static func integer(_ word: String) -> Int64? {
        var text = Substring(word)
        var negative = false
        if let sign = text.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            text = text.dropFirst()
        }
        guard let first = text.first, first.isASCII, first.isNumber, !text.hasSuffix("_"),
            !text.contains("__"), text == "0" || first != "0"
        else { return nil }
        let digits = text.filter { $0 != "_" }
        guard digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(digits) else { return nil }
        return negative ? -n : n
    }

    mutating func array(depth: Int) throws(TOML.Problem) -> TOML {
        advance()  // [
        var items: [TOML] = []
        while true {
            try skipWhitespace()
            guard let c = current else { throw problem("an array is not closed with ]") }
            if c == UInt8(ascii: "]") {
                advance()
                return .array(items)
            }
            items.append(try value(depth: depth + 1))
            try skipWhitespace()
            if current == UInt8(ascii: ",") {
                advance()
                continue
            }
            try skipWhitespace()
            guard current == UInt8(ascii: "]") else { throw problem("expected , or ] in an array") }
        }
    }

    mutating func inlineTable(depth: Int) throws(TOML.Problem) -> TOML {
        let startLine = line
        advance()  // {
        var table = TOMLTable()
        table.line = startLine
        table.explicitlyDefined = true
        skipBlanks()
        if current == UInt8(ascii: "}") {
            advance()
            table.inline = true
            return .table(table)
        }
        while true {
            skipBlanks()
            let keyLine = line
            let path = try key()
            guard current == UInt8(ascii: "=") else {
                throw problem("expected = after the key \(path.joined(separator: ".")) in an inline table")
            }
            advance()
            skipBlanks()
            let value = try self.value(depth: depth + 1)
            try Self.set(value, at: path, in: &table, line: keyLine, parser: self)
            skipBlanks()
            guard let c = current else { throw problem("an inline table is not closed with }") }
            if c == UInt8(ascii: "}") {
                advance()
                table.inline = true
                return .table(table)
            }
            guard c == UInt8(ascii: ",") else { throw problem("expected , or } in an inline table (on one line)") }
            advance()
        }
    }

    /// `"…"`, with TOML's escapes.
    mutating func basicString() throws(TOML.Problem) -> String {
        advance()  // "
        var out: [UInt8] = []
        while true {
            guard let c = current, c != UInt8(ascii: "\n") else { throw problem("a string is not closed with \"") }
            advance()
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                guard let e = current else { throw problem("a string ends in an escape") }
                advance()
                switch e {
                case UInt8(ascii: "\""): out.append(e)
                case UInt8(ascii: "\\"): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "u"), UInt8(ascii: "U"):
                    let count = e == UInt8(ascii: "u") ? 4 : 8
                    guard position + count <= bytes.count,
                        bytes[position..<(position + count)].allSatisfy({ Self.isHexDigit($0) }),
                        let code = UInt32(
                            String(decoding: bytes[position..<(position + count)], as: UTF8.self), radix: 16),
                        let scalar = Unicode.Scalar(code)
                    else { throw problem("an invalid \\\(Character(Unicode.Scalar(e))) escape in a string") }
                    for _ in 0..<count { advance() }
                    out += Array(String(Character(scalar)).utf8)
                default:
                    throw problem("an unknown escape \\\(Self.describe(e)) in a string")
                }
                continue
            }
            if c < 0x20 && c != UInt8(ascii: "\t") { throw problem("a control character in a string") }
            out.append(c)
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw problem("a string is not UTF-8") }
        return text
    }

    /// `'…'`, taken as written.
    mutating func literalString() throws(TOML.Problem) -> String {
        advance()  // '
        let start = position
        while let c = current, c != UInt8(ascii: "'") {
            guard c != UInt8(ascii: "\n") else { throw problem("a string is not closed with '") }
            if c < 0x20 && c != UInt8(ascii: "\t") { throw problem("a control character in a string") }
            advance()
        }
        guard current != nil else { throw problem("a string is not closed with '") }
        let text = String(validating: bytes[start..<position], as: UTF8.self)
        advance()
        guard let text else { throw problem("a string is not UTF-8") }
        return text
    }

    // MARK: - Building the tables

    /// `[path]` or `[[path]]`: defines a table, or appends one to an array of tables.
    static func open(_ path: [String], array: Bool, in root: inout TOMLTable, line: Int, parser: TOMLParser)
        throws(TOML.Problem)
    {
        try descend(path, in: &root, line: line, parser: parser) { (table, key) throws(TOML.Problem) in
            let name = path.joined(separator: ".")
            // Another [[name]]: appended in place, not copied per header.
            if array, case .tables? = table.values[key] {
                var element = TOMLTable()
                element.line = line
                element.explicitlyDefined = true
                table.values[key]?.appendTable(element)
                return
            }
            switch (table.values[key], array) {
            case (nil, true):
                var element = TOMLTable()
                element.line = line
                element.explicitlyDefined = true
                table.values[key] = .tables([element])
                table.lines[key] = line
            case (nil, false):
                var element = TOMLTable()
                element.line = line
                element.explicitlyDefined = true
                table.values[key] = .table(element)
                table.lines[key] = line
            case (.table(var existing), false):
                guard !existing.explicitlyDefined else {
                    throw parser.problem(
                        "table [\(name)] is defined twice (first on line \(existing.line))", line: line)
                }
                existing.explicitlyDefined = true
                existing.line = line
                table.values[key] = .table(existing)
            case (let other?, _):
                throw parser.problem(
                    "[\(array ? "[" : "")\(name)\(array ? "]" : "")] redefines a key that is \(other.kind) (line \(table.lines[key] ?? 0))",
                    line: line)
            }
        }
    }

    /// `path = value` below `root`.
    static func set(_ value: TOML, at path: [String], in root: inout TOMLTable, line: Int, parser: TOMLParser)
        throws(TOML.Problem)
    {
        try descend(path, in: &root, line: line, parser: parser) { (table, key) throws(TOML.Problem) in
            if table.values[key] != nil {
                throw parser.problem(
                    "key \(path.joined(separator: ".")) is defined twice (first on line \(table.lines[key] ?? 0))",
                    line: line)
            }
            table.values[key] = value
            table.lines[key] = line
        }
    }

    /// Walks to the table that holds `path`'s last key (making implicit tables on the way; an
    /// array of tables stands for its last element) and applies `body` to it.
    static func descend(
        _ path: [String], in table: inout TOMLTable, line: Int, parser: TOMLParser,
        _ body: (inout TOMLTable, String) throws(TOML.Problem) -> Void
    ) throws(TOML.Problem) {
        guard let first = path.first else { throw parser.problem("an empty key", line: line) }
        if path.count == 1 { return try body(&table, first) }
        let rest = Array(path.dropFirst())
        // Changed in place through the dictionary's accessor (``TOML/changeTable(_:)``): a
        // table or an array of tables is not copied for every key below it.
        switch table.values[first] {
        case nil:
            var child = TOMLTable()
            child.line = line
            try descend(rest, in: &child, line: line, parser: parser, body)
            table.values[first] = .table(child)
            table.lines[first] = line
            return
        case .table(let child)? where child.inline:
            // An inline table is whole as written: nothing is added to it later.
            throw parser.problem(
                "\(path.joined(separator: ".")) adds to the inline table \(first) (line \(child.line))", line: line)
        case .table?, .tables?:
            break  // below, once the switch no longer holds a copy of the value
        case let other?:
            throw parser.problem(
                "\(path.joined(separator: ".")) goes through \(first), which is \(other.kind) (line \(table.lines[first] ?? 0))",
                line: line)
        }
        try table.values[first]?.changeTable { (child) throws(TOML.Problem) in
            try descend(rest, in: &child, line: line, parser: parser, body)
        }
    }
}
