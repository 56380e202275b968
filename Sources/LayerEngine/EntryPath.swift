import OCIImage

private let slash = UInt8(ascii: "/")
private let dot = UInt8(ascii: ".")

/// A path inside the root filesystem as raw bytes, cleaned lexically: empty and `.` components
/// dropped, `..` confined at the root, a leading `/` ignored. It is never joined onto a host path;
/// it is resolved from the root's directory fd.
///
/// Stored flat (`a/b/c`, the form the per-layer sets use as keys) with the offset of the last
/// component, so that the name, the parent and the ancestors are slices: an entry costs no
/// allocation beyond its path bytes, and none at all when the tar already holds a clean path.
package struct EntryPath: Hashable, Sendable, CustomStringConvertible {
    /// The cleaned path, `a/b/c`: no leading, trailing or doubled `/`, no `.` or `..` component;
    /// empty for the root.
    package let key: [UInt8]
    /// Where the last component starts in `key`.
    private let nameStart: Int

    package static let root = EntryPath(clean: [])

    /// `clean` must already be in the cleaned form.
    private init(clean: [UInt8]) {
        key = clean
        nameStart = clean.lastIndex(of: slash).map { $0 + 1 } ?? 0
    }

    package init(components: [[UInt8]]) {
        self.init(cleaning: Array(components.joined(separator: [slash])))
    }

    /// Cleans `raw`.
    package init(cleaning raw: [UInt8]) {
        if Self.isClean(raw) {
            self.init(clean: raw)
            return
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        // Where each kept component starts in `out`, for `..` to drop the last one.
        var starts: [Int] = []
        for piece in raw.split(separator: slash, omittingEmptySubsequences: true) {
            if piece.count == 1 && piece.first == dot { continue }
            if piece.count == 2 && piece.first == dot && piece.last == dot {
                if let start = starts.popLast() { out.removeSubrange(max(start - 1, 0)...) }
                continue
            }
            if !out.isEmpty { out.append(slash) }
            starts.append(out.count)
            out.append(contentsOf: piece)
        }
        self.init(clean: out)
    }

    /// Whether `raw` is already clean: the common case, checked in one pass without allocating.
    package static func isClean(_ raw: [UInt8]) -> Bool {
        if raw.isEmpty { return true }
        return raw.withUnsafeBufferPointer { bytes in
            var start = 0
            for i in 0...bytes.count {
                guard i == bytes.count || bytes[i] == slash else { continue }
                let length = i - start
                if length == 0 { return false }  // leading, trailing or doubled slash
                if bytes[start] == dot && (length == 1 || (length == 2 && bytes[start + 1] == dot)) { return false }
                start = i + 1
            }
            return true
        }
    }

    package var isRoot: Bool { key.isEmpty }
    /// The last component (empty for the root).
    package var name: ArraySlice<UInt8> { key[nameStart...] }
    /// The parent's key, as a slice of this one.
    package var parentKey: ArraySlice<UInt8> { key[..<max(nameStart - 1, 0)] }
    package var parent: EntryPath { EntryPath(clean: Array(parentKey)) }
    /// The components, for the userspace resolver's walk.
    package var components: [ArraySlice<UInt8>] { key.split(separator: slash) }

    /// This path with one more component; `name` must be one component (no `/`, not `.`/`..`).
    package func appending(_ name: some Collection<UInt8>) -> EntryPath {
        precondition(!name.isEmpty && !name.contains(slash), "appending a name that is not one component")
        if isRoot { return EntryPath(clean: Array(name)) }
        var out = key
        out.reserveCapacity(key.count + 1 + name.count)
        out.append(slash)
        out.append(contentsOf: name)
        return EntryPath(clean: out)
    }

    /// The keys of the ancestors, nearest first (the root excluded), as slices of this key.
    package func forEachAncestorKey(_ body: (ArraySlice<UInt8>) -> Bool) {
        var i = nameStart - 1
        while i > 0 {
            if key[i] == slash {
                guard body(key[..<i]) else { return }
            }
            i -= 1
        }
    }

    package static func == (a: EntryPath, b: EntryPath) -> Bool { a.key == b.key }
    package func hash(into hasher: inout Hasher) { key.withUnsafeBytes { hasher.combine(bytes: $0) } }

    package var description: String { "/" + DisplayText.escaping(key) }
}

/// A path's bytes as a set or dictionary key, hashed in one call instead of byte by byte (the
/// per-layer sets see every entry, so this is on the hot path). It holds an array, one word: the
/// per-layer sets hold a key for every entry of a layer.
package struct PathKey: Hashable, Sendable {
    package let bytes: [UInt8]

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
