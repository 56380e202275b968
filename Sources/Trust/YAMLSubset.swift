/// The part of YAML that `registries.d` files use: nested block mappings of plain or quoted
/// scalars, with comments. Anything else (sequences, flow collections, anchors, tags, block
/// scalars, tabs in indentation, a repeated key) is refused with the file and line, so a file
/// never means one thing here and another to containers/image's YAML reader.
package enum YAMLSubset {
    /// A value: a scalar, a mapping, or nothing (`key:` with no value and no nested lines).
    package indirect enum Node: Equatable, Sendable {
        case scalar(String, quoted: Bool)
        case mapping([Entry])
        case empty
    }

    /// One key of a mapping, with the line it is on.
    package struct Entry: Equatable, Sendable {
        package let key: String
        package let value: Node
        package let line: Int
    }

    /// A problem: the file, the line (from 1) and what is wrong.
    package struct Problem: Error, Sendable, CustomStringConvertible, Equatable {
        package let file: String
        package let line: Int
        package let message: String
        package var description: String { "\(file):\(line): \(message)" }
    }

    private struct Line {
        let number: Int
        let indent: Int
        let key: String
        /// The text after `key:`, trimmed; empty when a nested mapping (or nothing) follows.
        let rest: String
    }

    /// The document's top mapping (empty for a file of comments only).
    package static func parse(_ text: String, file: String) throws(Problem) -> [Entry] {
        var lines: [Line] = []
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var content = Substring(raw)
            if content.last == "\r" { content = content.dropLast() }
            let body = try stripComment(content, file: file, line: number)
            let trimmed = body.drop(while: { $0 == " " })
            if trimmed.isEmpty { continue }
            if trimmed == "---" && lines.isEmpty { continue }  // the document's start marker
            let indentation = body.prefix(while: { $0 == " " || $0 == "\t" })
            if indentation.contains("\t") {
                throw Problem(file: file, line: number, message: "a tab in indentation (YAML indents with spaces)")
            }
            let (key, rest) = try splitKey(trimmed, file: file, line: number)
            lines.append(Line(number: number, indent: indentation.count, key: key, rest: rest))
        }
        var position = 0
        let entries = try mapping(lines, &position, indent: lines.first?.indent ?? 0, file: file)
        if position < lines.count {
            throw Problem(
                file: file, line: lines[position].number, message: "indentation does not match any mapping above")
        }
        return entries
    }

    private static func mapping(_ lines: [Line], _ position: inout Int, indent: Int, file: String) throws(Problem)
        -> [Entry]
    {
        var entries: [Entry] = []
        var seen: Set<String> = []
        while position < lines.count, lines[position].indent == indent {
            let line = lines[position]
            position += 1
            guard seen.insert(line.key).inserted else {
                throw Problem(
                    file: file, line: line.number, message: "key \"\(line.key)\" is already defined in this mapping")
            }
            let value: Node
            if !line.rest.isEmpty {
                if position < lines.count, lines[position].indent > indent {
                    throw Problem(
                        file: file, line: lines[position].number,
                        message: "\"\(line.key)\" has a value on its line and nested lines below it")
                }
                value = try scalar(line.rest, file: file, line: line.number)
            } else if position < lines.count, lines[position].indent > indent {
                value = .mapping(try mapping(lines, &position, indent: lines[position].indent, file: file))
            } else {
                value = .empty
            }
            entries.append(Entry(key: line.key, value: value, line: line.number))
        }
        if position < lines.count, lines[position].indent > indent {
            throw Problem(
                file: file, line: lines[position].number, message: "indentation does not match any mapping above")
        }
        return entries
    }

    /// `key: rest` (or `key:`), the key plain or quoted.
    private static func splitKey(_ text: Substring, file: String, line: Int) throws(Problem) -> (String, String) {
        try refuseUnsupported(text, file: file, line: line)
        var key: String
        var after: Substring
        if let quote = text.first, quote == "\"" || quote == "'" {
            let (value, end) = try quoted(text, file: file, line: line)
            key = value
            after = text[end...]
            guard after.first == ":" else {
                throw Problem(file: file, line: line, message: "a quoted key must be followed by \":\"")
            }
            after = after.dropFirst()
        } else {
            // A plain key ends at the first ": " (or a ":" ending the line).
            var index = text.startIndex
            var found: String.Index?
            while index < text.endIndex {
                if text[index] == ":" {
                    let next = text.index(after: index)
                    if next == text.endIndex || text[next] == " " {
                        found = index
                        break
                    }
                }
                index = text.index(after: index)
            }
            guard let found else {
                throw Problem(
                    file: file, line: line,
                    message:
                        "\"\(String(text).truncatedForMessage)\" is not \"key: value\" (only mappings are read here)")
            }
            key = String(text[..<found]).trimmingSpaces
            after = text[text.index(after: found)...]
            if key.isEmpty { throw Problem(file: file, line: line, message: "a key is empty") }
        }
        if !after.isEmpty && after.first != " " {
            throw Problem(file: file, line: line, message: "\":\" after a key must be followed by a space")
        }
        return (key, String(after).trimmingSpaces)
    }

    private static func scalar(_ text: String, file: String, line: Int) throws(Problem) -> Node {
        let body = Substring(text)
        try refuseUnsupported(body, file: file, line: line)
        if let quote = body.first, quote == "\"" || quote == "'" {
            let (value, end) = try quoted(body, file: file, line: line)
            guard body[end...].allSatisfy({ $0 == " " }) else {
                throw Problem(file: file, line: line, message: "text after a quoted value")
            }
            return .scalar(value, quoted: true)
        }
        if text.contains(": ") {
            throw Problem(file: file, line: line, message: "a nested mapping must start on its own line")
        }
        return .scalar(text, quoted: false)
    }

    /// What YAML means but this reader does not read, named.
    private static func refuseUnsupported(_ text: Substring, file: String, line: Int) throws(Problem) {
        guard let first = text.first else { return }
        let named: [Character: String] = [
            "-": "a sequence", "[": "a flow sequence", "{": "a flow mapping", "&": "an anchor", "*": "an alias",
            "!": "a tag", "|": "a block scalar", ">": "a block scalar", "?": "a complex key", "%": "a directive",
            "@": "a reserved indicator", "`": "a reserved indicator",
        ]
        if first == "-" && text.count > 1 && text.dropFirst().first != " " { return }  // a plain "-x"
        if let what = named[first] {
            throw Problem(
                file: file, line: line, message: "\(what) is not supported in this file (only mappings of scalars)")
        }
    }

    /// A quoted scalar at the start of `text`: its value and where it ends.
    private static func quoted(_ text: Substring, file: String, line: Int) throws(Problem) -> (String, String.Index) {
        guard let quote = text.first else { throw Problem(file: file, line: line, message: "a quoted value is empty") }
        var value = ""
        var index = text.index(after: text.startIndex)
        while index < text.endIndex {
            let c = text[index]
            if c == quote {
                let next = text.index(after: index)
                if quote == "'", next < text.endIndex, text[next] == "'" {
                    value.append("'")
                    index = text.index(after: next)
                    continue
                }
                return (value, next)
            }
            if quote == "\"" && c == "\\" {
                let next = text.index(after: index)
                guard next < text.endIndex else { break }
                switch text[next] {
                case "\\": value.append("\\")
                case "\"": value.append("\"")
                case "/": value.append("/")
                case "n": value.append("\n")
                case "t": value.append("\t")
                default:
                    throw Problem(file: file, line: line, message: "the escape \\\(text[next]) is not supported here")
                }
                index = text.index(after: next)
                continue
            }
            value.append(c)
            index = text.index(after: index)
        }
        throw Problem(file: file, line: line, message: "a quoted value is not closed on its line")
    }

    /// The line without its comment (`#` at the start or after a space, outside quotes).
    private static func stripComment(_ text: Substring, file: String, line: Int) throws(Problem) -> Substring {
        var quote: Character?
        var previous: Character = " "
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if let open = quote {
                if c == open { quote = nil }
            } else if c == "\"" || c == "'" {
                if previous == " " || previous == ":" { quote = c }
            } else if c == "#" && previous == " " {
                return text[..<index]
            }
            previous = c
            index = text.index(after: index)
        }
        return text
    }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return String(slice)
    }
}
