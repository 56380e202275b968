import FoundationEssentials
import Glibc

/// containerd's registry host configuration (`hosts.toml`, containerd's docs/hosts.md), as
/// containerd 1.5 and later read it from `config_path` (`/etc/containerd/certs.d`): for a
/// registry `HOST[:PORT]`, the directory `ROOT/HOST_PORT_` (a port's colon is not a file name's
/// character everywhere), else `ROOT/HOST[:PORT]`, else `ROOT/_default`. Its `hosts.toml` lists
/// the places to pull from, tried in the file's order, then `server` (the registry itself when
/// not given); a directory without one holds docker-style certificates (`*.crt` CAs,
/// `*.cert`/`*.key` client pairs) for the registry. Node-local mirrors (Spegel, Dragonfly)
/// present themselves through these files.
///
/// Read strictly, as every configuration is here: an unknown key, a value of the wrong type, an
/// unknown capability or a URL with a query is refused with the file and line (containerd ignores
/// unknown keys, and on a broken file falls back to the certificates, silently pulling from the
/// origin: a mirror's configuration is worth an error, not a guess).
public struct ContainerdHosts: Sendable, Equatable {
    /// The configuration root (`--hosts-dir`, containerd's `config_path`).
    public var root: String

    /// The hosts configured under `root`.
    public init(root: String) {
        self.root = root
    }

    /// The directory that configures `host`, as containerd looks for it; nil when none exists.
    public func directory(for host: String) -> String? {
        var candidates: [String] = []
        if let colon = host.lastIndex(of: ":"), colon != host.startIndex {
            candidates.append("\(root)/\(host[..<colon])_\(host[host.index(after: colon)...])_")
        }
        candidates += ["\(root)/\(host)", "\(root)/_default"]
        return candidates.first { path in
            var isDirectory = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory
        }
    }

    /// Where to pull `host/repository` from, in order, when a directory configures `host`: the
    /// `[host]` entries (mirrors; `?ns=HOST` is sent to each, as containerd does, since a mirror
    /// serving several registries cannot tell them apart otherwise), then `server` or the
    /// registry itself. `insecure` (registries.conf's, for the registry) carries over to the
    /// registry's own entry. Nil when no directory configures `host`.
    public func endpoints(host: String, repository: String, insecure: Bool = false) throws(UnpackError)
        -> [RegistriesConf.Endpoint]?
    {
        guard let directory = directory(for: host) else { return nil }
        let file = directory + "/hosts.toml"
        let upstream = RegistriesConf.Endpoint(
            host: host, repository: repository, insecure: insecure, isMirror: false, configuredIn: directory)
        guard FileManager.default.fileExists(atPath: file) else {
            var endpoint = upstream
            try Self.addCertificateFiles(in: directory, to: &endpoint)
            return [endpoint]
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw UnpackError(
                .notFound, "hosts.toml \(file) cannot be read: \(String(cString: strerror(errno)))",
                context: .init(path: file))
        }
        guard let text = String(validating: [UInt8](data), as: UTF8.self) else {
            throw UnpackError(.invalidArgument, "hosts.toml \(file) is not UTF-8", context: .init(path: file))
        }
        return try Self.endpoints(
            text: text, file: file, directory: directory, host: host, repository: repository, insecure: insecure)
    }

    /// The endpoints a `hosts.toml` (`text`, read from `file` in `directory`) gives
    /// `host/repository`.
    package static func endpoints(
        text: String, file: String, directory: String, host: String, repository: String, insecure: Bool = false
    ) throws(UnpackError) -> [RegistriesConf.Endpoint] {
        let table: TOMLTable
        do throws(TOML.Problem) {
            table = try TOML.parse(text, file: file)
        } catch {
            throw UnpackError(.invalidArgument, "hosts.toml \(error)", context: .init(path: file))
        }
        let reader = Reader(file: file, directory: directory, namespace: host, repository: repository)
        try reader.refuseUnknown(table, allowed: Reader.hostKeys + ["server", "host"], in: "")
        var out: [RegistriesConf.Endpoint] = []
        if let hosts = table["host"] {
            guard case .table(let byURL) = hosts else {
                throw reader.problem(table.lines["host"] ?? table.line, "host must be a table of [host.\"URL\"] tables")
            }
            // In the file's order, as containerd tries them.
            let ordered = byURL.values.sorted { a, b in
                (byURL.lines[a.key] ?? 0, a.key) < (byURL.lines[b.key] ?? 0, b.key)
            }
            for (url, value) in ordered {
                guard case .table(let settings) = value else {
                    throw reader.problem(
                        byURL.lines[url] ?? byURL.line, "host.\"\(url.truncatedForMessage)\" must be a table")
                }
                out.append(try reader.endpoint(url: url, settings, mirror: true, place: "[host.\"\(url)\"]"))
            }
        }
        let server: String
        if let value = table["server"] {
            guard case .string(let text) = value, !text.isEmpty else {
                throw reader.problem(table.lines["server"] ?? table.line, "server must be a URL string")
            }
            server = text
        } else {
            server = ""
        }
        var last = try reader.endpoint(url: server, table, mirror: false, place: "server")
        if last.host == host { last.insecure = last.insecure || insecure }
        out.append(last)
        return out
    }

    /// Reads the settings of one host table.
    struct Reader {
        let file: String
        let directory: String
        /// The registry the reference names: the `ns` sent to every other host.
        let namespace: String
        let repository: String

        static let hostKeys = [
            "capabilities", "ca", "client", "skip_verify", "header", "override_path", "dial_timeout",
        ]

        func problem(_ line: Int, _ message: String) -> UnpackError {
            UnpackError(.invalidArgument, "hosts.toml \(file):\(line): \(message)", context: .init(path: file))
        }

        func refuseUnknown(_ table: TOMLTable, allowed: [String], in place: String) throws(UnpackError) {
            for key in table.values.keys.sorted() where !allowed.contains(key) {
                throw problem(
                    table.lines[key] ?? table.line,
                    "unknown key \"\(key.truncatedForMessage)\"\(place.isEmpty ? "" : " in \(place)") (known: \(allowed.joined(separator: ", ")))"
                )
            }
        }

        private func wrong(_ key: String, _ expected: String, _ value: TOML, _ line: Int?, _ place: String)
            -> UnpackError
        {
            problem(line ?? 0, "\(key) in \(place) must be \(expected), not \(value.kind)")
        }

        /// A string or an array of strings (containerd takes either for `ca`, `client`, a header).
        private func strings(_ value: TOML, key: String, line: Int?, place: String) throws(UnpackError) -> [String] {
            switch value {
            case .string(let s): return [s]
            case .array(let items):
                var out: [String] = []
                for item in items {
                    guard case .string(let s) = item else {
                        throw wrong(key, "a string or an array of strings", item, line, place)
                    }
                    out.append(s)
                }
                return out
            default: throw wrong(key, "a string or an array of strings", value, line, place)
            }
        }

        private func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : "\(directory)/\(path)"
        }

        /// The endpoint `url` names (`""`: the registry itself), with the settings of `table`.
        func endpoint(url: String, _ table: TOMLTable, mirror: Bool, place: String) throws(UnpackError)
            -> RegistriesConf.Endpoint
        {
            try refuseUnknown(table, allowed: Self.hostKeys + (mirror ? [] : ["server", "host"]), in: place)
            let line = table.line
            var endpoint = RegistriesConf.Endpoint(
                host: namespace, repository: repository, insecure: false, isMirror: mirror,
                configuredIn: "\(file) \(place)")
            let overridePath: Bool
            if let value = table["override_path"] {
                guard case .bool(let b) = value else {
                    throw wrong("override_path", "true or false", value, table.lines["override_path"], place)
                }
                overridePath = b
            } else {
                overridePath = false
            }
            if url.isEmpty {
                // The registry itself: https, except docker.io's API host and a loopback registry
                // (negotiated as without hosts.toml).
                endpoint.apiPath = overridePath ? "" : "/v2"
            } else {
                let full = url.hasPrefix("http://") || url.hasPrefix("https://") ? url : "https://" + url
                let scheme = String(full.prefix { $0 != ":" })
                let rest = full.dropFirst(scheme.count + 3)
                let hostPart = String(rest.prefix { $0 != "/" })
                var path = String(rest.dropFirst(hostPart.count))
                guard !hostPart.isEmpty, !hostPart.contains("@"), !full.contains("?"), !full.contains("#"),
                    hostPart.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-.:[]_".contains($0)) })
                else {
                    throw problem(
                        line,
                        "\(place): \"\(url.truncatedForMessage)\" is not a registry URL (http[s]://HOST[:PORT][/PATH], no user, query or fragment)"
                    )
                }
                while path.hasSuffix("/") { path.removeLast() }
                guard !path.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
                    throw problem(line, "\(place): the path of \"\(url.truncatedForMessage)\" has . or .. components")
                }
                if !overridePath && !path.hasSuffix("/v2") { path += "/v2" }
                endpoint.host = hostPart
                endpoint.scheme = scheme
                endpoint.apiPath = path
            }
            // containerd sends ns= to every host but the registry's own (docker.io is served
            // by registry-1.docker.io, which is its own).
            let own =
                endpoint.host == namespace || (namespace == "docker.io" && endpoint.host == "registry-1.docker.io")
            if !own { endpoint.namespace = namespace }
            if let value = table["capabilities"] {
                var pull = false
                var resolve = false
                for capability in try strings(
                    value, key: "capabilities", line: table.lines["capabilities"], place: place)
                {
                    switch capability.lowercased() {
                    case "pull": pull = true
                    case "resolve": resolve = true
                    case "push", "referrers": break
                    default:
                        throw problem(
                            table.lines["capabilities"] ?? line,
                            "\(place): unknown capability \"\(capability.truncatedForMessage)\" (pull, resolve, push, referrers)"
                        )
                    }
                }
                endpoint.pulls = pull
                endpoint.resolves = pull && resolve
            }
            if let value = table["skip_verify"] {
                guard case .bool(let b) = value else {
                    throw wrong("skip_verify", "true or false", value, table.lines["skip_verify"], place)
                }
                endpoint.skipVerify = b
            }
            if let value = table["ca"] {
                endpoint.caFiles = try strings(value, key: "ca", line: table.lines["ca"], place: place).map(absolute)
            }
            if let value = table["client"] {
                endpoint.clientCertificates = try clientPairs(value, line: table.lines["client"], place: place)
            }
            if let value = table["dial_timeout"] {
                guard case .string(let text) = value, let seconds = Self.seconds(parsing: text), seconds > 0 else {
                    throw problem(
                        table.lines["dial_timeout"] ?? line,
                        "dial_timeout in \(place) must be a duration such as \"5s\" or \"500ms\"")
                }
                endpoint.connectTimeout = seconds
            }
            if let value = table["header"] {
                guard case .table(let headers) = value else {
                    throw wrong("header", "a table", value, table.lines["header"], place)
                }
                for name in headers.values.keys.sorted() {
                    let valueLine = headers.lines[name]
                    guard !name.isEmpty, name.utf8.allSatisfy(Self.isTokenByte) else {
                        throw problem(
                            valueLine ?? line, "\(place): \"\(name.truncatedForMessage)\" is not a header name")
                    }
                    guard name.lowercased() != "authorization", name.lowercased() != "host" else {
                        throw problem(
                            valueLine ?? line,
                            "\(place): the header \(name) is set by oci-unpack itself (credentials go in an auth file)")
                    }
                    let values = try strings(
                        headers.values[name] ?? .array([]), key: "header \(name)", line: valueLine, place: place)
                    for item in values {
                        guard item.utf8.allSatisfy({ $0 == 9 || ($0 >= 32 && $0 != 127) }) else {
                            throw problem(
                                valueLine ?? line, "\(place): the value of header \(name) has control characters")
                        }
                        endpoint.headers.append(.init(name: name, value: item))
                    }
                }
            }
            return endpoint
        }

        /// `client`: a file holding both certificate and key, a list of such files, or a list of
        /// `[certificate, key]` pairs.
        private func clientPairs(_ value: TOML, line: Int?, place: String) throws(UnpackError)
            -> [RegistriesConf.Endpoint.ClientCertificate]
        {
            let expected = "a file, an array of files or an array of [certificate, key] pairs"
            let items: [TOML]
            switch value {
            case .string: items = [value]
            case .array(let list): items = list
            default: throw wrong("client", expected, value, line, place)
            }
            var out: [RegistriesConf.Endpoint.ClientCertificate] = []
            for item in items {
                switch item {
                case .string(let file):
                    out.append(.init(certificate: absolute(file), key: nil))
                case .array(let pair):
                    guard pair.count == 2, case .string(let certificate) = pair[0], case .string(let key) = pair[1]
                    else { throw wrong("client", expected, item, line, place) }
                    out.append(.init(certificate: absolute(certificate), key: absolute(key)))
                default:
                    throw wrong("client", expected, item, line, place)
                }
            }
            return out
        }

        static func isTokenByte(_ byte: UInt8) -> Bool {
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }

        /// A Go duration (`1m30s`, `500ms`, `2.5s`) in seconds; nil if it is not one.
        static func seconds(parsing text: String) -> Double? {
            let units: [(String, Double)] = [
                ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
            ]
            var rest = Substring(text)
            var total = 0.0
            guard !rest.isEmpty else { return nil }
            while !rest.isEmpty {
                let number = rest.prefix { $0.isNumber || $0 == "." }
                guard !number.isEmpty, let value = Double(number) else { return nil }
                rest = rest.dropFirst(number.count)
                guard let (unit, scale) = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
                rest = rest.dropFirst(unit.count)
                total += value * scale
            }
            return total
        }
    }

    /// A host directory without hosts.toml: docker's certs.d layout.
    static func addCertificateFiles(in directory: String, to endpoint: inout RegistriesConf.Endpoint)
        throws(UnpackError)
    {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names.sorted() {
            let path = directory + "/" + name
            if name.hasSuffix(".crt") {
                endpoint.caFiles.append(path)
            } else if name.hasSuffix(".cert") {
                let key = String(path.dropLast(".cert".count)) + ".key"
                endpoint.clientCertificates.append(
                    .init(certificate: path, key: FileManager.default.fileExists(atPath: key) ? key : nil))
            }
        }
    }
}
