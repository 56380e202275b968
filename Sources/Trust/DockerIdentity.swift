import OCIImage

/// A docker image name as signatures and policy scopes write it: `HOST/REPO`, with a tag or a
/// digest or neither, normalised as docker normalises it (a first component without a dot, a
/// colon or `localhost` is a repository of `docker.io`, and a one-component repository there is in
/// `library/`).
package struct DockerIdentity: Sendable, Equatable, CustomStringConvertible {
    /// `HOST/REPOSITORY`.
    package let name: String
    package let tag: String?
    package let digest: String?

    package init(name: String, tag: String?, digest: String?) {
        self.name = name
        self.tag = tag
        self.digest = digest
    }

    /// `name[:tag][@digest]`.
    package var description: String {
        name + (tag.map { ":\($0)" } ?? "") + (digest.map { "@\($0)" } ?? "")
    }

    /// Neither a tag nor a digest.
    package var isNameOnly: Bool { tag == nil && digest == nil }

    package var host: String { String(name.prefix(while: { $0 != "/" })) }

    /// The repository path without the host (`library/busybox`).
    package var path: String { String(name.drop(while: { $0 != "/" }).dropFirst()) }

    /// Reads `text`, normalising it; `nil` when it is not a docker reference. With `normalize`
    /// false the text must already be in its normalised form (policy scopes and registries.d
    /// namespaces must name the host).
    package static func parse(_ text: String, normalize: Bool = true) -> DockerIdentity? {
        guard !text.isEmpty, text.utf8.count <= 4096 else { return nil }
        var rest = Substring(text)
        var digest: String?
        var tag: String?
        if let at = rest.firstIndex(of: "@") {
            let value = String(rest[rest.index(after: at)...])
            guard (try? Digest(parsing: value)) != nil else { return nil }
            digest = value
            rest = rest[..<at]
        }
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let value = rest[rest.index(after: colon)...]
            guard isTag(value) else { return nil }
            tag = String(value)
            rest = rest[..<colon]
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let first = components.first, !first.isEmpty else { return nil }
        let hasHost = components.count > 1 && (first.contains(".") || first.contains(":") || first == "localhost")
        if !hasHost {
            guard normalize else { return nil }
            if components.count == 1 { components.insert("library", at: 0) }
            components.insert("docker.io", at: 0)
        } else if first == "index.docker.io" {
            components[0] = "docker.io"
        }
        guard isHost(components[0]), components.dropFirst().allSatisfy(isPathComponent) else { return nil }
        return DockerIdentity(name: components.joined(separator: "/"), tag: tag, digest: digest)
    }

    /// A host name with an optional port.
    static func isHost(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard let host = parts.first, !host.isEmpty, parts.count <= 2 else { return false }
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit) else { return false }
        }
        return host.allSatisfy { $0.isASCIILetterOrDigit || $0 == "." || $0 == "-" }
    }

    /// A repository path component: lowercase letters and digits, separated by `.`, `_`, `__`
    /// or runs of `-`.
    static func isPathComponent(_ text: String) -> Bool {
        guard let first = text.first, let last = text.last else { return false }
        guard first.isASCIILowercaseOrDigit, last.isASCIILowercaseOrDigit else { return false }
        return text.allSatisfy { $0.isASCIILowercaseOrDigit || $0 == "." || $0 == "_" || $0 == "-" }
    }

    static func isTag(_ text: Substring) -> Bool {
        guard let first = text.first, text.count <= 128, first.isASCIILetterOrDigit || first == "_" else {
            return false
        }
        return text.allSatisfy { $0.isASCIILetterOrDigit || $0 == "_" || $0 == "." || $0 == "-" }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILetterOrDigit: Bool { isASCII && (isLetter || isNumber) }
    var isASCIILowercaseOrDigit: Bool { isASCII && (isLowercase || isNumber) }
}
