import Glibc

/// An image platform: `os/architecture[/variant]`, plus the optional `os.version` and `os.features`.
public struct Platform: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The operating system (`os`), e.g. `linux`.
    public var os: String
    /// The CPU architecture (`architecture`), e.g. `amd64` or `arm64`.
    public var architecture: String
    /// The variant of the CPU architecture (`variant`), e.g. `v7` for `arm`.
    public var variant: String?
    /// The operating system version (`os.version`), used mainly by Windows images.
    public var osVersion: String?
    /// The operating system features required (`os.features`).
    public var osFeatures: [String]?

    enum CodingKeys: String, CodingKey {
        case os
        case architecture
        case variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    /// A platform with the given fields, kept as given (not normalised).
    public init(
        os: String, architecture: String, variant: String? = nil, osVersion: String? = nil, osFeatures: [String]? = nil
    ) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
        self.osVersion = osVersion
        self.osFeatures = osFeatures
    }

    /// Parses `os/arch[/variant]` or `os(os.version)/arch[/variant]` (containerd's syntax). The result
    /// is normalised; a bare architecture such as `arm64` means `linux/arm64`.
    public init(parsing string: String) throws(UnpackError) {
        let parts = string.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let bad = UnpackError(
            .invalidArgument,
            "invalid platform \"\(string.truncatedForMessage)\": expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7"
        )
        guard (1...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else { throw bad }
        var os: String
        var arch: String
        var variant: String?
        if parts.count == 1 {
            os = "linux"
            arch = parts[0]
        } else {
            os = parts[0]
            arch = parts[1]
            variant = parts.count == 3 ? parts[2] : nil
        }
        var osVersion: String?
        if let open = os.firstIndex(of: "(") {
            guard os.hasSuffix(")") else { throw bad }
            osVersion = String(os[os.index(after: open)..<os.index(before: os.endIndex)])
            os = String(os[..<open])
            guard !os.isEmpty, osVersion?.isEmpty == false else { throw bad }
        }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        guard [os, arch, variant ?? ""].allSatisfy({ $0.allSatisfy(allowed.contains) }) else { throw bad }
        self.init(os: os, architecture: arch, variant: variant, osVersion: osVersion)
        self = normalized
    }

    /// `os/arch[/variant]`, with `(os.version)` after the os when set.
    public var description: String {
        var s = os
        if let osVersion { s += "(\(osVersion))" }
        s += "/\(architecture)"
        if let variant, !variant.isEmpty { s += "/\(variant)" }
        return s
    }

    /// The same platform written the canonical way (containerd's normalisation): `x86_64`→`amd64`,
    /// `aarch64`→`arm64`, `armhf`→`arm/v7`, `armel`→`arm/v6`, `arm`→`arm/v7`, `arm64/v8`→`arm64`,
    /// `amd64/v1`→`amd64`, `i686`→`386`, variants `7`→`v7`.
    public var normalized: Platform {
        var p = self
        p.os = os.lowercased()
        if p.os == "macos" { p.os = "darwin" }
        var arch = architecture.lowercased()
        var variant = self.variant?.lowercased() ?? ""
        if !variant.isEmpty, variant.first?.isNumber == true { variant = "v" + variant }
        switch arch {
        case "i386", "i486", "i586", "i686", "x86", "386":
            arch = "386"
            variant = ""
        case "x86_64", "x86-64", "amd64":
            arch = "amd64"
            if variant == "v1" { variant = "" }
        case "aarch64", "arm64":
            arch = "arm64"
            if variant == "v8" || variant == "v8.0" { variant = "" }
        case "armhf":
            arch = "arm"
            variant = "v7"
        case "armel":
            arch = "arm"
            variant = "v6"
        case "arm":
            if variant.isEmpty { variant = "v7" }
        default:
            break
        }
        p.architecture = arch
        p.variant = variant.isEmpty ? nil : variant
        if let features = p.osFeatures, features.isEmpty { p.osFeatures = nil }
        return p
    }

    /// How well an image's platform serves this (requested) platform: `nil` when it cannot run here,
    /// otherwise a rank where 0 is an exact match and larger numbers are weaker fallbacks.
    ///
    /// Fallbacks follow containerd: `arm/v8` runs v7, v6, v5; `arm/v7` runs v6, v5; `amd64/v4` runs
    /// v3, v2, v1. `arm64` does not fall back to 32-bit `arm` (strict). When `os.version` is asked for,
    /// an image with the same version ranks first and one without a version after it; an image
    /// requiring `os.features` matches only when each of them was asked for.
    public func matchRank(of candidate: Platform) -> Int? {
        let want = normalized
        let have = candidate.normalized
        guard want.os == have.os, want.architecture == have.architecture else { return nil }
        let variantDistance: Int
        if want.variant == have.variant {
            variantDistance = 0
        } else if let ladder = Self.variantLadders[want.architecture],
            let wantStep = ladder.firstIndex(of: want.variant ?? ""),
            let haveStep = ladder.firstIndex(of: have.variant ?? ""),
            haveStep > wantStep
        {
            variantDistance = haveStep - wantStep
        } else {
            return nil
        }
        var versionPenalty = 0
        if let wantVersion = want.osVersion {
            if let haveVersion = have.osVersion {
                guard haveVersion == wantVersion else { return nil }
            } else {
                versionPenalty = 1
            }
        }
        if let required = have.osFeatures {
            let offered = Set(want.osFeatures ?? [])
            guard required.allSatisfy(offered.contains) else { return nil }
        }
        return variantDistance * 2 + versionPenalty
    }

    /// Variants from the most to the least capable; a request accepts its own step and those after it.
    private static let variantLadders: [String: [String]] = [
        "arm": ["v8", "v7", "v6", "v5"],
        "amd64": ["v4", "v3", "v2", ""],
    ]

    /// The platform of the machine running this code (os from the build, architecture from uname).
    public static var host: Platform {
        #if os(Linux)
            let os = "linux"
        #elseif os(macOS)
            let os = "darwin"
        #else
            let os = "unknown"
        #endif
        var name = utsname()
        uname(&name)
        let machine = withUnsafeBytes(of: &name.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        var arch = machine
        var variant: String?
        if machine.hasPrefix("armv") {
            arch = "arm"
            variant = "v" + String(machine.dropFirst(4).prefix(while: \.isNumber))
        }
        return Platform(os: os, architecture: arch, variant: variant).normalized
    }
}
