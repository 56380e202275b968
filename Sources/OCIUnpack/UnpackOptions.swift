import Glibc
import LayerApply
import LayerStream
import OCIImage
import RuntimeBundle
import Synchronization
import UnpackSystem

/// Progress of one layer, reported between entries and when a layer ends.
public struct UnpackProgress: Sendable {
    /// The layer's position in the manifest, from 0.
    public let layerIndex: Int
    /// How many layers the image has.
    public let layerCount: Int
    /// The layer blob's digest.
    public let digest: Digest
    /// Compressed bytes of the blob read so far.
    public let bytesDone: Int64
    /// The blob's size.
    public let bytesTotal: Int64
    /// Whether this is the report at the layer's end.
    public let layerFinished: Bool
}

/// The gzip implementation used for gzip layers.
public enum GzipDecoder: String, Sendable, CaseIterable {
    /// Intel's ISA-L inflate: the fast one, and the default.
    case isal
    /// zlib: the reference implementation.
    case zlib

    var implementation: LayerDecoder.GzipImplementation {
        switch self {
        case .isal: .isal
        case .zlib: .zlib
        }
    }
}

/// A way to stop an unpack from outside: between tar entries (and between the blocks of a large
/// file) the unpacker checks it, and a cancelled unpack removes its staging directory and throws
/// `interrupted`, leaving the target as it was.
public final class Cancellation: Sendable {
    private let cancelled = Atomic<Bool>(false)
    private let watchesSignals: Bool

    /// A token cancelled only by ``cancel()``.
    public convenience init() { self.init(watchesSignals: false) }

    private init(watchesSignals: Bool) { self.watchesSignals = watchesSignals }

    /// A token that the terminating signals `Interrupts` records cancel too. The library never
    /// installs signal handlers: the command line does (`Interrupts.install()`), as it owns its
    /// process's signals.
    package static func watchingSignals() -> Cancellation {
        Cancellation(watchesSignals: true)
    }

    /// Asks the unpack to stop.
    public func cancel() { cancelled.store(true, ordering: .relaxed) }

    /// Whether ``cancel()`` was called (or a watched signal arrived).
    public var isCancelled: Bool {
        cancelled.load(ordering: .relaxed) || (watchesSignals && Interrupts.pending != nil)
    }

    /// Throws `interrupted` once cancelled, naming the signal when one did it.
    func check() throws(UnpackError) {
        if watchesSignals { try Interrupts.check() }
        if cancelled.load(ordering: .relaxed) { throw UnpackError(.interrupted, "cancelled") }
    }
}

/// How `Unpacker.unpack` works: what to do with an existing bundle, progress, cancellation,
/// limits, the config.json template and overrides.
public struct UnpackOptions: Sendable {
    /// Replace an existing non-empty bundle (only after everything succeeded).
    public var force: Bool
    /// Receives each layer's progress.
    public var progress: (@Sendable (UnpackProgress) -> Void)?
    /// Checked between entries; `nil`: the unpack cannot be stopped.
    public var cancellation: Cancellation?
    /// The gzip implementation.
    public var gzipDecoder: GzipDecoder = .isal
    /// The runtime-spec template for `config.json`; `nil`: the built-in bundle-templates/default.json.
    public var template: JSONValue?
    /// Changes to the converted configuration (what the command line's `--env`, `--user`, … give).
    public var overrides: ConfigOverrides
    /// `--verifier-dir DIR`: every executable file there is run, as containerd 2.0's image
    /// verifiers are, for the resolved image before any layer is fetched; all must exit 0.
    public var verifierDirectory: String?
    /// Seconds each verifier program may take before it (and its process group) is killed.
    public var verifierTimeout: Double = 10
    /// The signature policy the image must satisfy, decided on its manifest digest before any
    /// layer is fetched (`--policy`, `--insecure-policy`, `--require-policy`, `--registries.d`).
    public var signaturePolicy = SignaturePolicyOptions()
    /// How entries are applied (owners, warnings, limits; test hooks).
    package var apply: ApplyOptions
    /// Decompress and hash on helper threads, ahead of tar parsing and application.
    package var prefetch = true

    /// - Parameters:
    ///   - force: replace an existing non-empty bundle, only after everything succeeded.
    ///   - ownership: whose ids the files get: the image's (root), rootless (anybody else: owners
    ///     recorded in `user.rootlesscontainers` xattrs), or shifted through id maps (root).
    ///   - warn: receives warnings (skipped devices, owners not restored, libarchive warnings).
    ///   - progress: receives each layer's progress.
    ///   - cancellation: checked between entries; `nil`: the unpack cannot be stopped.
    ///   - template: the runtime-spec template for `config.json`; `nil`: the built-in default.
    ///   - overrides: changes to the converted configuration.
    ///   - limits: the resource limits.
    public init(
        force: Bool = false, ownership: Ownership = .automatic,
        warn: @escaping @Sendable (String) -> Void = { _ in }, progress: (@Sendable (UnpackProgress) -> Void)? = nil,
        cancellation: Cancellation? = nil, template: JSONValue? = nil, overrides: ConfigOverrides = .init(),
        limits: UnpackLimits = .init()
    ) {
        self.init(
            force: force, apply: ApplyOptions(ownership: ownership, warn: warn), progress: progress,
            cancellation: cancellation, template: template, overrides: overrides, limits: limits)
    }

    package init(
        force: Bool = false, apply: ApplyOptions, progress: (@Sendable (UnpackProgress) -> Void)? = nil,
        cancellation: Cancellation? = nil, template: JSONValue? = nil, overrides: ConfigOverrides = .init(),
        limits: UnpackLimits = .init()
    ) {
        self.force = force
        self.apply = apply
        self.progress = progress
        self.cancellation = cancellation
        self.template = template
        self.overrides = overrides
        self.apply.limits = limits
    }

    /// The resource limits.
    public var limits: UnpackLimits {
        get { apply.limits }
        set { apply.limits = newValue }
    }

    /// Reads a runtime-spec template for `template` (strict JSON; errors name the byte offset).
    public static func template(at path: String) throws(UnpackError) -> JSONValue {
        try RuntimeConfig.template(at: path)
    }

    /// Whose ids the files get.
    public var ownership: Ownership {
        get { apply.ownership }
        set { apply.ownership = newValue }
    }

    /// Where warnings go.
    public var warn: @Sendable (String) -> Void {
        get { apply.warn }
        set { apply.warn = newValue }
    }
}

/// What `unpack` produced.
public struct UnpackResult: Sendable {
    /// The image as it was resolved: the chosen manifest, its config and layers, and why.
    public let image: ResolvedImage
    /// The bundle directory (`config.json` and `rootfs/`).
    public let bundle: String
    /// The root filesystem inside the bundle.
    public var rootfs: String { bundle + "/rootfs" }
    /// Tar entries applied, per layer.
    public let entries: [Int]
    /// Which place served each layer's blob, for a registry pull through mirrors or a cache
    /// (`mirror HOST/REPOSITORY`, `registry HOST/REPOSITORY`, `cache DIR`); nil for a layer not
    /// fetched (already in the layer store) and for a layout or an archive.
    public var layerOrigins: [String?] { image.layers.map { image.source.origin(of: $0.descriptor.digest) } }
}
