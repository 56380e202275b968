import Glibc

/// Which image of a local store a user asked for.
///
/// Accepted forms (skopeo's transport names): `oci:PATH[:REF]`, `oci:PATH@sha256:HEX`, and the same
/// without `oci:` (an OCI image layout directory); `oci-archive:PATH[:REF]` (a tar of a layout);
/// `docker-archive:PATH[:REF]` (`docker save` output, REF a `RepoTags` entry such as
/// `busybox:latest`). `REF` is a tag (`org.opencontainers.image.ref.name` of an `index.json`
/// entry). A colon inside PATH is kept when the whole string names an existing directory (a file,
/// for archives) and the part before the last colon does not; for a docker-archive, PATH ends at
/// the first colon before which an existing file is named.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// Which entry of the layout's `index.json` the reference selects.
    public enum Selector: Hashable, Sendable {
        /// No tag or digest: the layout's only entry.
        case only
        case tag(String)
        case digest(Digest)
    }

    /// Where the images are stored.
    public enum Transport: String, Hashable, Sendable {
        /// An OCI image layout directory (`oci:`).
        case layout = "oci"
        /// A tar of an OCI image layout (`oci-archive:`).
        case ociArchive = "oci-archive"
        /// `docker save` output (`docker-archive:`).
        case dockerArchive = "docker-archive"
        /// A registry (`docker://`): `layoutPath` is `HOST/REPOSITORY`.
        case registry = "docker"
    }

    /// The kind of store.
    public var transport: Transport = .layout
    /// The directory of the OCI image layout, or the archive file.
    public var layoutPath: String
    /// The tag or digest that picks the image, or `.only`.
    public var selector: Selector
    /// For a `docker://` reference that names no registry (`docker://alpine`, `docker://team/app`):
    /// the name as written, without tag or digest. With registries.conf it is resolved as podman
    /// resolves short names (``RegistriesConf/resolveShortName(_:)``); without, docker's rule
    /// (`docker.io`, `library/` for one component) stands in ``layoutPath``.
    public var shortName: String?

    /// A reference to the image that `selector` picks in the layout at `layoutPath`.
    public init(layoutPath: String, selector: Selector, transport: Transport = .layout) {
        self.layoutPath = layoutPath
        self.selector = selector
        self.transport = transport
    }

    /// Parses one of the accepted forms. A colon may belong to a path (`/data/img:2024`) or start a
    /// tag: `isDirectory` says whether a layout directory exists at a path, `isFile` whether an
    /// archive does, so that the model itself touches no file system (``Unpacker`` asks the real
    /// one: `ImageReference(parsing:)` in the OCIUnpack library).
    public init(
        parsing string: String, isDirectory: (String) -> Bool, isFile: (String) -> Bool = { _ in false }
    ) throws(UnpackError) {
        // UTF-8 bytes, not Characters: `:` and `@` are ASCII, which UTF-8 never uses inside a longer
        // scalar, so cutting at them is exact, and a path that begins with a combining mark cannot
        // merge with the colon before it into one Character. (Bytes also spare the Swift runtime the
        // generic Unicode-view code that cost a few hundred microseconds at every start.)
        if string.hasPrefix("docker://") {
            self = try Self.registry(String(string.dropFirst("docker://".count)), whole: string)
            return
        }
        let bytes = Array(string.utf8)
        var transport = Transport.layout
        var rest = bytes[...]
        var exists = isDirectory
        for candidate in [Transport.ociArchive, .dockerArchive, .layout]
        where bytes.starts(with: (candidate.rawValue + ":").utf8) {
            transport = candidate
            rest = bytes[(candidate.rawValue.utf8.count + 1)...]
            if candidate != .layout { exists = isFile }
            break
        }
        // docker-archive:PATH:@N, skopeo's form for the archive's N-th image (from 0).
        if transport == .dockerArchive, let at = rest.lastIndex(of: UInt8(ascii: "@")), at > rest.startIndex,
            rest[rest.index(before: at)] == UInt8(ascii: ":"), at + 1 < rest.endIndex,
            rest[(at + 1)...].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            !isFile(String(decoding: rest, as: UTF8.self))
        {
            let path = String(decoding: rest[..<rest.index(before: at)], as: UTF8.self)
            self.init(
                layoutPath: path, selector: .tag(String(decoding: rest[at...], as: UTF8.self)), transport: transport)
            return
        }
        if transport == .dockerArchive,
            !rest.contains(UInt8(ascii: "@")) || isFile(String(decoding: rest, as: UTF8.self))
        {
            // REF is name:tag: PATH ends at the first colon before which a file exists.
            let whole = String(decoding: rest, as: UTF8.self)
            if !whole.isEmpty && !isFile(whole) {
                for colon in rest.indices where rest[colon] == UInt8(ascii: ":") && colon > rest.startIndex {
                    let path = String(decoding: rest[..<colon], as: UTF8.self)
                    let ref = String(decoding: rest[(colon + 1)...], as: UTF8.self)
                    if isFile(path) && !ref.isEmpty {
                        self.init(layoutPath: path, selector: .tag(ref), transport: transport)
                        return
                    }
                }
            }
            if !whole.isEmpty && !whole.contains(":") || isFile(whole) {
                self.init(layoutPath: whole, selector: .only, transport: transport)
                return
            }
        }
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
            self.init(layoutPath: text(rest[..<at]), selector: .digest(digest), transport: transport)
            return
        }
        let whole = text(rest)
        if let colon = rest.lastIndex(of: UInt8(ascii: ":")) {
            let pathBytes = rest[..<colon]
            let tagBytes = rest[(colon + 1)...]
            let path = text(pathBytes)
            let tagLooksValid = !tagBytes.isEmpty && !tagBytes.contains(UInt8(ascii: "/")) && !pathBytes.isEmpty
            if tagLooksValid && !(exists(whole) && !exists(path)) {
                self.init(layoutPath: path, selector: .tag(text(tagBytes)), transport: transport)
                return
            }
            if tagBytes.isEmpty {
                throw UnpackError(
                    .invalidArgument, "image reference \"\(string.truncatedForMessage)\" has an empty tag after ':'")
            }
        }
        self.init(layoutPath: whole, selector: .only, transport: transport)
    }

    /// The reference in its canonical form: `TRANSPORT:PATH`, `TRANSPORT:PATH:TAG` or
    /// `TRANSPORT:PATH@DIGEST` (`oci:`, `oci-archive:`, `docker-archive:`), or
    /// `docker://HOST/REPO:TAG` and `docker://HOST/REPO@DIGEST`.
    public var description: String {
        let prefix = transport == .registry ? "docker://" : transport.rawValue + ":"
        switch selector {
        case .only: return "\(prefix)\(layoutPath)"
        case .tag(let tag): return "\(prefix)\(layoutPath):\(tag)"
        case .digest(let digest): return "\(prefix)\(layoutPath)@\(digest)"
        }
    }

    /// The registry host of a `docker://` reference (`docker.io` when none was named).
    public var registryHost: String {
        String(layoutPath.prefix { $0 != "/" })
    }

    /// The repository of a `docker://` reference (`library/busybox`).
    public var repository: String {
        String(layoutPath.drop { $0 != "/" }.dropFirst())
    }

    /// `[HOST[:PORT]/]REPO[:TAG|@DIGEST]` as docker reads it: the first component is a host when it
    /// has a dot or a colon or is `localhost`; otherwise the host is `docker.io`, where a name of
    /// one component is in `library/`. The tag defaults to `latest`.
    private static func registry(_ text: String, whole: String) throws(UnpackError) -> ImageReference {
        func invalid(_ why: String) -> UnpackError {
            UnpackError(.invalidArgument, "invalid registry reference \"\(whole.truncatedForMessage)\": \(why)")
        }
        var name = text
        var selector = Selector.tag("latest")
        if let at = text.firstIndex(of: "@") {
            name = String(text[..<at])
            do {
                selector = .digest(try Digest(parsing: String(text[text.index(after: at)...])))
            } catch {
                throw invalid(error.message)
            }
        } else if let colon = text.lastIndex(of: ":"), !text[colon...].contains("/") {
            name = String(text[..<colon])
            let tag = String(text[text.index(after: colon)...])
            let tagCharacters = tag.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a)
                    || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
            }
            guard !tag.isEmpty, tag.utf8.count <= 128, tagCharacters, tag.first != ".", tag.first != "-" else {
                throw invalid("tag \"\(tag.truncatedForMessage)\" is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
            }
            selector = .tag(tag)
        }
        var parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !name.isEmpty, !parts.contains(where: \.isEmpty) else { throw invalid("no repository") }
        var host = "docker.io"
        if parts.count > 1, parts[0].contains(".") || parts[0].contains(":") || parts[0] == "localhost" {
            host = parts.removeFirst()
        }
        let short = host == "docker.io" && !name.hasPrefix("docker.io/") ? name : nil
        if host == "docker.io" && parts.count == 1 { parts.insert("library", at: 0) }
        let repository = parts.joined(separator: "/")
        let repositoryCharacters = repository.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == UInt8(ascii: "_")
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "/")
        }
        guard repositoryCharacters else {
            throw invalid(
                "repository \"\(repository.truncatedForMessage)\" may hold only a-z, 0-9, '.', '_', '-' and '/'")
        }
        let hostCharacters = host.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a)
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ":")
                || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]")
        }
        guard hostCharacters else { throw invalid("host \"\(host.truncatedForMessage)\" is not a host name") }
        var reference = ImageReference(layoutPath: host + "/" + repository, selector: selector, transport: .registry)
        reference.shortName = short
        return reference
    }

}
