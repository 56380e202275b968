import ArgumentParser
import FoundationEssentials
import Glibc
import Logging
import OCIUnpack
import UnpackSystem

/// How to reach registries, for every command that reads an image.
struct RegistryFlags: ParsableArguments {
    @Option(help: "USER[:PASSWORD] for the registry (never printed).")
    var creds: String?

    @Option(help: "An auth file (containers-auth.json) instead of the usual ones.")
    var authfile: String?

    @Option(
        name: .customLong("tls-verify"),
        help: "false: skip TLS verification and allow plain HTTP for this run (default true).")
    var tlsVerify: Bool = true

    @Option(name: .customLong("cert-dir"), help: "CA certificates (*.crt) and client pairs (*.cert, *.key).")
    var certDir: String?

    @Option(help: "Keep pulled blobs in this OCI layout, and take them from it first (docker:// images).")
    var cache: String?

    @Option(
        name: .customLong("cache-max-size"),
        help: "Bound on the cached blobs' bytes (K, M, G, T suffixes); least recently used go first.")
    var cacheMaxSize: String?

    @Option(
        help: """
            With --cache: missing (a tag the cache recorded is used without asking the registry), \
            always (ask the registry what a tag names now), never (the cache only).
            """)
    var pull: String = "missing"

    @Option(
        name: .customLong("speed-limit"),
        help: "A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0: off.")
    var speedLimit: Int = 1024

    @Option(name: .customLong("speed-time"), help: "The window for --speed-limit, in seconds.")
    var speedTime: Int = 30

    @Option(
        name: .customLong("command-timeout"),
        help: "Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).")
    var commandTimeout: String?

    @Option(
        name: .customLong("registries-conf"),
        help: """
            A registries.conf (mirrors, locations, insecure and blocked registries) instead of \
            $CONTAINERS_REGISTRIES_CONF or the user's and system's files (see docs/images.md).
            """)
    var registriesConf: String?

    @Option(
        name: .customLong("hosts-dir"),
        help: """
            containerd's registry host configuration (HOST/hosts.toml: mirrors such as Spegel, CAs, headers) \
            instead of /etc/containerd/certs.d (see docs/images.md).
            """)
    var hostsDir: String?

    @Option(
        name: .customLong("retry-times"),
        help: "Times one registry request is tried again after a failed connection, a 429 or a 5xx (0: once).")
    var retryTimes: Int = 4

    @Option(
        name: .customLong("retry-delay"),
        help: "A fixed pause before each retry (2s, 1m); unset or 0: 0.5 s doubling to 8 s.")
    var retryDelay: String?

    /// An unpacker that reaches registries as these flags say, through what this executable has
    /// (``CommandLineSetup/registries``).
    func unpacker(logger: Logger) throws(UnpackError) -> Unpacker {
        Unpacker(logger: logger, registry: try options(), registries: CommandLineSetup.registries)
    }

    func options() throws(UnpackError) -> RegistryOptions {
        guard let policy = RegistryOptions.PullPolicy(rawValue: pull) else {
            throw UnpackError(
                .invalidArgument, "--pull \"\(pull.truncatedForMessage)\" is not missing, always or never")
        }
        var cacheOptions: RegistryOptions.CacheOptions?
        if let cache {
            var bound: Int64?
            if let cacheMaxSize {
                guard let size = UnpackLimits.parseSize(cacheMaxSize), size > 0 else {
                    throw UnpackError(
                        .invalidArgument,
                        "--cache-max-size \"\(cacheMaxSize.truncatedForMessage)\" is not a positive size (such as 512M or 20G)"
                    )
                }
                bound = size
            }
            cacheOptions = .init(path: cache, maxSize: bound, pull: policy)
        } else if cacheMaxSize != nil || policy != .missing {
            throw UnpackError(.invalidArgument, "--cache-max-size and --pull need --cache DIR")
        }
        guard speedLimit >= 0, speedTime > 0 else {
            throw UnpackError(.invalidArgument, "--speed-limit must be 0 or more and --speed-time more than 0")
        }
        var options = RegistryOptions(
            credentials: try creds.map { (text) throws(UnpackError) in try RegistryOptions.parseCredentials(text) },
            authFile: authfile, tlsVerify: tlsVerify, certDirectory: certDir, cache: cacheOptions)
        options.minimumRate = speedLimit
        options.minimumRateWindow = speedTime
        options.readsRegistriesConf = true
        options.registriesConfFile = registriesConf
        var isDirectory = false
        if let hostsDir {
            guard FileManager.default.fileExists(atPath: hostsDir, isDirectory: &isDirectory), isDirectory else {
                throw UnpackError(
                    .notFound, "--hosts-dir \(hostsDir) is not a directory", context: .init(path: hostsDir))
            }
            options.hostsDirectory = hostsDir
        } else if FileManager.default.fileExists(
            atPath: RegistryOptions.defaultHostsDirectory, isDirectory: &isDirectory),
            isDirectory
        {
            options.hostsDirectory = RegistryOptions.defaultHostsDirectory
        }
        guard retryTimes >= 0 else { throw UnpackError(.invalidArgument, "--retry-times must be 0 or more") }
        options.retryTimes = retryTimes
        if let retryDelay {
            guard let seconds = Self.parseDuration(retryDelay), seconds >= 0, seconds <= 3600 else {
                throw UnpackError(
                    .invalidArgument,
                    "--retry-delay \"\(retryDelay.truncatedForMessage)\" is not a duration of at most 1h (such as 2s or 1m)"
                )
            }
            // 0 is skopeo's "unset": the doubling backoff.
            options.retryDelay = seconds > 0 ? seconds : nil
        }
        if let commandTimeout {
            guard let seconds = Self.parseDuration(commandTimeout), seconds > 0 else {
                throw UnpackError(
                    .invalidArgument,
                    "--command-timeout \"\(commandTimeout.truncatedForMessage)\" is not a positive duration (such as 90s, 10m or 1h)"
                )
            }
            options.commandTimeout = seconds
        }
        return options
    }

    /// `90`, `90s`, `1.5m`, `2h`, `1h30m` (Go's duration spelling, as skopeo takes it, without
    /// the units below a second): seconds.
    static func parseDuration(_ text: String) -> Double? {
        if let plain = Double(text), plain.isFinite { return plain }
        var total = 0.0
        var number = ""
        var sawUnit = false
        for c in text {
            if c.isNumber || c == "." {
                number.append(c)
                continue
            }
            guard let value = Double(number), let unit = ["h": 3600.0, "m": 60, "s": 1][String(c)] else { return nil }
            total += value * unit
            number = ""
            sawUnit = true
        }
        return number.isEmpty && sawUnit && total.isFinite ? total : nil
    }
}

/// Options shared by every command that resolves an image.
struct ResolutionOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "Platform as os/arch[/variant] (default: this machine's); a bare architecture (arm64) means linux/arm64.")
    var platform: String?

    @Option(
        name: .customLong("os"),
        help: "The platform's OS instead of --platform's (or this machine's), as podman's --os.")
    var overrideOS: String?

    @Option(
        name: .customLong("arch"),
        help: "The platform's architecture instead of --platform's (or this machine's); without --variant, no variant.")
    var overrideArch: String?

    @Option(name: .customLong("variant"), help: "The platform's CPU variant (v7, v8), as podman's --variant.")
    var overrideVariant: String?

    @Option(
        name: .customLong("prefer-compression"),
        help: """
            Order of preferred layer compressions among equal platform matches, or first: the first \
            usable entry in index order, as image-index.md describes (see docs/images.md).
            """)
    var preferCompression: String = "zstd,gzip,none"

    @OptionGroup var alternatives: AlternativeFlags

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "warning"

    func request() throws(UnpackError) -> ResolutionRequest {
        return try ResolutionRequest(
            platform: try chosenPlatform(), preferCompression: preferCompression,
            alternativeAnnotation: alternatives.annotation)
    }

    /// --platform (or this machine's), with the fields --os, --arch and --variant replace.
    func chosenPlatform() throws(UnpackError) -> Platform {
        let base = try platform.map { (text) throws(UnpackError) in try Platform(parsing: text) } ?? .host
        guard overrideOS != nil || overrideArch != nil || overrideVariant != nil else { return base }
        let arch = overrideArch ?? base.architecture
        let variant = overrideVariant ?? (overrideArch == nil ? base.variant : nil)
        let text = [overrideOS ?? base.os, arch] + (variant.map { $0.isEmpty ? [] : [$0] } ?? [])
        return try Platform(parsing: text.joined(separator: "/"))
    }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level \"\(logLevel)\"")
        }
    }

    func makeLogger() -> Logger {
        var logger = Logger(label: "oci-unpack")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        return logger
    }
}

/// The `<image>` argument's help: every form docs/images.md documents.
let imageArgumentHelp = ArgumentHelp(
    "An image: PATH[:TAG], oci:PATH[:TAG|@sha256:HEX], oci-archive:PATH[:TAG], docker-archive:PATH[:REF|:@N], or docker://[HOST[:PORT]/]REPO[:TAG|@sha256:HEX] (docs/images.md)."
)

/// `1 layer`, `2 layers`: a count with its noun in the right number.
func counted(_ count: Int, _ singular: String, _ plural: String? = nil) -> String {
    count == 1 ? "1 \(singular)" : "\(count) \(plural ?? singular + "s")"
}

/// Prints `value` as the documented JSON of `--json`: indented, keys sorted, `/` unescaped.
func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// The signature policy (containers-policy.json(5)) and where signatures are (registries.d), as
/// skopeo spells the options.
struct PolicyFlags: ParsableArguments {
    @Option(
        help: """
            The signature policy (containers-policy.json) instead of $HOME/.config/containers/policy.json \
            or /etc/containers/policy.json.
            """)
    var policy: String?

    @Flag(name: .customLong("insecure-policy"), help: "Apply no signature policy: accept every image.")
    var insecurePolicy = false

    @Flag(
        name: .customLong("require-policy"),
        help: "Refuse to run when no policy file exists (by default no policy means no check).")
    var requirePolicy = false

    @Option(
        name: .customLong("registries.d"),
        help: "Where signature lookasides are configured, instead of the user's or /etc/containers/registries.d.")
    var registriesD: String?

    func options() throws(UnpackError) -> SignaturePolicyOptions {
        if insecurePolicy && (policy != nil || requirePolicy) {
            throw UnpackError(
                .invalidArgument, "--insecure-policy cannot be combined with --policy or --require-policy")
        }
        let source: SignaturePolicyOptions.Source =
            insecurePolicy ? .insecureAcceptAnything : policy.map { .file($0) } ?? .system
        return SignaturePolicyOptions(source: source, required: requirePolicy, registriesDirectory: registriesD)
    }
}

/// `inspect --json`: the resolution's object and what the signature policy decided.
struct InspectDocument: Encodable {
    let image: ResolvedImage
    let policy: PolicyDecision

    enum CodingKeys: String, CodingKey { case policy }

    func encode(to encoder: any Encoder) throws {
        try image.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(policy, forKey: .policy)
    }
}

/// How the running executable reaches registries. `oci-unpack-registry` sets it before it runs the
/// command line; `oci-unpack` leaves it `nil` and hands a `docker://` reference to
/// `oci-unpack-registry` (``RegistryHandOff``), so that a local unpack's start does not pay for the
/// HTTP stack's size.
package enum CommandLineSetup {
    nonisolated(unsafe) package static var registries: (any RegistryAccess)?
}

/// `oci-unpack`'s way to `docker://` references: it runs `oci-unpack-registry` (the same command
/// line, built with AsyncHTTPClient and swift-nio), installed beside it, in its place.
package enum RegistryHandOff {
    /// The registry executable's name.
    package static let executable = "oci-unpack-registry"

    /// Replaces this process with `oci-unpack-registry` when an argument before `--` is a
    /// `docker://` reference; returns otherwise. Exits 64 when the executable cannot be run.
    package static func execIfNeeded(_ arguments: [String] = CommandLine.arguments) {
        let options = arguments.dropFirst().prefix { $0 != "--" }
        guard options.contains(where: { $0.hasPrefix("docker://") }) else { return }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else {
            writeStandardError(
                "oci-unpack: error: docker:// references are pulled by \(executable), and /proc/self/exe cannot be read to find it (\(String(cString: strerror(errno))))\n"
            )
            Glibc.exit(UnpackError.Code.invalidArgument.exitCode)
        }
        let here = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = here.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let path = directory + "/" + executable
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        execv(path, &argv)
        let reason = String(cString: strerror(errno))
        writeStandardError(
            "oci-unpack: error: docker:// references are pulled by \(executable), which cannot be run from \(path) (\(reason)): build or install it beside oci-unpack\n"
        )
        Glibc.exit(UnpackError.Code.invalidArgument.exitCode)
    }
}

/// Runs the command line (``OCIUnpackCommand/main()``) and exits.
package func runCommandLine() -> Never {
    OCIUnpackCommand.main()
    Glibc.exit(0)
}

struct OCIUnpackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oci-unpack",
        abstract: "Unpack OCI images into runtime bundles, choosing platform and compression variant.",
        discussion: """
            Every command has a man page (man oci-unpack.unpack, installed by hack/install, written \
            from these definitions into docs/man). Shell completions: oci-unpack \
            --generate-completion-script bash|zsh|fish (hack/install installs all three).
            """,
        version: Unpacker.version,
        subcommands: [Unpack.self, Inspect.self, VerifyVariants.self, TreeDigest.self, Remove.self, Store.self]
    )

    /// The message for a first argument that is no command (`unpak`), with the closest command
    /// name when one is near (ArgumentParser would call it "unexpected arguments"); nil otherwise.
    static func unknownSubcommand(_ arguments: [String]) -> String? {
        guard let first = arguments.first, !first.hasPrefix("-"), first != "help" else { return nil }
        let names = configuration.subcommands.compactMap { $0.configuration.commandName }
        guard !names.contains(first) else { return nil }
        let closest = names.map { ($0, editDistance(first, $0)) }.min { $0.1 < $1.1 }
        let hint = closest.flatMap { $0.1 <= 2 ? "; did you mean '\($0.0)'?" : nil } ?? ""
        return "unknown command '\(first)'\(hint) (the commands: \(names.joined(separator: ", ")))"
    }

    /// The Levenshtein distance of two short words.
    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let saved = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = saved
            }
        }
        return row[b.count]
    }

    /// Parses and runs like ArgumentParser's own `main`, but every bad argument of every command
    /// (an unknown option, a failed validation, a malformed platform) ends the same way: one
    /// `oci-unpack: error:` line and the invalid-argument exit code. Help and version print as
    /// usual.
    static func main() {
        // A process `--userns auto` started enters its namespace before anything else runs.
        do throws(SystemError) {
            _ = try UserNamespace.enterIfLaunched()
        } catch {
            writeStandardError("oci-unpack: error: --userns auto: cannot create a user namespace: \(error)\n")
            Glibc.exit(UnpackError.Code.permissionDenied.exitCode)
        }
        if let unknown = unknownSubcommand(Array(CommandLine.arguments.dropFirst())) {
            writeStandardError("oci-unpack: error: \(DisplayText.escaping(unknown))\n")
            Glibc.exit(UnpackError.Code.invalidArgument.exitCode)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            // A command's own failure, already reported by CLIFailure.
            Glibc.exit(code.rawValue)
        } catch let error as UnpackError {
            Glibc.exit(CLIFailure(error: error, json: false).report().rawValue)
        } catch {
            let status = exitCode(for: error)
            if status == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = DisplayText.escaping(self.message(for: error))
            writeStandardError("oci-unpack: error: \(message)\n")
            Glibc.exit(UnpackError.Code.invalidArgument.exitCode)
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show how an image resolves: indexes walked, candidates, chosen manifest and layers.")

    @OptionGroup var resolution: ResolutionOptions

    @OptionGroup var registryFlags: RegistryFlags

    @OptionGroup var policyFlags: PolicyFlags

    @Flag(help: "Print the documented JSON object (docs/inspect-json.md) instead of text.")
    var json = false

    @Argument(help: imageArgumentHelp)
    var image: String

    func run() throws {
        LoggingSystem.bootstrap(EscapingLogHandler.standardError)
        do {
            let logger = resolution.makeLogger()
            let unpacker = try registryFlags.unpacker(logger: logger)
            let policyOptions = try policyFlags.options()
            let resolved = try unpacker.resolve(image, request: resolution.request())
            for warning in resolved.warnings { logger.warning("\(warning)") }
            // What an unpack would decide (inspect itself shows a refused image too).
            let decision = try unpacker.policyDecision(for: resolved, options: policyOptions)
            if json {
                try printJSON(InspectDocument(image: resolved, policy: decision))
            } else {
                print(InspectText.render(resolved), terminator: "")
                print(DisplayText.escaping("policy:     \(decision.summary)"))
            }
        } catch let error as UnpackError {
            throw CLIFailure(error: error, json: json).report()
        }
    }
}

struct Unpack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Unpack an image into an OCI runtime bundle: BUNDLE/config.json and BUNDLE/rootfs.",
        discussion: """
            The bundle is built in a hidden staging directory beside BUNDLE and renamed into place only \
            when every layer verified and applied; on any error or on SIGINT/SIGTERM nothing is left.
            """)

    @OptionGroup var resolution: ResolutionOptions

    @OptionGroup var registryFlags: RegistryFlags

    @OptionGroup var policyFlags: PolicyFlags

    @Flag(help: "Replace an existing non-empty BUNDLE (only after the new one is complete).")
    var force = false

    @Flag(name: .shortAndLong, help: "No progress output.")
    var quiet = false

    @Option(
        help: """
            A runtime-spec template for config.json (default: bundle-templates/default.json, or \
            rootless.json when rootless; both built in).
            """)
    var template: String?

    @Option(name: .customLong("env"), help: "NAME=VALUE to add to the environment (repeatable).")
    var env: [String] = []

    @Option(help: "Run as this user instead of the image's User (uid, name, uid:gid, name:group).")
    var user: String?

    @Option(name: .customLong("workdir"), help: "Working directory instead of the image's WorkingDir.")
    var workingDir: String?

    @Option(help: "Entrypoint instead of the image's (repeat for each argument).")
    var entrypoint: [String] = []

    @OptionGroup var decoding: DecodingOptions

    @Flag(
        help: """
            Unpack without privileges (the default when not run as root): files belong to you, other \
            owners are recorded in user.rootlesscontainers xattrs as umoci records them, and config.json \
            maps you to root in a user namespace.
            """)
    var rootless = false

    @Option(
        name: .customLong("uid-map"),
        help: """
            CONTAINER:HOST:SIZE: give files the host uid their owner stands for, and write the map into \
            config.json with a user namespace (repeatable; root only).
            """)
    var uidMap: [String] = []

    @Option(
        name: .customLong("gid-map"),
        help: "CONTAINER:HOST:SIZE: the same for groups (repeatable; either map defaults to the other).")
    var gidMap: [String] = []

    @Option(
        help: """
            auto: as an ordinary user, unpack as root in a user namespace that maps you to root and \
            your subordinate ids (/etc/subuid, /etc/subgid) from 1, through newuidmap and newgidmap, as \
            podman does; owners are real (shifted) on disk and config.json carries the maps.
            """)
    var userns: String?

    @Option(
        name: .customLong("map-unmapped"),
        help: "What an id-mapped unpack does with ids no map holds: refuse (default) or overflow (nobody).")
    var mapUnmapped: String?

    @Option(
        help: """
            A layer store (created on first use): each layer is unpacked into it once, and BUNDLE/rootfs             is an overlay of the image's layers with the bundle's own upper directory (needs root, or a             user namespace with --no-mount).
            """)
    var store: String?

    @Flag(
        name: .customLong("no-mount"),
        help: "With --store: write the bundle without mounting rootfs; BUNDLE/rootfs.mount.json says what to mount.")
    var noMount = false

    @Option(
        name: .customLong("verifier-dir"),
        help:
            "Run every executable in DIR for the image before any layer is fetched (containerd's image verifiers); all must exit 0."
    )
    var verifierDir: String?

    @Option(name: .customLong("verifier-timeout"), help: "Seconds each --verifier-dir program may take.")
    var verifierTimeout: Double = 10

    @Flag(help: "Print the documented JSON object (docs/unpacking.md) instead of text.")
    var json = false

    @Argument(help: imageArgumentHelp)
    var image: String

    @Argument(help: "The bundle directory to create (BUNDLE/config.json and BUNDLE/rootfs).")
    var bundle: String

    @Argument(parsing: .postTerminator, help: "After --: the command, replacing the image's Cmd.")
    var command: [String] = []

    func validate() throws {
        for entry in env where !entry.contains("=") || entry.hasPrefix("=") {
            throw ValidationError("--env \"\(entry)\" is not NAME=VALUE")
        }
        if noMount && store == nil { throw ValidationError("--no-mount needs --store") }
        _ = try ownership()
    }

    /// `--rootless`, or the maps, or the default for this user.
    func ownership() throws(ValidationError) -> Ownership {
        if let mapUnmapped, UnmappedIDs(rawValue: mapUnmapped) == nil {
            throw ValidationError("--map-unmapped must be refuse or overflow, not \"\(mapUnmapped)\"")
        }
        if let userns {
            guard userns == "auto" else { throw ValidationError("--userns must be auto, not \"\(userns)\"") }
            guard !rootless && uidMap.isEmpty && gidMap.isEmpty && mapUnmapped == nil else {
                throw ValidationError(
                    "--userns auto cannot be combined with --rootless, --uid-map, --gid-map or --map-unmapped")
            }
            guard UserNamespace.entered else { return .rootless }  // replaced by the launched process's
            guard let maps = UserNamespace.currentMaps() else {
                throw ValidationError("--userns auto: /proc/self/uid_map cannot be read")
            }
            func idMap(_ ranges: [IDMap.Range], _ name: String) throws(ValidationError) -> IDMap {
                do throws(UnpackError) {
                    return try IDMap(ranges, name: name)
                } catch {
                    throw ValidationError(error.message)
                }
            }
            return .namespaced(uids: try idMap(maps.uids, "uid_map"), gids: try idMap(maps.gids, "gid_map"))
        }
        if uidMap.isEmpty && gidMap.isEmpty {
            if mapUnmapped != nil { throw ValidationError("--map-unmapped needs --uid-map or --gid-map") }
            return rootless ? .rootless : .automatic
        }
        if rootless { throw ValidationError("--rootless cannot be combined with --uid-map or --gid-map") }
        do throws(UnpackError) {
            // Either map stands in for the other when only one is given (as podman's --uidmap does).
            let uids = uidMap.isEmpty ? nil : try IDMap(uidMap.map(IDMap.Range.init(parsing:)), name: "--uid-map")
            let gids = gidMap.isEmpty ? nil : try IDMap(gidMap.map(IDMap.Range.init(parsing:)), name: "--gid-map")
            guard let uidMap = uids ?? gids, let gidMap = gids ?? uids else { return .automatic }
            return .mapped(uids: uidMap, gids: gidMap, unmapped: UnmappedIDs(rawValue: mapUnmapped ?? "") ?? .refuse)
        } catch {
            throw ValidationError(error.message)
        }
    }

    func run() throws {
        if userns != nil && !UserNamespace.entered {
            // This process only starts the unpacker in its namespace and passes its exit on.
            throw ExitCode(try launchInUserNamespace())
        }
        LoggingSystem.bootstrap(EscapingLogHandler.standardError)
        let logger = resolution.makeLogger()
        let unpacker: Unpacker
        do {
            unpacker = try registryFlags.unpacker(logger: logger)
        } catch {
            throw CLIFailure(error: error, json: false).report()
        }
        let progress: ProgressLine? = quiet || isatty(STDERR_FILENO) == 0 ? nil : ProgressLine()
        let recorder = UnpackRecorder()
        let warn: @Sendable (String) -> Void = { message in
            recorder.warn(message)
            logger.warning("\(message)")
        }
        // SIGINT, SIGTERM and the other terminating signals stop the unpack cleanly: the handlers
        // only record the signal (and make SIGPIPE and SIGXFSZ errors of the write that caused
        // them); the unpack checks between entries.
        Interrupts.install()
        var options = UnpackOptions(
            force: force, ownership: (try? ownership()) ?? .automatic, warn: warn,
            cancellation: .watchingSignals())
        options.gzipDecoder = decoding.decoder
        options.verifierDirectory = verifierDir
        do throws(UnpackError) {
            options.signaturePolicy = try policyFlags.options()
        } catch {
            throw CLIFailure(error: error, json: json).report()
        }
        guard verifierTimeout > 0, verifierTimeout.isFinite else {
            throw CLIFailure(
                error: UnpackError(.invalidArgument, "--verifier-timeout must be a positive number of seconds"),
                json: json
            ).report()
        }
        options.verifierTimeout = verifierTimeout
        do throws(UnpackError) {
            options.limits = try decoding.limits(from: options.limits)
        } catch {
            throw CLIFailure(error: error, json: false).report()
        }
        options.overrides = ConfigOverrides(
            env: env, user: user, workingDir: workingDir, args: command.isEmpty ? nil : command,
            entrypoint: entrypoint.isEmpty ? nil : entrypoint)
        if progress != nil || json {
            options.progress = { report in
                progress?.update(report)
                recorder.progress(report)
            }
        }
        let templatePath = template
        let request: ResolutionRequest
        do {
            request = try resolution.request()
        } catch {
            throw CLIFailure(error: error, json: false).report()
        }
        let outcome = Result { () throws(UnpackError) -> UnpackResult in
            if let templatePath { options.template = try UnpackOptions.template(at: templatePath) }
            if let store {
                return try unpacker.unpack(
                    image, into: bundle, store: store, mount: noMount ? .describeOnly : .mount, request: request,
                    options: options)
            }
            return try unpacker.unpack(image, into: bundle, request: request, options: options)
        }
        progress?.finish()
        switch outcome {
        case .success(let result):
            if json {
                try printJSON(
                    UnpackDocument(
                        result: result, store: store, warnings: recorder.warnings, seconds: recorder.seconds))
            } else if !quiet {
                let entries = result.entries.reduce(0, +)
                print(
                    "unpacked \(result.image.reference) (\(result.image.platform), manifest \(result.image.manifestDescriptor.digest)) into \(result.bundle): \(counted(result.image.layers.count, "layer")), \(counted(entries, "entry", "entries")), config.json"
                )
            }
        case .failure(let error):
            throw CLIFailure(error: error, json: json).report()
        }
    }
}

extension Unpack {
    /// `--userns auto` outside the namespace: finds the user's subordinate ids and runs this
    /// command again as root in a namespace that maps them; returns its exit status.
    func launchInUserNamespace() throws -> Int32 {
        func fail(_ error: UnpackError) -> Error { CLIFailure(error: error, json: false).report() }
        guard geteuid() != 0 else {
            throw fail(
                UnpackError(
                    .invalidArgument,
                    "--userns auto is for ordinary users; root shifts owners with --uid-map and --gid-map"))
        }
        let uid = getuid()
        let gid = getgid()
        let name = getpwuid(uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } }
        // Both files name the user (subuid(5), subgid(5)).
        func ranges(_ file: String) throws -> [(start: UInt32, count: UInt32)] {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            let found = UserNamespace.subordinateRanges(in: text, name: name, id: uid)
            guard !found.isEmpty else {
                throw fail(
                    UnpackError(
                        .permissionDenied,
                        "--userns auto needs subordinate ids for user \(name ?? String(uid)) in \(file) (none found; see subuid(5))"
                    ))
            }
            return found
        }
        let uids = UserNamespace.layout(id: uid, ranges: try ranges("/etc/subuid"))
        let gids = UserNamespace.layout(id: gid, ranges: try ranges("/etc/subgid"))
        let outcome: UserNamespace.Outcome
        do throws(SystemError) {
            outcome = try UserNamespace.launch(uids: uids, gids: gids)
        } catch {
            throw fail(error.unpackError("--userns auto: cannot start the unpacker in a user namespace"))
        }
        switch outcome {
        case .exited(let status):
            return status
        case .mappingFailed(let tool, let status):
            throw fail(
                UnpackError(
                    .permissionDenied,
                    "--userns auto: \(tool) could not write the map (exit status \(status)); it needs Debian's uidmap package and ranges in /etc/subuid and /etc/subgid"
                ))
        }
    }
}
