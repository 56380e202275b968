import FoundationEssentials
import Glibc

/// `registries.conf` (containers-registries.conf(5), version 2, and the deprecated version 1
/// lists), with its drop-ins (containers-registries.conf.d(5)), as podman, skopeo and CRI-O read
/// it: which registry a reference's namespace lives at (`location`), its mirrors (a pull-through
/// cache, a node-local mirror), and whether it may be reached without TLS (`insecure`) or at all
/// (`blocked`).
///
/// A mirror is trusted for nothing: every byte it sends is checked against the digests the
/// manifest names, as the registry's are.
public struct RegistriesConf: Sendable, Equatable {
    /// `pull-from-mirror` of a mirror: which references it serves.
    public enum PullFromMirror: String, Sendable, Equatable {
        /// Tags and digests (the default).
        case all
        /// Only references by digest (a tag could name something else there).
        case digestOnly = "digest-only"
        /// Only references by tag.
        case tagOnly = "tag-only"
    }

    /// One `[[registry.mirror]]`.
    public struct Mirror: Sendable, Equatable {
        /// `host[:port][/namespace…]`: where the prefix's namespace is mirrored.
        public var location: String
        /// Plain HTTP and unverified certificates allowed.
        public var insecure: Bool
        /// Which references it serves.
        public var pullFromMirror: PullFromMirror
    }

    /// One `[[registry]]`.
    public struct Registry: Sendable, Equatable {
        /// What reference names it applies to (the longest matching prefix wins); `*.example.com`
        /// matches every subdomain.
        public var prefix: String
        /// Where the namespace really is; the prefix itself when not set.
        public var location: String
        /// Plain HTTP and unverified certificates allowed.
        public var insecure: Bool
        /// Pulls of matching names are refused.
        public var blocked: Bool
        /// Mirrors serve only references by digest.
        public var mirrorByDigestOnly: Bool
        /// Tried in order before the location.
        public var mirrors: [Mirror]
        /// The file and line it was defined at, for messages.
        public var origin: String
    }

    /// Where a reference's manifest and blobs are asked for, in order.
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        /// `host[:port]`.
        public var host: String
        /// The repository there.
        public var repository: String
        /// Plain HTTP and unverified certificates allowed.
        public var insecure: Bool
        /// A mirror (else the primary location).
        public var isMirror: Bool
        /// Where it was configured (a registries.conf table, a hosts.toml entry), for messages;
        /// nil for a registry reached as its name says.
        public var configuredIn: String?

        // What containerd's hosts.toml sets (registries.conf's endpoints keep the defaults).

        /// `http` or `https` as configured; nil: https, or plain http where allowed (negotiated).
        public var scheme: String?
        /// Where the distribution API is on the host: `/v2`, or what `override_path` names.
        public var apiPath: String = "/v2"
        /// `?ns=` sent with every request: the registry the reference names, for a host that
        /// serves several (a node-local mirror).
        public var namespace: String?
        /// Asked for manifests by tag (containerd's `resolve` capability).
        public var resolves = true
        /// Asked for manifests by digest and blobs (`pull`).
        public var pulls = true
        /// `skip_verify`: the server's certificate is not checked.
        public var skipVerify = false
        /// `ca`: CA certificate files trusted for this host, beside the system's.
        public var caFiles: [String] = []
        /// `client`: certificate and key files for TLS client authentication (the key nil when
        /// the certificate's file holds it).
        public var clientCertificates: [ClientCertificate] = []
        /// `[header]`: sent with every request to this host (never to another a redirect names).
        public var headers: [Header] = []
        /// `dial_timeout`, in seconds.
        public var connectTimeout: Double?

        /// A TLS client certificate.
        public struct ClientCertificate: Sendable, Equatable {
            /// The PEM certificate file.
            public var certificate: String
            /// The PEM key file; nil when the certificate's file holds the key.
            public var key: String?

            /// A certificate file, and its key's (nil: the certificate's file holds the key).
            public init(certificate: String, key: String?) {
                self.certificate = certificate
                self.key = key
            }
        }

        /// A header line.
        public struct Header: Sendable, Equatable {
            /// The header's name, as written.
            public var name: String
            /// Its value.
            public var value: String

            /// `name: value`.
            public init(name: String, value: String) {
                self.name = name
                self.value = value
            }
        }

        /// `HOST/REPOSITORY`, or the URL of a configured API root (`http://HOST/v2/REPOSITORY`).
        public var description: String {
            guard let scheme else { return "\(host)/\(repository)" }
            return "\(scheme)://\(host)\(apiPath)/\(repository)"
        }
    }

    /// The `[[registry]]` tables, by prefix (a later file's table replaces an earlier one's).
    public var registries: [Registry] = []
    /// `unqualified-search-registries`.
    public var unqualifiedSearchRegistries: [String] = []
    /// `short-name-mode`: `enforcing`, `permissive` (the default) or `disabled`.
    public var shortNameMode: String?
    /// `[aliases]`: short name → fully qualified name.
    public var aliases: [String: String] = [:]
    /// The files read, in order.
    public var files: [String] = []
    /// Where each prefix's table is in ``registries``.
    private var position: [String: Int] = [:]

    /// Nothing configured: every reference is pulled from where it names.
    public init() {}

    // MARK: - Reading

    /// One file's settings merged over these, as a drop-in is: set fields replace, `[[registry]]`
    /// tables replace those of the same prefix, aliases are added (an empty value removes one).
    public mutating func merge(text: String, file: String) throws(UnpackError) {
        let table: TOMLTable
        do throws(TOML.Problem) {
            table = try TOML.parse(text, file: file)
        } catch {
            throw UnpackError(.invalidArgument, "registries.conf \(error)", context: .init(path: file))
        }
        try merge(table, file: file)
        files.append(file)
    }

    /// The file at `path` merged (``merge(text:file:)``).
    public mutating func merge(file path: String) throws(UnpackError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UnpackError(.notFound, "registries.conf \(path) cannot be read", context: .init(path: path))
        }
        guard let text = String(validating: [UInt8](data), as: UTF8.self) else {
            throw UnpackError(.invalidArgument, "registries.conf \(path) is not UTF-8", context: .init(path: path))
        }
        try merge(text: text, file: path)
    }

    /// The configuration podman would read: `explicit` (`--registries-conf`) or
    /// `$CONTAINERS_REGISTRIES_CONF` alone when given; else `$HOME/.config/containers/registries.conf`
    /// when it exists, or `/etc/containers/registries.conf`, then the drop-ins of
    /// `/etc/containers/registries.conf.d` (only for the system file) and of
    /// `$HOME/.config/containers/registries.conf.d`, each directory's `*.conf` in name order.
    /// A missing default file is no configuration; a named one that is missing is an error.
    public static func load(explicit: String?, environment: [String: String], systemRoot: String = "")
        throws(UnpackError) -> RegistriesConf
    {
        var conf = RegistriesConf()
        if let named = explicit ?? environment["CONTAINERS_REGISTRIES_CONF"], !named.isEmpty {
            try conf.merge(file: named)
            return conf
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 }
        let userFile = home.map { "\($0)/.config/containers/registries.conf" }
        let systemFile = systemRoot + "/etc/containers/registries.conf"
        var directories: [String] = []
        if let userFile, FileManager.default.fileExists(atPath: userFile) {
            try conf.merge(file: userFile)
        } else {
            if FileManager.default.fileExists(atPath: systemFile) { try conf.merge(file: systemFile) }
            directories.append(systemRoot + "/etc/containers/registries.conf.d")
        }
        if let home { directories.append("\(home)/.config/containers/registries.conf.d") }
        for directory in directories {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
            for name in names.sorted() where name.hasSuffix(".conf") {
                let path = "\(directory)/\(name)"
                var isDirectory = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory else {
                    continue
                }
                try conf.merge(file: path)
            }
        }
        return conf
    }

    private mutating func merge(_ table: TOMLTable, file: String) throws(UnpackError) {
        func wrong(_ key: String, _ expected: String, _ value: TOML, line: Int?) -> UnpackError {
            UnpackError(
                .invalidArgument,
                "registries.conf \(file):\(line ?? 0): \(key) must be \(expected), not \(value.kind)",
                context: .init(path: file))
        }
        func string(_ t: TOMLTable, _ key: String) throws(UnpackError) -> String? {
            guard let value = t[key] else { return nil }
            guard case .string(let s) = value else { throw wrong(key, "a string", value, line: t.lines[key]) }
            return s
        }
        func bool(_ t: TOMLTable, _ key: String) throws(UnpackError) -> Bool? {
            guard let value = t[key] else { return nil }
            guard case .bool(let b) = value else { throw wrong(key, "true or false", value, line: t.lines[key]) }
            return b
        }
        func strings(_ t: TOMLTable, _ key: String) throws(UnpackError) -> [String]? {
            guard let value = t[key] else { return nil }
            guard case .array(let items) = value else {
                throw wrong(key, "an array of strings", value, line: t.lines[key])
            }
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else {
                    throw wrong(key, "an array of strings", item, line: t.lines[key])
                }
                out.append(s)
            }
            return out
        }
        func problem(_ line: Int, _ message: String) -> UnpackError {
            UnpackError(.invalidArgument, "registries.conf \(file):\(line): \(message)", context: .init(path: file))
        }

        // Version 1: [registries.search] / .insecure / .block, each with `registries = [...]`.
        if case .table(let v1)? = table["registries"] {
            if table["registry"] != nil || table["unqualified-search-registries"] != nil {
                throw problem(
                    table.lines["registries"] ?? 0,
                    "mixes the version 1 [registries.*] tables with version 2 settings")
            }
            func list(_ name: String) throws(UnpackError) -> [String] {
                guard let value = v1[name] else { return [] }
                guard case .table(let t) = value else { throw wrong("registries.\(name)", "a table", value, line: nil) }
                return try strings(t, "registries") ?? []
            }
            if v1["search"] != nil { unqualifiedSearchRegistries = try list("search") }
            for (host, insecure, blocked) in try list("insecure").map({ ($0, true, false) })
                + list("block").map({ ($0, false, true) })
            {
                var registry = self.registry(prefix: host, file: file, line: v1.line)
                registry.insecure = registry.insecure || insecure
                registry.blocked = registry.blocked || blocked
                replace(registry)
            }
            return
        }
        if let search = try strings(table, "unqualified-search-registries") { unqualifiedSearchRegistries = search }
        if let mode = try string(table, "short-name-mode") {
            guard ["", "enforcing", "permissive", "disabled"].contains(mode) else {
                throw problem(
                    table.lines["short-name-mode"] ?? 0,
                    "short-name-mode \"\(mode.truncatedForMessage)\" is not enforcing, permissive or disabled")
            }
            shortNameMode = mode.isEmpty ? nil : mode
        }
        if let value = table["aliases"] {
            guard case .table(let aliasTable) = value else {
                throw wrong("aliases", "a table", value, line: table.lines["aliases"])
            }
            for name in aliasTable.values.keys.sorted() {
                guard let target = try string(aliasTable, name) else { continue }
                if target.isEmpty { aliases[name] = nil } else { aliases[name] = target }
            }
        }
        guard let value = table["registry"] else { return }
        guard case .tables(let entries) = value.asTables ?? value else {
            throw wrong("registry", "an array of tables ([[registry]])", value, line: table.lines["registry"])
        }
        for entry in entries {
            let location = Self.trimmed(try string(entry, "location") ?? "")
            let givenPrefix = Self.trimmed(try string(entry, "prefix") ?? "")
            let prefix = givenPrefix.isEmpty ? location : givenPrefix
            for (key, value) in [("prefix", prefix), ("location", location)]
            where value.hasPrefix("http://") || value.hasPrefix("https://") {
                throw problem(
                    entry.lines[key] ?? entry.line, "\(key) \"\(value.truncatedForMessage)\" must not name a scheme")
            }
            guard !prefix.isEmpty else {
                throw problem(entry.line, "a [[registry]] needs a prefix or a location")
            }
            if prefix.hasPrefix("*.") && !location.isEmpty {
                throw problem(entry.line, "the wildcard prefix \(prefix) cannot have a location")
            }
            var registry = Registry(
                prefix: prefix, location: location.isEmpty ? prefix : location,
                insecure: try bool(entry, "insecure") ?? false, blocked: try bool(entry, "blocked") ?? false,
                mirrorByDigestOnly: try bool(entry, "mirror-by-digest-only") ?? false, mirrors: [],
                origin: "\(file):\(entry.line)")
            if let mirrors = entry["mirror"] {
                guard case .tables(let list) = mirrors.asTables ?? mirrors else {
                    throw wrong(
                        "mirror", "an array of tables ([[registry.mirror]])", mirrors, line: entry.lines["mirror"])
                }
                for m in list {
                    guard let mirrorLocation = try string(m, "location").map(Self.trimmed), !mirrorLocation.isEmpty,
                        !mirrorLocation.hasPrefix("http://"), !mirrorLocation.hasPrefix("https://")
                    else {
                        throw problem(m.line, "a [[registry.mirror]] needs a location (HOST[:PORT][/PATH], no scheme)")
                    }
                    let pull = try string(m, "pull-from-mirror") ?? ""
                    guard let mode = pull.isEmpty ? .all : PullFromMirror(rawValue: pull) else {
                        throw problem(
                            m.lines["pull-from-mirror"] ?? m.line,
                            "pull-from-mirror \"\(pull.truncatedForMessage)\" is not all, digest-only or tag-only")
                    }
                    if registry.mirrorByDigestOnly && mode != .all {
                        throw problem(
                            m.line, "pull-from-mirror cannot be combined with the registry's mirror-by-digest-only")
                    }
                    registry.mirrors.append(
                        Mirror(
                            location: mirrorLocation, insecure: try bool(m, "insecure") ?? false, pullFromMirror: mode))
                }
            }
            replace(registry)
        }
    }

    /// A prefix or location without the trailing `/` containers/image also drops.
    static func trimmed(_ text: String) -> String {
        var out = Substring(text)
        while out.hasSuffix("/") { out = out.dropLast() }
        return String(out)
    }

    private func registry(prefix: String, file: String, line: Int) -> Registry {
        position[prefix].map { registries[$0] }
            ?? Registry(
                prefix: prefix, location: prefix, insecure: false, blocked: false, mirrorByDigestOnly: false,
                mirrors: [], origin: "\(file):\(line)")
    }

    private mutating func replace(_ registry: Registry) {
        if let i = position[registry.prefix] {
            registries[i] = registry
        } else {
            position[registry.prefix] = registries.count
            registries.append(registry)
        }
    }

    // MARK: - Lookup

    /// The `[[registry]]` whose prefix matches `name` (`host/repository`, with `:tag` or
    /// `@digest`) the longest, as containers/image matches them: the whole name, or a prefix
    /// followed by `/`, `:` or `@`; a wildcard `*.example.com` matches the hosts below it.
    public func registry(matching name: String) -> Registry? {
        var best: (length: Int, registry: Registry)?
        for registry in registries {
            let length: Int
            if registry.prefix.hasPrefix("*.") {
                let host = name.prefix { $0 != "/" }.prefix { $0 != ":" }
                guard host.hasSuffix(registry.prefix.dropFirst()) else { continue }
                length = registry.prefix.count
            } else {
                guard name.hasPrefix(registry.prefix) else { continue }
                if name.count > registry.prefix.count {
                    let next = name[name.index(name.startIndex, offsetBy: registry.prefix.count)]
                    guard next == "/" || next == ":" || next == "@" else { continue }
                }
                length = registry.prefix.count
            }
            if best.map({ length > $0.length }) ?? true { best = (length, registry) }
        }
        return best?.registry
    }

    /// Where to pull `host/repository` from, in order: the mirrors that serve such a reference
    /// (by digest or by tag), then the primary location. A blocked namespace is refused.
    public func endpoints(host: String, repository: String, selector: String, byDigest: Bool) throws(UnpackError)
        -> [Endpoint]
    {
        let name = "\(host)/\(repository)"
        guard let registry = registry(matching: name + selector) else {
            return [Endpoint(host: host, repository: repository, insecure: false, isMirror: false)]
        }
        if registry.blocked {
            throw UnpackError(
                .policyRejected,
                "\(name) is blocked by registries.conf ([[registry]] prefix \"\(registry.prefix)\" at \(registry.origin))"
            )
        }
        // The part of the name below the prefix, moved under each location; a wildcard prefix
        // matches a host, and moves what follows the host under its mirrors' locations.
        let wildcard = registry.prefix.hasPrefix("*.")
        let below: Substring =
            wildcard
            ? name.drop { $0 != "/" }
            : name.count <= registry.prefix.count ? "" : name.dropFirst(registry.prefix.count)
        func endpoint(_ location: String, insecure: Bool, mirror: Bool) -> Endpoint {
            let full = wildcard && !mirror ? name : location + below
            let host = String(full.prefix { $0 != "/" })
            let path = String(full.dropFirst(host.count + 1))
            return Endpoint(
                host: host, repository: path, insecure: insecure, isMirror: mirror, configuredIn: registry.origin)
        }
        var out: [Endpoint] = []
        for mirror in registry.mirrors {
            if byDigest && mirror.pullFromMirror == .tagOnly { continue }
            if !byDigest && (mirror.pullFromMirror == .digestOnly || registry.mirrorByDigestOnly) { continue }
            out.append(endpoint(mirror.location, insecure: mirror.insecure, mirror: true))
        }
        out.append(endpoint(registry.location, insecure: registry.insecure, mirror: false))
        return out
    }

    // MARK: - Short names

    /// The fully qualified names (`HOST/REPOSITORY`) a short name (`alpine`, `team/app`, without
    /// tag or digest) may mean, in the order to try, as podman resolves it: an `[aliases]` entry
    /// alone; else each `unqualified-search-registries` host in order (`library/` added on
    /// docker.io for a name of one component). oci-unpack never prompts: with
    /// `short-name-mode = "enforcing"` more than one candidate is an error listing them, as
    /// podman's is without a terminal; `permissive` (the default) and `disabled` try each.
    public func resolveShortName(_ name: String) throws(UnpackError) -> (names: [String], how: String) {
        let read = files.isEmpty ? "no registries.conf" : files.joined(separator: ", ")
        if let alias = aliases[name] {
            let host = alias.prefix { $0 != "/" }
            guard alias.contains("/"), host.contains(".") || host.contains(":") || host == "localhost" else {
                throw UnpackError(
                    .invalidArgument,
                    "the alias of short name \"\(name)\" is \"\(alias.truncatedForMessage)\", which names no registry (in \(read))"
                )
            }
            let last = alias.split(separator: "/").last ?? ""
            guard !alias.contains("@"), !last.contains(":") else {
                throw UnpackError(
                    .invalidArgument,
                    "the alias of short name \"\(name)\" is \"\(alias.truncatedForMessage)\", which names a tag or digest (an alias names a repository; in \(read))"
                )
            }
            return ([alias], "alias in \(read)")
        }
        guard !unqualifiedSearchRegistries.isEmpty else {
            throw UnpackError(
                .invalidArgument,
                "short name \"\(name.truncatedForMessage)\" has no alias and no unqualified-search-registries are set (in \(read)); name the registry (docker://HOST/\(name))"
            )
        }
        let names = unqualifiedSearchRegistries.map { host in
            host == "docker.io" && !name.contains("/") ? "docker.io/library/\(name)" : "\(host)/\(name)"
        }
        if shortNameMode == "enforcing" && names.count > 1 {
            throw UnpackError(
                .invalidArgument,
                "short name \"\(name.truncatedForMessage)\" is ambiguous with short-name-mode enforcing (in \(read)): it may be \(names.joined(separator: ", ")); name one, or add an alias"
            )
        }
        return (names, "unqualified-search-registries in \(read)")
    }
}
