import Glibc
import UnpackSystem

/// Which image of an OCI image layout a user asked for.
///
/// Accepted forms: `oci:PATH[:REF]`, `oci:PATH@sha256:HEX`, and the same without `oci:`.
/// `REF` is a tag (`org.opencontainers.image.ref.name` of an `index.json` entry). A colon inside
/// PATH is kept when the whole string names an existing directory and the part before the last
/// colon does not.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// Which entry of the layout's `index.json` the reference selects.
    public enum Selector: Hashable, Sendable {
        /// No tag or digest: the layout's only entry.
        case only
        case tag(String)
        case digest(Digest)
    }

    /// The directory of the OCI image layout.
    public var layoutPath: String
    /// The tag or digest that picks the image, or `.only`.
    public var selector: Selector

    /// A reference to the image that `selector` picks in the layout at `layoutPath`.
    public init(layoutPath: String, selector: Selector) {
        self.layoutPath = layoutPath
        self.selector = selector
    }

    /// Parses one of the accepted forms, checking the file system to keep a colon that belongs to the path.
    public init(parsing string: String) throws(UnpackError) {
        try self.init(parsing: string, isDirectory: Self.isDirectory)
    }

    /// Parses with an injectable directory check (tests).
    public init(parsing string: String, isDirectory: (String) -> Bool) throws(UnpackError) {
        // UTF-8 bytes, not Characters: `:` and `@` are ASCII, which UTF-8 never uses inside a longer
        // scalar, so cutting at them is exact, and a path that begins with a combining mark cannot
        // merge with the colon before it into one Character. (Bytes also spare the Swift runtime the
        // generic Unicode-view code that cost a few hundred microseconds at every start.)
        let bytes = Array(string.utf8)
        let rest = bytes.starts(with: "oci:".utf8) ? bytes[4...] : bytes[...]
        func text(_ part: ArraySlice<UInt8>) -> String { String(decoding: part, as: UTF8.self) }
        guard !rest.isEmpty else {
            throw UnpackError(
                .invalidArgument, "empty image reference \"\(string)\": expected oci:PATH[:TAG] or PATH@sha256:HEX")
        }
        if let at = rest.lastIndex(of: UInt8(ascii: "@")), rest[(at + 1)...].contains(UInt8(ascii: ":")) {
            let digest: Digest
            do {
                digest = try Digest(parsing: text(rest[(at + 1)...]))
            } catch {
                throw UnpackError(
                    .invalidArgument,
                    "invalid digest in image reference \"\(string.truncatedForMessage)\": \(error.message)")
            }
            guard at > rest.startIndex else {
                throw UnpackError(
                    .invalidArgument, "image reference \"\(string.truncatedForMessage)\" names no layout directory")
            }
            self.init(layoutPath: text(rest[..<at]), selector: .digest(digest))
            return
        }
        let whole = text(rest)
        if let colon = rest.lastIndex(of: UInt8(ascii: ":")) {
            let pathBytes = rest[..<colon]
            let tagBytes = rest[(colon + 1)...]
            let path = text(pathBytes)
            let tagLooksValid = !tagBytes.isEmpty && !tagBytes.contains(UInt8(ascii: "/")) && !pathBytes.isEmpty
            if tagLooksValid && !(isDirectory(whole) && !isDirectory(path)) {
                self.init(layoutPath: path, selector: .tag(text(tagBytes)))
                return
            }
            if tagBytes.isEmpty {
                throw UnpackError(
                    .invalidArgument, "image reference \"\(string.truncatedForMessage)\" has an empty tag after ':'")
            }
        }
        self.init(layoutPath: whole, selector: .only)
    }

    /// The reference in its canonical `oci:` form: `oci:PATH`, `oci:PATH:TAG` or `oci:PATH@DIGEST`.
    public var description: String {
        switch selector {
        case .only: "oci:\(layoutPath)"
        case .tag(let tag): "oci:\(layoutPath):\(tag)"
        case .digest(let digest): "oci:\(layoutPath)@\(digest)"
        }
    }

    private static func isDirectory(_ path: String) -> Bool {
        (try? fileStatus(path).get())?.isDirectory == true
    }
}
