import FoundationEssentials
import Glibc
import OCIImage
import UnpackSystem

/// Where signatures of `docker://` images are kept, as `containers-registries.d(5)` says: every
/// `*.yaml` file of one directory (`--registries.d`, else `$HOME/.config/containers/registries.d`
/// when it exists, else `/etc/containers/registries.d`), with `default-docker` and per-scope
/// `docker` sections naming a `lookaside` (or, as older files spell it, `sigstore`) and whether
/// to read sigstore attachments (`use-sigstore-attachments`).
package struct RegistriesD: Sendable, Equatable {
    package struct Section: Sendable, Equatable {
        package var lookaside: String?
        package var useAttachments: Bool?
        /// `FILE:LINE`, for messages.
        package var origin: String
    }

    package var defaultDocker: Section?
    package var docker: [String: Section] = [:]
    /// The directory read, if any.
    package var directory: String?

    package init() {}

    static let sectionKeys: Set<String> = [
        "lookaside", "lookaside-staging", "sigstore", "sigstore-staging", "use-sigstore-attachments",
    ]

    /// The directory containers/image would read (see the type), under `systemRoot` (tests).
    package static func load(explicit: String?, environment: [String: String], systemRoot: String = "")
        throws(UnpackError) -> RegistriesD
    {
        var directory: String
        if let explicit {
            directory = explicit
        } else {
            directory = systemRoot + "/etc/containers/registries.d"
            if let home = environment["HOME"], !home.isEmpty {
                let user = systemRoot + home + "/.config/containers/registries.d"
                var isDirectory = false
                if FileManager.default.fileExists(atPath: user, isDirectory: &isDirectory), isDirectory {
                    directory = user
                }
            }
        }
        var conf = RegistriesD()
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            if explicit != nil {
                throw UnpackError(
                    .notFound, "the registries.d directory \(directory) does not exist", context: .init(path: directory)
                )
            }
            return conf
        }
        guard isDirectory else {
            throw UnpackError(
                .invalidArgument, "registries.d \(directory) is not a directory", context: .init(path: directory))
        }
        conf.directory = directory
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw UnpackError(
                .permissionDenied, "the registries.d directory \(directory) cannot be read",
                context: .init(path: directory))
        }
        for name in names.sorted() where name.hasSuffix(".yaml") {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UnpackError(.permissionDenied, "registries.d \(path) cannot be read", context: .init(path: path))
            }
            guard data.count <= 1 << 20, let text = String(validating: Array(data), as: UTF8.self) else {
                throw UnpackError(
                    .invalidArgument, "registries.d \(path) is not UTF-8 text of at most 1 MiB",
                    context: .init(path: path))
            }
            try conf.merge(text: text, file: path)
        }
        return conf
    }

    /// One file's sections added; a section another file defines is an error, as in containers/image.
    package mutating func merge(text: String, file: String) throws(UnpackError) {
        let entries: [YAMLSubset.Entry]
        do throws(YAMLSubset.Problem) {
            entries = try YAMLSubset.parse(text, file: file)
        } catch {
            throw UnpackError(.invalidArgument, "registries.d \(error)", context: .init(path: file))
        }
        func problem(_ line: Int, _ message: String) -> UnpackError {
            UnpackError(.invalidArgument, "registries.d \(file):\(line): \(message)", context: .init(path: file))
        }
        for entry in entries {
            switch entry.key {
            case "default-docker":
                let section = try Self.section(entry, file: file)
                if let earlier = defaultDocker {
                    throw problem(entry.line, "default-docker is defined both here and in \(earlier.origin)")
                }
                defaultDocker = section
            case "docker":
                guard case .mapping(let scopes) = entry.value else {
                    if entry.value == .empty { continue }
                    throw problem(entry.line, "docker must be a mapping of scopes")
                }
                for scope in scopes {
                    if let earlier = docker[scope.key] {
                        throw problem(
                            scope.line, "docker scope \"\(scope.key)\" is defined both here and in \(earlier.origin)")
                    }
                    docker[scope.key] = try Self.section(scope, file: file)
                }
            default:
                throw problem(entry.line, "unknown key \"\(entry.key)\" (default-docker, docker)")
            }
        }
    }

    static func section(_ entry: YAMLSubset.Entry, file: String) throws(UnpackError) -> Section {
        var section = Section(origin: "\(file):\(entry.line)")
        func problem(_ line: Int, _ message: String) -> UnpackError {
            UnpackError(.invalidArgument, "registries.d \(file):\(line): \(message)", context: .init(path: file))
        }
        guard case .mapping(let fields) = entry.value else {
            if entry.value == .empty { return section }
            throw problem(entry.line, "\"\(entry.key)\" must be a mapping (lookaside, use-sigstore-attachments, …)")
        }
        var sigstore: String?
        for field in fields {
            guard sectionKeys.contains(field.key) else {
                throw problem(
                    field.line, "unknown key \"\(field.key)\" (\(sectionKeys.sorted().joined(separator: ", ")))")
            }
            let text: String?
            switch field.value {
            case .scalar(let value, let quoted):
                text = quoted || (value != "null" && value != "~") ? value : nil
            case .empty:
                text = nil
            case .mapping:
                throw problem(field.line, "\(field.key) must be a single value")
            }
            switch field.key {
            case "lookaside": section.lookaside = text.flatMap { $0.isEmpty ? nil : $0 }
            case "sigstore": sigstore = text.flatMap { $0.isEmpty ? nil : $0 }
            case "use-sigstore-attachments":
                switch text {
                case "true", "True", "TRUE": section.useAttachments = true
                case "false", "False", "FALSE": section.useAttachments = false
                case nil: break
                default: throw problem(field.line, "use-sigstore-attachments must be true or false")
                }
            default:
                break  // the staging locations are where signatures are written
            }
            if let url = text, field.key != "use-sigstore-attachments", !url.isEmpty {
                guard url.hasPrefix("file://") || url.hasPrefix("http://") || url.hasPrefix("https://") else {
                    throw problem(field.line, "\(field.key) \(url) is not a file://, http:// or https:// URL")
                }
            }
        }
        if section.lookaside == nil { section.lookaside = sigstore }
        return section
    }

    /// The lookaside base for a docker image (its identity and namespaces, most specific first):
    /// the first section along them, then `default-docker`, that names one; else the built-in
    /// default for this user (`file:///var/lib/containers/sigstore` for root,
    /// `$HOME/.local/share/containers/sigstore` for others).
    package func lookaside(for subject: PolicySubject, environment: [String: String]) -> String {
        for key in [subject.identity] + subject.namespaces {
            if let url = docker[key]?.lookaside { return url }
        }
        if let url = defaultDocker?.lookaside { return url }
        if geteuid() != 0, let home = environment["HOME"], !home.isEmpty {
            return "file://\(home)/.local/share/containers/sigstore"
        }
        return "file:///var/lib/containers/sigstore"
    }

    /// Whether sigstore attachments are read: the first section that says.
    package func usesAttachments(for subject: PolicySubject) -> Bool {
        for key in [subject.identity] + subject.namespaces {
            if let use = docker[key]?.useAttachments { return use }
        }
        return defaultDocker?.useAttachments ?? false
    }
}

/// Signatures of a `file://` lookaside: `BASE/REPOSITORY@ALGORITHM=HEX/signature-N` from 1 until
/// the first that does not exist, each a regular file of at most the request's limit.
package func lookasideFiles(base: String, request: SignatureRequest) throws(UnpackError) -> [StoredSignature] {
    var path = String(base.dropFirst("file://".count))
    // file://HOST/PATH: the host is ignored, as containers/image ignores it.
    if !path.hasPrefix("/"), let slash = path.firstIndex(of: "/") { path = String(path[slash...]) }
    var found: [StoredSignature] = []
    for number in 1...(request.maxSignatures + 1) {
        let file = request.lookasideURL(path, number: number)
        guard number <= request.maxSignatures else {
            if FileManager.default.fileExists(atPath: file) {
                throw UnpackError(
                    .limitExceeded,
                    "the lookaside holds more than \(request.maxSignatures) signatures for \(request.manifest)",
                    context: .init(digest: request.manifest, path: file))
            }
            break
        }
        let opened: OwnedFD?
        do throws(SystemError) {
            opened = try OwnedFD.openRegularFile(file)
        } catch {
            if error.errno == ENOENT { break }
            throw error.unpackError("signature \(file) cannot be read", context: .init(path: file))
        }
        guard let fd = opened else {
            throw UnpackError(.invalidImage, "signature \(file) is not a regular file", context: .init(path: file))
        }
        let read: [UInt8]?
        do throws(SystemError) {
            read = try fd.readAll(limit: request.maxBytes)
        } catch {
            throw error.unpackError("signature \(file) cannot be read", context: .init(path: file))
        }
        guard let bytes = read else {
            throw UnpackError(
                .limitExceeded, "signature \(file) is larger than \(request.maxBytes) bytes", context: .init(path: file)
            )
        }
        found.append(.blob(bytes, origin: "file://" + file))
    }
    return found
}
