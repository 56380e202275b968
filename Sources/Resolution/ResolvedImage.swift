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
        public let digest: Digest
        public let mediaType: MediaType
        public let selectedBy: String
        /// Number of entries, for an index.
        public var entries: Int?
    }

    /// One manifest-level entry that was considered.
    public struct Candidate: Sendable, Encodable, Equatable {
        public enum Status: String, Sendable, Encodable {
            case chosen
            case passedOver = "passed-over"
            case refused
        }

        public let digest: Digest
        public let mediaType: MediaType
        public let size: Int64
        public let indexPath: [Digest]
        public let platform: Platform?
        public let platformSource: PlatformSource?
        public let compression: String?
        public let annotations: [String: String]
        public let status: Status
        /// Why it was passed over or refused; absent for the chosen one.
        public let reason: String?
    }

    /// One layer of the chosen manifest.
    public struct Layer: Sendable, Encodable, Equatable {
        public let index: Int
        public let descriptor: Descriptor
        public let compression: LayerCompression
        public let diffID: Digest

        public init(index: Int, descriptor: Descriptor, compression: LayerCompression, diffID: Digest) {
            self.index = index
            self.descriptor = descriptor
            self.compression = compression
            self.diffID = diffID
        }

        enum CodingKeys: String, CodingKey {
            case index, digest, mediaType, compression, size, diffID
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(descriptor.digest, forKey: .digest)
            try c.encode(descriptor.mediaType, forKey: .mediaType)
            try c.encode(compression, forKey: .compression)
            try c.encode(descriptor.size, forKey: .size)
            try c.encode(diffID, forKey: .diffID)
        }
    }

    public let reference: String
    /// The source the image was resolved in (its blobs are read from there).
    public let source: any ImageSource
    /// The source's name (a layout's path), as `inspect --json` reports it under `layout`.
    public var layoutPath: String { source.name }
    public let request: ResolutionRequest
    public let steps: [Step]
    public let candidates: [Candidate]
    public let manifestDescriptor: Descriptor
    public let manifest: Manifest
    public let config: ImageConfig
    public let layers: [Layer]

    /// The chosen candidate's platform (from its descriptor, else its config).
    public var platform: Platform {
        candidates.first(where: { $0.status == .chosen })?.platform ?? config.platform.normalized
    }

    enum CodingKeys: String, CodingKey {
        case reference, layout, requestedPlatform, compressionPreference, path, candidates
        case manifest, config, platform, layers
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(reference, forKey: .reference)
        try c.encode(layoutPath, forKey: .layout)
        try c.encode(request.platform.description, forKey: .requestedPlatform)
        try c.encode(request.compressionPreference, forKey: .compressionPreference)
        try c.encode(steps, forKey: .path)
        try c.encode(candidates, forKey: .candidates)
        try c.encode(manifestDescriptor, forKey: .manifest)
        try c.encode(manifest.config, forKey: .config)
        try c.encode(platform.description, forKey: .platform)
        try c.encode(layers, forKey: .layers)
    }
}

extension ResolvedImage.Candidate {
    enum CodingKeys: String, CodingKey {
        case digest, mediaType, size, indexPath, platform, platformSource, compression, annotations, status, reason
    }

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
    }
}
