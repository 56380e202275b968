/// A path inside the root filesystem, as components of raw bytes, cleaned lexically: empty and `.`
/// components dropped, `..` confined at the root, a leading `/` ignored. It is never joined onto a
/// host path; it is resolved from the root's directory fd.
public struct EntryPath: Hashable, Sendable, CustomStringConvertible {
    public private(set) var components: [[UInt8]]

    public init(components: [[UInt8]]) {
        self.components = components
    }

    /// Cleans `raw`; `escaped` tells whether a `..` tried to climb above the root.
    public init(cleaning raw: [UInt8]) {
        var parts: [[UInt8]] = []
        for piece in raw.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if piece.count == 1 && piece.first == UInt8(ascii: ".") { continue }
            if piece.count == 2 && piece.allSatisfy({ $0 == UInt8(ascii: ".") }) {
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(Array(piece))
        }
        components = parts
    }

    public var isRoot: Bool { components.isEmpty }
    public var name: [UInt8] { components.last ?? [] }
    public var parent: EntryPath { EntryPath(components: Array(components.dropLast())) }

    public func appending(_ name: [UInt8]) -> EntryPath {
        EntryPath(components: components + [name])
    }

    /// `a/b/c` as bytes (empty for the root): the key of this path in per-layer sets.
    public var key: [UInt8] {
        var out: [UInt8] = []
        for (i, c) in components.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "/")) }
            out += c
        }
        return out
    }

    public var description: String { "/" + String(decoding: key, as: UTF8.self) }
}

/// A path's bytes as a set or dictionary key, hashed in one call instead of byte by byte (the
/// per-layer sets see every entry, so this is on the hot path).
struct PathKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
