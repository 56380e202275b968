import OCIImage
import Resolution
import TreeCompare

/// The canonical listing of a root filesystem (see docs/verify-variants.md).
public typealias TreeListing = TreeCompare.TreeListing

/// How `verify-variants` and `tree-digest` read an image.
public struct VerifyOptions: Sendable {
    /// Size caps, as for an unpack (uncompressed bytes, expansion ratio, entries, paths).
    public var limits: UnpackLimits
    /// Leave modification times out of listings and comparisons.
    public var ignoreMtime: Bool
    /// Which gzip decoder reads gzip layers.
    public var gzipDecoder: GzipDecoder
    /// How many differing paths a variant's report names at most (all are counted).
    public var maxDifferences: Int
    /// Receives warnings (sockets skipped, libarchive warnings).
    public var warn: @Sendable (String) -> Void
    /// The annotation key whose value names an alternative descriptor, or nil to ignore
    /// alternatives; with one, each alternative is verified against its original.
    public var alternativeAnnotation: String? = nil

    /// Options with the default limits, mtimes compared, isa-l for gzip, ten differences named.
    public init(
        limits: UnpackLimits = .init(), ignoreMtime: Bool = false, gzipDecoder: GzipDecoder = .isal,
        maxDifferences: Int = 10, warn: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.limits = limits
        self.ignoreMtime = ignoreMtime
        self.gzipDecoder = gzipDecoder
        self.maxDifferences = maxDifferences
        self.warn = warn
    }
}

/// What `verify-variants` found: per platform, whether every variant of the image yields the same
/// filesystem (see docs/verify-variants.md).
public typealias VariantReport = TreeCompare.VariantReport
