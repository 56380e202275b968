/// Text from an image (entry names, link targets, tags, annotations) made safe to print on one
/// line of a terminal: control characters (C0, DEL, C1), Unicode bidirectional overrides and, for
/// raw bytes, invalid UTF-8 and the backslash itself (so that an escape in a name is never
/// ambiguous) are written as escapes, so a name cannot forge extra lines of output or send escape
/// sequences to the terminal.
public enum DisplayText {
    /// Raw bytes (a tar name): valid UTF-8 is kept but for the characters above; each byte of an
    /// invalid sequence becomes `\xNN`.
    public static func escaping(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { escaping(buffer: $0) }
    }

    /// Raw bytes from part of a buffer, escaped the same way as a whole `[UInt8]`.
    public static func escaping(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.withUnsafeBufferPointer { escaping(buffer: $0) }
    }

    private static func escaping(buffer: UnsafeBufferPointer<UInt8>) -> String {
        // The common case, checked without allocating: printable ASCII only.
        var plain = true
        for byte in buffer where byte < 0x20 || byte >= 0x7f || byte == 0x5c {
            plain = false
            break
        }
        if plain { return String(decoding: buffer, as: UTF8.self) }
        let b = Array(buffer)
        var out = ""
        var i = 0
        while i < b.count {
            if let (scalar, length) = scalar(in: b, at: i) {
                append(scalar, to: &out, backslash: true)
                i += length
            } else {
                out += "\\x" + hex(b[i])
                i += 1
            }
        }
        return out
    }

    /// The well-formed UTF-8 scalar at `i` (no overlong forms, surrogates or values past
    /// U+10FFFF) and its length, or nil.
    private static func scalar(in b: [UInt8], at i: Int) -> (Unicode.Scalar, Int)? {
        let lead = b[i]
        let length: Int
        var value: UInt32
        switch lead {
        case 0x00...0x7f: return (Unicode.Scalar(lead), 1)
        case 0xc2...0xdf: (length, value) = (2, UInt32(lead & 0x1f))
        case 0xe0...0xef: (length, value) = (3, UInt32(lead & 0x0f))
        case 0xf0...0xf4: (length, value) = (4, UInt32(lead & 0x07))
        default: return nil
        }
        guard i + length <= b.count else { return nil }
        for k in 1..<length {
            let byte = b[i + k]
            guard byte & 0xc0 == 0x80 else { return nil }
            value = value << 6 | UInt32(byte & 0x3f)
        }
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return nil }
        return (scalar, length)
    }

    /// A string (a whole message, in which names were already escaped): its control and
    /// bidirectional characters escaped. A backslash is kept, so escaped names are not escaped twice.
    public static func escaping(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { needsEscape($0, backslash: false) }) else { return text }
        var out = ""
        for scalar in text.unicodeScalars { append(scalar, to: &out, backslash: false) }
        return out
    }

    static func needsEscape(_ scalar: Unicode.Scalar, backslash: Bool) -> Bool {
        let v = scalar.value
        return v < 0x20 || (backslash && v == 0x5c) || (0x7f...0x9f).contains(v) || (0x202a...0x202e).contains(v)
            || (0x2066...0x2069).contains(v)
    }

    private static func append(_ scalar: Unicode.Scalar, to out: inout String, backslash: Bool) {
        guard needsEscape(scalar, backslash: backslash) else {
            out.unicodeScalars.append(scalar)
            return
        }
        switch scalar {
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\\": out += "\\\\"
        case "\r": out += "\\r"
        default:
            out +=
                scalar.value < 0x100 ? "\\x" + hex(UInt8(scalar.value)) : "\\u{" + String(scalar.value, radix: 16) + "}"
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xf)]], as: UTF8.self)
    }
}
