import FoundationEssentials
import OCIImage
import UnpackSystem

/// Changes to the converted configuration asked for on the command line.
public struct ConfigOverrides: Sendable, Equatable {
    /// `NAME=VALUE` entries, added or replacing the image's.
    public var env: [String]
    /// Replaces the image's `User` (same forms).
    public var user: String?
    /// Replaces the image's `WorkingDir`.
    public var workingDir: String?
    /// Replaces the image's `Cmd` (the Entrypoint stays), like `docker run IMAGE ARGS…`.
    public var args: [String]?
    /// Replaces the image's `Entrypoint`.
    public var entrypoint: [String]?

    /// Overrides with the given values; the defaults change nothing.
    public init(
        env: [String] = [], user: String? = nil, workingDir: String? = nil, args: [String]? = nil,
        entrypoint: [String]? = nil
    ) {
        self.env = env
        self.user = user
        self.workingDir = workingDir
        self.args = args
        self.entrypoint = entrypoint
    }
}

/// The runtime bundle's `config.json`: a runtime-spec template with the image configuration
/// converted into it as image-spec's conversion.md describes.
package enum RuntimeConfig {
    package static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The built-in template (bundle-templates/default.json).
    package static func defaultTemplate() throws(UnpackError) -> JSONValue {
        try parseTemplate(PackageResources.default_json, source: "the built-in template")
    }

    /// The built-in template for rootless bundles (bundle-templates/rootless.json: what
    /// `runc spec --rootless` makes, with the default template's process settings).
    package static func rootlessTemplate() throws(UnpackError) -> JSONValue {
        try parseTemplate(PackageResources.rootless_json, source: "the built-in rootless template")
    }

    /// A template from a file (`--template`).
    package static func template(at path: String) throws(UnpackError) -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UnpackError(.notFound, "template \(path) cannot be read", context: .init(path: path))
        }
        return try parseTemplate(Array(data), source: "template \(path)")
    }

    private static func parseTemplate(_ bytes: [UInt8], source: String) throws(UnpackError) -> JSONValue {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: bytes)
        } catch {
            throw UnpackError(.invalidArgument, "\(source) is not valid JSON: \(error)")
        }
        guard value.objectValue != nil, value["process"]?.objectValue != nil else {
            throw UnpackError(.invalidArgument, "\(source) is not a runtime-spec configuration (no \"process\" object)")
        }
        return value
    }

    /// `linux` with the maps as `uidMappings`/`gidMappings` and a `user` namespace (added when the
    /// template has none; a template's own path for it is kept).
    static func withUserNamespace(_ linux: JSONValue, uids: IDMap, gids: IDMap) -> JSONValue {
        func mappings(_ map: IDMap) -> JSONValue {
            .array(
                map.ranges.map { range in
                    .object([
                        "containerID": .int(Int64(range.containerID)), "hostID": .int(Int64(range.hostID)),
                        "size": .int(Int64(range.size)),
                    ])
                })
        }
        var linux = linux
        linux["uidMappings"] = mappings(uids)
        linux["gidMappings"] = mappings(gids)
        var namespaces = linux["namespaces"]?.arrayValue ?? []
        if !namespaces.contains(where: { $0["type"]?.stringValue == "user" }) {
            namespaces.append(.object(["type": .string("user")]))
        }
        linux["namespaces"] = .array(namespaces)
        return linux
    }

    /// Checks what can be checked before unpacking: the image must be a Linux image.
    package static func precheck(image: ImageConfig, overrides: ConfigOverrides = .init()) throws(UnpackError) {
        guard image.os.lowercased() == "linux" else {
            throw UnpackError(
                .unsupportedMediaType,
                "the image is for os \"\(image.os.truncatedForMessage)\"; only linux images can become runtime bundles")
        }
        // What can be told about the user without the rootfs is told before unpacking.
        if let user = overrides.user {
            try UserDatabase.checkSyntax(user, from: .option)
        } else if let user = image.config?.user {
            try UserDatabase.checkSyntax(user, from: .image)
        }
    }

    /// `process.args`: Entrypoint + Cmd (either may be overridden). Empty when the image has
    /// neither; the bundle is still written, and the caller warns that a runtime will refuse it.
    package static func arguments(image: ImageConfig, overrides: ConfigOverrides) -> [String] {
        (overrides.entrypoint ?? image.config?.entrypoint ?? []) + (overrides.args ?? image.config?.cmd ?? [])
    }

    /// Fills `template` from the image configuration and the rootfs's users.
    /// With `userNamespace`, the bundle runs in a user namespace with those maps (rootless and
    /// id-mapped bundles, whose owners on disk are the maps' host ids).
    /// What config.json's `root` says, and what the output mounts besides the image's volumes.
    package struct Root: Sendable, Equatable {
        /// `root.path`, relative to the bundle or absolute.
        package var path: String
        /// `root.readonly`; nil leaves the template's.
        package var readonly: Bool?
        /// Mounts (runtime-spec objects) the output adds before the template's and the volumes'.
        package var mounts: [JSONValue]

        package init(path: String, readonly: Bool? = nil, mounts: [JSONValue] = []) {
            self.path = path
            self.readonly = readonly
            self.mounts = mounts
        }
    }

    package static func make(
        template: JSONValue, image: ImageConfig, users: UserDatabase, overrides: ConfigOverrides = .init(),
        root rootSpec: Root = Root(path: "rootfs"), userNamespace: (uids: IDMap, gids: IDMap)? = nil
    ) throws(UnpackError) -> JSONValue {
        try precheck(image: image)
        let execution = image.config ?? ImageConfig.Execution()
        var config = template
        var process = template["process"] ?? .object([:])

        process["args"] = .strings(arguments(image: image, overrides: overrides))

        let user: UserDatabase.Resolved
        if let spec = overrides.user {
            user = try users.resolve(spec, from: .option)
        } else {
            user = try users.resolve(execution.user ?? "", from: .image)
        }
        var userObject = process["user"] ?? .object([:])
        userObject["uid"] = .int(Int64(user.uid))
        userObject["gid"] = .int(Int64(user.gid))
        userObject["additionalGids"] =
            user.additionalGids.isEmpty ? nil : .array(user.additionalGids.map { .int(Int64($0)) })
        process["user"] = userObject

        var env = Environment(process["env"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        env.merge(execution.env ?? [])
        env.merge(overrides.env)
        env.addIfAbsent("PATH", defaultPath)
        if let home = user.home, !home.isEmpty { env.addIfAbsent("HOME", home) }
        process["env"] = .strings(env.entries)

        var cwd = overrides.workingDir ?? execution.workingDir ?? ""
        if cwd.isEmpty { cwd = "/" }
        if !cwd.hasPrefix("/") { cwd = "/" + cwd }
        process["cwd"] = .string(cwd)
        config["process"] = process

        var root = template["root"] ?? .object([:])
        root["path"] = .string(rootSpec.path)
        if let readonly = rootSpec.readonly { root["readonly"] = .bool(readonly) }
        config["root"] = root
        if !rootSpec.mounts.isEmpty {
            config["mounts"] = .array(rootSpec.mounts + (template["mounts"]?.arrayValue ?? []))
        }

        config["annotations"] = .object(
            (template["annotations"]?.objectValue ?? [:]).merging(annotations(image).mapValues(JSONValue.string)) { $1 }
        )

        if let userNamespace {
            config["linux"] = withUserNamespace(
                config["linux"] ?? .object([:]), uids: userNamespace.uids, gids: userNamespace.gids)
        }

        let volumes = (execution.volumes ?? [:]).keys.sorted()
        if !volumes.isEmpty {
            var mounts = config["mounts"]?.arrayValue ?? []
            let taken = Set(mounts.compactMap { $0["destination"]?.stringValue })
            for volume in volumes where !taken.contains(volume) {
                mounts.append(
                    .object([
                        "destination": .string(volume), "type": .string("tmpfs"), "source": .string("tmpfs"),
                        "options": .strings(["nosuid", "nodev", "mode=755"]),
                    ]))
            }
            config["mounts"] = .array(mounts)
        }
        return config
    }

    /// The annotations conversion.md derives from the image configuration; Labels win.
    package static func annotations(_ image: ImageConfig) -> [String: String] {
        var out: [String: String] = [:]
        let prefix = "org.opencontainers.image."
        out[prefix + "os"] = image.os
        out[prefix + "architecture"] = image.architecture
        if let variant = image.variant, !variant.isEmpty { out[prefix + "variant"] = variant }
        if let version = image.osVersion, !version.isEmpty { out[prefix + "os.version"] = version }
        if let features = image.osFeatures, !features.isEmpty {
            out[prefix + "os.features"] = features.joined(separator: ",")
        }
        if let author = image.author, !author.isEmpty { out[prefix + "author"] = author }
        if let created = image.created, !created.isEmpty { out[prefix + "created"] = created }
        if let signal = image.config?.stopSignal, !signal.isEmpty { out[prefix + "stopSignal"] = signal }
        if let ports = image.config?.exposedPorts, !ports.isEmpty {
            out[prefix + "exposedPorts"] = ports.keys.sorted().joined(separator: ",")
        }
        for (key, value) in image.config?.labels ?? [:] { out[key] = value }
        return out
    }

    /// The bytes written to `config.json`: sorted keys, indented, ending in a newline.
    package static func encode(_ config: JSONValue) throws(UnpackError) -> [UInt8] {
        guard config.allNumbersFinite else {
            throw UnpackError(
                .invalidArgument, "config.json would hold a number that is infinite or NaN, which JSON cannot write")
        }
        return config.formatted() + [0x0a]
    }
}

/// `NAME=VALUE` entries in order, later ones replacing earlier ones with the same name.
struct Environment {
    private(set) var entries: [String] = []

    init(_ entries: [String]) { merge(entries) }

    mutating func merge(_ more: [String]) {
        for entry in more {
            let name = entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
            if let i = entries.firstIndex(where: { Self.name(of: $0) == name }) {
                entries[i] = entry
            } else {
                entries.append(entry)
            }
        }
    }

    mutating func addIfAbsent(_ name: String, _ value: String) {
        if !entries.contains(where: { Self.name(of: $0) == name }) { entries.append("\(name)=\(value)") }
    }

    private static func name(of entry: String) -> String {
        entry.split(separator: "=", maxSplits: 1).first.map(String.init) ?? entry
    }
}
