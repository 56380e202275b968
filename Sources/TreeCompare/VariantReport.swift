import OCIImage
import Resolution

/// What `verify-variants` found: per platform, whether every variant of the image yields the same
/// filesystem. Its `Encodable` form is the documented `verify-variants --json` object
/// (docs/verify-variants.md): keys are stable; new keys may be added.
public struct VariantReport: Sendable, Encodable {
    /// The outcome of a group, and of the whole report (the worst of its groups).
    public enum Verdict: String, Sendable, Encodable, Comparable {
        /// Every variant verified and yields the same filesystem (and execution config).
        case agree
        /// No variant of the group can be unpacked (for example attestation manifests): nothing to
        /// compare, and not a failure.
        case skipped
        /// Some variants cannot be unpacked by oci-unpack (media type, missing config, unknown
        /// digest algorithm); those that can agree.
        case incomplete
        /// Two verified variants yield different filesystems or execution configs.
        case differ
        /// A variant failed verification: a digest, size, diff_id or tar stream is wrong.
        case failed

        private var severity: Int {
            switch self {
            case .agree: 0
            case .skipped: 1
            case .incomplete: 2
            case .differ: 3
            case .failed: 4
            }
        }

        /// Orders verdicts from best (agree) to worst (failed).
        public static func < (a: Verdict, b: Verdict) -> Bool { a.severity < b.severity }
    }

    /// One layer of a variant.
    public struct Layer: Sendable, Encodable, Equatable {
        /// The layer's position in the manifest, counting from 0.
        public let index: Int
        /// The blob's digest.
        public let digest: Digest
        /// The layer's media type.
        public let mediaType: MediaType
        /// `gzip`, `zstd` or `none`.
        public let compression: LayerCompression
        /// `zstd:chunked` or `estargz` when the descriptor's annotations say so.
        public let format: String?
        /// The blob's size in bytes.
        public let size: Int64
        /// The digest of the uncompressed tar stream, from the config.
        public let diffID: Digest
    }

    /// One manifest of a group.
    public struct Variant: Sendable, Encodable {
        /// What became of the variant.
        public enum Status: String, Sendable, Encodable {
            /// Verified; the one the others are compared with (the first verified in index order).
            case reference
            /// Verified and the same as the reference.
            case same
            /// Verified and different from the reference.
            case differs
            /// Verification failed.
            case failed
            /// oci-unpack cannot unpack it (see `reason`).
            case refused
        }

        /// The manifest's digest.
        public let digest: Digest
        /// The manifest's media type.
        public let mediaType: MediaType
        /// `gzip`, `zstd`, `none` or `mixed(a+b)`, when the layers are known.
        public let compression: String?
        /// The index entry's annotations.
        public let annotations: [String: String]
        /// The config's digest, when the manifest was read.
        public let config: Digest?
        /// The layers, in the order they apply.
        public let layers: [Layer]
        /// What became of the variant.
        public internal(set) var status: Status
        /// For `same`: `config` (same config digest), `diff_ids` (same layer diff_ids) or `tree`
        /// (equal tree listings).
        public internal(set) var sameBy: String?
        /// For `failed` and `refused`: why.
        public internal(set) var reason: String?
        /// For `failed` and `refused`: the error code's name (docs/exit-codes.md).
        public internal(set) var errorCode: String?
        /// The digest of the variant's tree listing, when its tree was built.
        public internal(set) var treeDigest: Digest?
        /// Execution-config fields (`Env`, `Cmd`, …) that differ from the reference's.
        public internal(set) var configDifferences: [String] = []
        /// The first paths whose listing differs from the reference's.
        public internal(set) var differences: [TreeListing.Difference] = []
        /// How many paths differ in all.
        public internal(set) var differenceCount = 0
        /// For an alternative (`--alternatives`): the manifest whose annotations named it (for an
        /// alternative manifest, its original entry; for layer alternatives, the manifest itself).
        public internal(set) var alternativeOf: Digest?
        /// For the layer form: the positions of the layers read from their alternatives.
        public internal(set) var alternativeLayers: [Int] = []

        var failure: UnpackError.Code?
    }

    /// The variants of one platform.
    public struct Group: Sendable, Encodable {
        /// The platform, normalised (`unknown` when neither the entry nor a config says).
        public let platform: String
        /// The group's outcome.
        public internal(set) var verdict: Verdict
        /// The group's manifests, in index order.
        public internal(set) var variants: [Variant]
        /// Index entries for this platform (or for no stated platform) whose digests cannot be
        /// verified: the group cannot be proven whole while they exist.
        public internal(set) var unverifiable: [ResolvedImage.UnverifiableEntry] = []
    }

    /// The image reference as understood.
    public let reference: String
    /// The source's name (a layout's path).
    public let layout: String
    /// Whether modification times were left out of the comparison.
    public let ignoreMtime: Bool
    /// One group per platform, in the order their first entries appear.
    public internal(set) var groups: [Group]

    /// The worst verdict of all groups.
    public var verdict: Verdict { groups.map(\.verdict).max() ?? .skipped }

    /// What the report amounts to as an error code: nil when every group agrees or was skipped;
    /// else `variantsDiffer` for a difference, the code of the first failed variant, or of the
    /// first refusal when some variants could not be unpacked (`unsupportedMediaType` when only
    /// unverifiable entries left a group incomplete).
    public var outcome: UnpackError.Code? {
        switch verdict {
        case .agree, .skipped: return nil
        case .differ: return .variantsDiffer
        case .failed, .incomplete:
            let wanted: Variant.Status = verdict == .failed ? .failed : .refused
            for group in groups {
                for variant in group.variants where variant.status == wanted {
                    if let code = variant.failure { return code }
                }
            }
            // Incomplete through unverifiable entries alone.
            return .unsupportedMediaType
        }
    }

    enum CodingKeys: String, CodingKey {
        case reference, layout, ignoreMtime, verdict, groups
    }

    /// Writes the documented `verify-variants --json` object, except `exitCode` (a process
    /// status, which the command line adds).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(reference, forKey: .reference)
        try c.encode(layout, forKey: .layout)
        try c.encode(ignoreMtime, forKey: .ignoreMtime)
        try c.encode(verdict, forKey: .verdict)
        try c.encode(groups, forKey: .groups)
    }
}

extension VariantReport.Variant {
    enum CodingKeys: String, CodingKey {
        case digest, mediaType, compression, annotations, config, layers, status, sameBy, reason, errorCode
        case treeDigest, configDifferences, differences, differenceCount, alternativeOf, alternativeLayers
    }

    /// Writes the variant object, leaving out the optional keys that have no value.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(digest, forKey: .digest)
        try c.encode(mediaType, forKey: .mediaType)
        try c.encodeIfPresent(compression, forKey: .compression)
        try c.encode(annotations, forKey: .annotations)
        try c.encodeIfPresent(config, forKey: .config)
        try c.encode(layers, forKey: .layers)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(sameBy, forKey: .sameBy)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(errorCode, forKey: .errorCode)
        try c.encodeIfPresent(treeDigest, forKey: .treeDigest)
        try c.encode(configDifferences, forKey: .configDifferences)
        try c.encode(differences, forKey: .differences)
        try c.encode(differenceCount, forKey: .differenceCount)
        try c.encodeIfPresent(alternativeOf, forKey: .alternativeOf)
        if !alternativeLayers.isEmpty { try c.encode(alternativeLayers, forKey: .alternativeLayers) }
    }
}
