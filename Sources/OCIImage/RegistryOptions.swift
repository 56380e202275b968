import FoundationEssentials
import Glibc

/// How to reach registries (`docker://` references): credentials and TLS.
public struct RegistryOptions: Sendable {
    /// `--creds USER[:PASSWORD]`: used for every registry, before any auth file.
    public var credentials: (user: String, password: String)?
    /// `--authfile FILE`: read instead of the usual files.
    public var authFile: String?
    /// `--tls-verify=false`: skip certificate verification and allow plain HTTP, for this run.
    public var tlsVerify: Bool
    /// `--cert-dir DIR`: `*.crt` CA certificates, and `*.cert`/`*.key` client pairs, as
    /// containers-certs.d lays them out.
    public var certDirectory: String?

    /// `--cache DIR`: where pulled blobs are kept and looked for first; `nil` for no cache.
    public var cache: CacheOptions?

    /// `--speed-limit`: the fewest bytes per second a transfer may move, averaged over
    /// ``minimumRateWindow`` seconds in which oci-unpack waited for it, before it counts as a failed
    /// connection (retried, a blob resumed where it stopped); 0 turns the check off. As curl's
    /// `--speed-limit`, with a default, since a registry that trickles would otherwise hold a pull
    /// for days.
    public var minimumRate: Int = 1024
    /// `--speed-time`: the window, in seconds, over which ``minimumRate`` is measured.
    public var minimumRateWindow: Int = 30
    /// `--command-timeout`: seconds within which everything that waits on a registry (requests,
    /// downloads, retries and their pauses, credential helpers) must be done, counted from the
    /// registry's first use; `nil`: no overall deadline.
    public var commandTimeout: Double?
    /// Seconds a credential helper may take before it (and its process group) is killed.
    public var helperTimeout: Double = 30
    /// `--retry-times`: how many times one request is tried again after a failed connection, a 429
    /// or a 5xx (skopeo's option; 0: tried once).
    public var retryTimes: Int = 4
    /// `--retry-delay`: a fixed pause, in seconds, before each retry; `nil`: 0.5 s doubling to 8 s.
    /// A server's `Retry-After` is honoured either way (at most 30 s).
    public var retryDelay: Double?

    /// registries.conf's settings (mirrors, locations, insecure and blocked namespaces) when
    /// given; `nil`: read as ``readsRegistriesConf`` says.
    public var registriesConf: RegistriesConf?
    /// With no ``registriesConf``, read the files podman reads (``RegistriesConf/load``) when a
    /// registry is first reached: `--registries-conf` (``registriesConfFile``),
    /// `$CONTAINERS_REGISTRIES_CONF`, else the user's or the system's file and drop-ins. The
    /// command line does; a library user opts in.
    public var readsRegistriesConf = false
    /// `--registries-conf FILE`: read this file alone.
    public var registriesConfFile: String?
    /// `--hosts-dir DIR`: containerd's registry host configuration (``ContainerdHosts``), read for
    /// the registry each reference is pulled from (after registries.conf chose its location);
    /// `nil`: none.
    public var hostsDirectory: String?
    /// containerd's default `config_path`, which the command line reads when it exists.
    public static let defaultHostsDirectory = "/etc/containerd/certs.d"

    /// When the registry is asked about a reference the cache already resolves (`--pull`).
    public enum PullPolicy: String, Sendable, CaseIterable {
        /// Only when the cache lacks the tag's manifest (or a blob): a cached tag is used as it was
        /// pulled, without the network (podman's default).
        case missing
        /// Always ask the registry what a tag names now; blobs already cached are not fetched again.
        case always
        /// Never: what the cache lacks is an error.
        case never
    }

    /// The blob cache (`--cache DIR`, `--cache-max-size`, `--pull`).
    public struct CacheOptions: Sendable {
        /// The cache directory: an OCI layout, made if missing.
        public var path: String
        /// Bytes the cached blobs may take together; least recently used blobs go first. `nil`: unbounded.
        public var maxSize: Int64?
        /// When the registry is asked about a tag the cache recorded (`--pull`).
        public var pull: PullPolicy

        /// A cache at `path`, unbounded unless `maxSize`, asking registries only for what it lacks.
        public init(path: String, maxSize: Int64? = nil, pull: PullPolicy = .missing) {
            self.path = path
            self.maxSize = maxSize
            self.pull = pull
        }
    }

    /// Anonymous, with the system's trust store.
    public init(
        credentials: (user: String, password: String)? = nil, authFile: String? = nil, tlsVerify: Bool = true,
        certDirectory: String? = nil, cache: CacheOptions? = nil
    ) {
        self.credentials = credentials
        self.authFile = authFile
        self.tlsVerify = tlsVerify
        self.certDirectory = certDirectory
        self.cache = cache
    }

    /// Parses `--creds USER[:PASSWORD]`.
    public static func parseCredentials(_ text: String) throws(UnpackError) -> (user: String, password: String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let user = parts.first, !user.isEmpty else {
            throw UnpackError(.invalidArgument, "--creds needs USER[:PASSWORD]")
        }
        return (String(user), parts.count > 1 ? String(parts[1]) : "")
    }
}

/// What reaches registries for `docker://` references: ``Unpacker`` asks it for the source of such
/// a reference. It is kept apart from the rest (the `OCIUnpackRegistries` library provides it, on
/// AsyncHTTPClient and swift-nio), so that a program that only reads local images does not carry
/// the HTTP stack, whose size every Swift program start pays for (the runtime's conformance
/// lookups search every record the binary holds).
public protocol RegistryAccess: Sendable {
    /// The source of images for `reference` (a `docker://` reference), reached as `options` says;
    /// `onWarning` takes what is worth saying but does not stop the run (a blob not cached).
    func openSource(
        _ reference: ImageReference, options: RegistryOptions, limits: DocumentLimits,
        onWarning: @escaping @Sendable (String) -> Void
    ) throws(UnpackError) -> any ImageSource
}
