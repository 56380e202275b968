import OCIImage

/// The outcome of resolution: the chosen manifest and config, its layers, and the explanation
/// (path through indexes and every candidate with its decision).
///
/// Its `Encodable` form is the documented `oci-unpack inspect --json` object (docs/inspect-json.md):
/// keys are stable; new keys may be added.
public struct ResolvedImage: Sendable, Encodable {
    /// Where a candidate's platform came from.
    public enum PlatformSource: String, Sendable, Encodable {
        case descriptor
        case config
    }

    /// One index or manifest walked on the way from the reference to the candidates.
    public struct Step: Sendable, Encodable, Equatable {
        /// The digest of the index or manifest.
        public let digest: Digest
        /// The media type of the index or manifest.
        public let mediaType: MediaType
        /// How it was reached, e.g. `tag "latest" in index.json` or `nested in index sha256:…`.
        public let selectedBy: String
        /// Number of entries, for an index.
        public var entries: Int?
    }

    /// One manifest-level entry that was considered.
    public struct Candidate: Sendable, Encodable, Equatable {
        /// What became of a candidate: chosen, passed over (usable but ranked lower) or refused (not usable).
        public enum Status: String, Sendable, Encodable {
            case chosen
            case passedOver = "passed-over"
            case refused
        }

        /// The digest of the entry.
        public let digest: Digest
        /// The media type the entry's descriptor declares.
        public let mediaType: MediaType
        /// The size in bytes the entry's descriptor declares.
        public let size: Int64
        /// The digests of the indexes it was reached through, outermost first.
        public let indexPath: [Digest]
        /// Its normalised platform, when known.
        public let platform: Platform?
        /// Whether the platform came from the index entry or from the image config.
        public let platformSource: PlatformSource?
        /// The compression of its layers (`gzip`, `zstd`, `none` or `mixed(a+b)`), when all were examined.
        public let compression: String?
        /// The descriptor's annotations, empty when it has none.
        public let annotations: [String: String]
        /// Whether it was chosen, passed over or refused.
        public let status: Status
        /// Why it was passed over or refused; absent for the chosen one.
        public let reason: String?
        /// For an alternative manifest (`--alternatives`): the entry whose annotation named it.
        public var alternativeOf: Digest? = nil
    }

    /// An alternative descriptor an annotation named (`--alternatives`), and what became of it.
    public struct Alternative: Sendable, Encodable, Equatable {
        /// Which proposal's form.
        public enum Form: String, Sendable, Encodable {
            /// An index entry naming an equivalent manifest.
            case manifest
            /// A layer descriptor naming the same layer in another compression.
            case layer
        }

        /// What became of it.
        public enum Status: String, Sendable, Encodable {
            /// Used in place of its original.
            case chosen
            /// Usable, but the original ranks at least as well.
            case passedOver = "passed-over"
            /// Its blob is not in the source: the original is used (with a warning).
            case missing
            /// Not usable for the request (another platform, a manifest oci-unpack cannot unpack).
            case refused
        }

        /// Manifest or layer.
        public let form: Form
        /// The layer's position, for the layer form.
        public let layer: Int?
        /// The digest of the descriptor whose annotation named it.
        public let original: Digest
        /// The alternative's digest.
        public let alternative: Digest
        /// The alternative's media type.
        public let mediaType: MediaType
        /// The alternative's compression, for a layer (`zstd`, `gzip`, `none`) or a manifest when known.
        public let compression: String?
        /// The annotation key that named it.
        public let annotation: String
        /// Chosen, passed over, missing or refused.
        public var status: Status
        /// Why it was passed over, missing or refused.
        public var reason: String?
    }

    /// One layer of the chosen manifest.
    public struct Layer: Sendable, Encodable, Equatable {
        /// The layer's position in the manifest, counting from 0.
        public let index: Int
        /// The layer's descriptor from the manifest.
        public let descriptor: Descriptor
        /// How the layer's tar stream is compressed, from its media type.
        public let compression: LayerCompression
        /// The digest of the uncompressed tar stream, from the config's `rootfs.diff_ids`.
        public let diffID: Digest

        /// When the layer is read from an alternative (`--alternatives`): the descriptor the
        /// manifest lists, whose annotation named ``descriptor``.
        public let alternativeOf: Descriptor?

        /// A layer with the given position, descriptor, compression and diff_id; `alternativeOf`
        /// is the manifest's own descriptor when `descriptor` is the alternative it names.
        public init(
            index: Int, descriptor: Descriptor, compression: LayerCompression, diffID: Digest,
            alternativeOf: Descriptor? = nil
        ) {
            self.index = index
            self.descriptor = descriptor
            self.compression = compression
            self.diffID = diffID
            self.alternativeOf = alternativeOf
        }

        enum CodingKeys: String, CodingKey {
            case index, digest, mediaType, compression, format, size, diffID, alternativeOf
        }

        /// Writes the `inspect --json` layer object `{index, digest, mediaType, compression, size, diffID}`,
        /// with `format` (`zstd:chunked`, `estargz`) when the layer's annotations name one, and
        /// `alternativeOf` (the manifest's own descriptor's digest) when it is read from an alternative.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(descriptor.digest, forKey: .digest)
            try c.encode(descriptor.mediaType, forKey: .mediaType)
            try c.encode(compression, forKey: .compression)
            try c.encodeIfPresent(descriptor.layerFormat, forKey: .format)
            try c.encode(descriptor.size, forKey: .size)
            try c.encode(diffID, forKey: .diffID)
            try c.encodeIfPresent(alternativeOf?.digest, forKey: .alternativeOf)
        }
    }

    /// An index entry that cannot be a candidate: its digest's algorithm cannot be verified.
    public struct UnverifiableEntry: Sendable, Encodable, Equatable {
        /// The index that lists it; nil for the layout's `index.json`.
        public let index: Digest?
        /// The entry as written.
        public let entry: Index.UnverifiableEntry

        enum CodingKeys: String, CodingKey {
            case index, position, digest, mediaType, platform, reason
        }

        /// Writes `{index, position, digest, mediaType, platform, reason}` (index and platform when known).
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(index, forKey: .index)
            try c.encode(entry.position, forKey: .position)
            try c.encode(entry.digest, forKey: .digest)
            try c.encode(entry.mediaType, forKey: .mediaType)
            try c.encodeIfPresent(entry.platform?.normalized.description, forKey: .platform)
            try c.encode(entry.reason, forKey: .reason)
        }
    }

    /// The image reference as understood, in its canonical `oci:` form.
    public let reference: String
    /// The reference it was resolved from (what a signature policy decides on).
    public internal(set) var imageReference: ImageReference?
    /// The source the image was resolved in (its blobs are read from there).
    public let source: any ImageSource
    /// The source's name (a layout's path), as `inspect --json` reports it under `layout`.
    public var layoutPath: String { source.name }
    /// The platform and compression order the image was resolved for.
    public let request: ResolutionRequest
    /// The root entry and every index walked, in order.
    public let steps: [Step]
    /// Every manifest-level entry found below the root, in index order, with its decision.
    public let candidates: [Candidate]
    /// The descriptor of the chosen manifest.
    public let manifestDescriptor: Descriptor
    /// The chosen manifest.
    public let manifest: Manifest
    /// The chosen manifest's image configuration.
    public let config: ImageConfig
    /// The layers of the chosen manifest, in the order they are applied.
    public let layers: [Layer]
    /// Entries of the indexes walked that could not be candidates (their digests cannot be
    /// verified), in the order found.
    public internal(set) var unverifiable: [UnverifiableEntry] = []
    /// The alternatives annotations named (`--alternatives`), for the chosen manifest's entry and
    /// layers and for the other candidates' entries, in the order found.
    public internal(set) var alternatives: [Alternative] = []
    /// What an unpack of this image warns about before it starts (an alternative whose blob is missing).
    public var warnings: [String] {
        alternatives.filter { $0.status == .missing }.map { alternative in
            let what = alternative.layer.map { "layer \($0)'s alternative" } ?? "the alternative manifest"
            return "\(what) \(alternative.alternative) is missing: \(alternative.reason ?? "its blob is not there")"
        }
    }

    /// The chosen candidate's platform (from its descriptor, else its config).
    public var platform: Platform {
        candidates.first(where: { $0.status == .chosen })?.platform ?? config.platform.normalized
    }

    enum CodingKeys: String, CodingKey {
        case reference, layout, requestedPlatform, compressionPreference, selection, path, candidates
        case manifest, config, platform, layers, unverifiable, alternatives, warnings
    }

    /// Writes the documented `inspect --json` object (docs/inspect-json.md).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(reference, forKey: .reference)
        try c.encode(layoutPath, forKey: .layout)
        try c.encode(request.platform.description, forKey: .requestedPlatform)
        try c.encode(request.compressionPreference, forKey: .compressionPreference)
        try c.encode(request.firstMatch ? "first" : "preference", forKey: .selection)
        try c.encode(steps, forKey: .path)
        try c.encode(candidates, forKey: .candidates)
        try c.encode(manifestDescriptor, forKey: .manifest)
        try c.encode(manifest.config, forKey: .config)
        try c.encode(platform.description, forKey: .platform)
        try c.encode(layers, forKey: .layers)
        try c.encode(unverifiable, forKey: .unverifiable)
        // Only when alternatives were read: without them, the object's keys are as they were.
        if request.alternativeAnnotation != nil {
            try c.encode(alternatives, forKey: .alternatives)
            try c.encode(warnings, forKey: .warnings)
        }
    }
}

extension ResolvedImage.Candidate {
    enum CodingKeys: String, CodingKey {
        case digest, mediaType, size, indexPath, platform, platformSource, compression, annotations, status, reason
        case alternativeOf
    }

    /// Writes the `inspect --json` candidate object, leaving out the optional keys that have no value.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(digest, forKey: .digest)
        try c.encode(mediaType, forKey: .mediaType)
        try c.encode(size, forKey: .size)
        try c.encode(indexPath, forKey: .indexPath)
        try c.encodeIfPresent(platform?.description, forKey: .platform)
        try c.encodeIfPresent(platformSource, forKey: .platformSource)
        try c.encodeIfPresent(compression, forKey: .compression)
        try c.encode(annotations, forKey: .annotations)
        try c.encode(status, forKey: .status)
        try c.encodeIfPresent(reason, forKey: .reason)
        try c.encodeIfPresent(alternativeOf, forKey: .alternativeOf)
    }
}
