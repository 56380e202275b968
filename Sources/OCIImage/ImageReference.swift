import Glibc

/// Which image of an OCI image layout a user asked for.
///
/// Accepted forms: `oci:PATH[:REF]`, `oci:PATH@sha256:HEX`, and the same without `oci:`.
/// `REF` is a tag (`org.opencontainers.image.ref.name` of an `index.json` entry). A colon inside
/// PATH is kept when the whole string names an existing directory and the part before the last
/// colon does not.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public enum Selector: Hashable, Sendable {
        /// No tag or digest: the layout's only entry.
        case only
        case tag(String)
        case digest(Digest)
    }

    public var layoutPath: String
    public var selector: Selector

    public init(layoutPath: String, selector: Selector) {
        self.layoutPath = layoutPath
        self.selector = selector
    }

    public init(parsing string: String) throws(UnpackError) {
        try self.init(parsing: string, isDirectory: Self.isDirectory)
    }

    /// Parses with an injectable directory check (tests).
    public init(parsing string: String, isDirectory: (String) -> Bool) throws(UnpackError) {
        // Unicode scalars, not Characters: a path may begin with a combining mark, which would
        // merge with the colon before it into one Character and hide it.
        var rest = Substring.UnicodeScalarView(string.unicodeScalars)
        if rest.starts(with: "oci:".unicodeScalars) { rest = rest.dropFirst(4) }
        guard !rest.isEmpty else {
            throw UnpackError(
                .invalidArgument, "empty image reference \"\(string)\": expected oci:PATH[:TAG] or PATH@sha256:HEX")
        }
        if let at = rest.lastIndex(of: "@"), rest[rest.index(after: at)...].contains(":") {
            let digestText = String(String.UnicodeScalarView(rest[rest.index(after: at)...]))
            let digest: Digest
            do {
                digest = try Digest(parsing: digestText)
            } catch {
                throw UnpackError(
                    .invalidArgument,
                    "invalid digest in image reference \"\(string.truncatedForMessage)\": \(error.message)")
            }
            let path = String(String.UnicodeScalarView(rest[..<at]))
            guard !path.isEmpty else {
                throw UnpackError(
                    .invalidArgument, "image reference \"\(string.truncatedForMessage)\" names no layout directory")
            }
            self.init(layoutPath: path, selector: .digest(digest))
            return
        }
        let whole = String(String.UnicodeScalarView(rest))
        if let colon = rest.lastIndex(of: ":") {
            let path = String(String.UnicodeScalarView(rest[..<colon]))
            let tag = String(String.UnicodeScalarView(rest[rest.index(after: colon)...]))
            let tagLooksValid = !tag.isEmpty && !tag.contains("/") && !path.isEmpty
            if tagLooksValid && !(isDirectory(whole) && !isDirectory(path)) {
                self.init(layoutPath: path, selector: .tag(tag))
                return
            }
            if tag.isEmpty {
                throw UnpackError(
                    .invalidArgument, "image reference \"\(string.truncatedForMessage)\" has an empty tag after ':'")
            }
        }
        self.init(layoutPath: whole, selector: .only)
    }

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
