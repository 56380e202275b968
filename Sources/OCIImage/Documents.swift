/// A content descriptor: what a blob is, how big, and its digest.
public struct Descriptor: Hashable, Sendable, Codable {
    /// The media type of the referenced content (`mediaType`).
    public var mediaType: MediaType
    /// The digest of the referenced content (`digest`).
    public var digest: Digest
    /// The size in bytes of the referenced content (`size`).
    public var size: Int64
    /// Other places the content may be downloaded from (`urls`).
    public var urls: [String]?
    /// Arbitrary metadata about the descriptor (`annotations`), such as the tag of an `index.json` entry.
    public var annotations: [String: String]?
    /// The platform the referenced manifest is for (`platform`), set on the entries of an index.
    public var platform: Platform?
    /// The type of artifact the descriptor refers to, when it refers to one (`artifactType`).
    public var artifactType: String?

    /// A descriptor with the given fields.
    public init(
        mediaType: MediaType, digest: Digest, size: Int64, annotations: [String: String]? = nil,
        platform: Platform? = nil, urls: [String]? = nil, artifactType: String? = nil
    ) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
        self.urls = urls
        self.artifactType = artifactType
    }

    /// Reads a descriptor JSON object, refusing a negative `size`.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mediaType = try c.decode(MediaType.self, forKey: .mediaType)
        digest = try c.decode(Digest.self, forKey: .digest)
        size = try c.decode(Int64.self, forKey: .size)
        guard size >= 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .size, in: c, debugDescription: "descriptor \(digest) has negative size \(size)")
        }
        urls = try c.decodeIfPresent([String].self, forKey: .urls)
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations)
        platform = try c.decodeIfPresent(Platform.self, forKey: .platform)
        artifactType = try c.decodeIfPresent(String.self, forKey: .artifactType)
    }

    /// The tag of an entry of an image layout's `index.json`.
    public var refName: String? { annotations?[AnnotationKey.refName] }
}

/// Well-known annotation keys.
public enum AnnotationKey {
    /// The annotation that holds the tag of an entry of an image layout's `index.json`.
    public static let refName = "org.opencontainers.image.ref.name"
    /// Set by podman/buildah on the zstd instance of a gzip+zstd pair in one index.
    public static let zstdCompression = "io.github.containers.compression.zstd"
    /// On a zstd:chunked layer (containers/storage): the digest of its table of contents, which
    /// sits in skippable frames at the blob's end.
    public static let zstdChunkedManifestChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
    /// On a zstd:chunked layer: where its table of contents starts and ends in the blob.
    public static let zstdChunkedManifestPosition = "io.github.containers.zstd-chunked.manifest-position"
    /// The spelling of the zstd:chunked checksum key before containers/storage 1.45 (skopeo 1.9
    /// writes it).
    public static let zstdChunkedManifestChecksumOld = "io.containers.zstd-chunked.manifest-checksum"
    /// The old spelling of the zstd:chunked position key.
    public static let zstdChunkedManifestPositionOld = "io.containers.zstd-chunked.manifest-position"
    /// On an eStargz layer: the digest of its table of contents (`stargz.index.json`).
    public static let estargzTOCDigest = "containerd.io/snapshot/stargz/toc.digest"
}

/// A layer format built on a plain compression for lazy pulling, recognised by its descriptor's
/// annotations. Both are complete compressed tar streams: unpacked in full, they need no special
/// reading (zstd:chunked's table of contents is in skippable frames, which a zstd decoder skips).
public enum LayerFormat: String, Sendable, Hashable, Codable {
    /// containers/storage's zstd:chunked (a zstd stream with a table of contents).
    case zstdChunked = "zstd:chunked"
    /// containerd's eStargz (a gzip stream of per-file members with a table of contents).
    case estargz

    /// The tar entries the format adds for its own use, which are not part of the image's files:
    /// eStargz's table of contents (`stargz.index.json`, the last entry) and its landmark files
    /// (`.prefetch.landmark`, `.no.prefetch.landmark`), all at the top of the layer. A full
    /// extraction leaves them out, as stargz-snapshotter's filesystem hides them, so that an
    /// eStargz layer yields the files of the tar.gz it was converted from.
    public var metadataEntries: Set<[UInt8]> {
        switch self {
        case .zstdChunked: []
        case .estargz:
            [Array("stargz.index.json".utf8), Array(".prefetch.landmark".utf8), Array(".no.prefetch.landmark".utf8)]
        }
    }
}

extension Descriptor {
    /// The lazy-pulling format the layer's annotations announce, if any.
    public var layerFormat: LayerFormat? {
        guard let annotations else { return nil }
        let chunkedKeys = [
            AnnotationKey.zstdChunkedManifestChecksum, AnnotationKey.zstdChunkedManifestPosition,
            AnnotationKey.zstdChunkedManifestChecksumOld, AnnotationKey.zstdChunkedManifestPositionOld,
        ]
        if chunkedKeys.contains(where: { annotations[$0] != nil }) { return .zstdChunked }
        if annotations[AnnotationKey.estargzTOCDigest] != nil { return .estargz }
        return nil
    }
}

/// An image manifest (OCI or Docker schema 2): a config and an ordered list of layers.
public struct Manifest: Hashable, Sendable, Codable {
    /// The `schemaVersion` field, which must be 2.
    public var schemaVersion: Int
    /// The manifest's own `mediaType`, optional in the JSON but checked against the descriptor when present.
    public var mediaType: MediaType?
    /// The type of artifact this manifest describes (`artifactType`); absent for an image.
    public var artifactType: String?
    /// The descriptor of the image configuration (`config`).
    public var config: Descriptor
    /// The layer descriptors (`layers`), in the order they are applied, base layer first.
    public var layers: [Descriptor]
    /// The manifest this one refers to (`subject`), as a signature or SBOM refers to its image.
    public var subject: Descriptor?
    /// Arbitrary metadata about the manifest (`annotations`).
    public var annotations: [String: String]?

    /// A manifest of schema version 2, with no subject or artifact type.
    public init(
        mediaType: MediaType? = .ociManifest, config: Descriptor, layers: [Descriptor],
        annotations: [String: String]? = nil
    ) {
        self.schemaVersion = 2
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }
}

/// An image index (OCI) or manifest list (Docker): manifests for several platforms or variants.
public struct Index: Hashable, Sendable, Codable {
    /// The `schemaVersion` field, which must be 2.
    public var schemaVersion: Int
    /// The index's own `mediaType`, optional in the JSON but checked against the descriptor when present.
    public var mediaType: MediaType?
    /// The type of artifact this index describes (`artifactType`), if any.
    public var artifactType: String?
    /// The descriptors of the manifests and nested indexes it lists (`manifests`).
    public var manifests: [Descriptor]
    /// The manifest this index refers to (`subject`), if any.
    public var subject: Descriptor?
    /// Arbitrary metadata about the index (`annotations`).
    public var annotations: [String: String]?

    /// An entry of `manifests` whose digest uses an algorithm oci-unpack cannot verify (`blake3`):
    /// not in ``manifests``, reported by inspect and verify-variants, never silently used.
    public struct UnverifiableEntry: Hashable, Sendable, Encodable {
        /// Its position in `manifests`, counting from 0.
        public let position: Int
        /// The digest as written.
        public let digest: String
        /// The media type as written.
        public let mediaType: String
        /// The digest's algorithm.
        public let algorithm: String
        /// Its platform, when it has a valid one.
        public let platform: Platform?

        /// Why it cannot be used.
        public var reason: String {
            "digest \(digest) uses algorithm \(algorithm), which oci-unpack cannot verify (supported: sha256, sha512)"
        }
    }

    /// Entries of `manifests` left out of ``manifests`` because their digests cannot be verified.
    public var unverifiableEntries: [UnverifiableEntry] = []

    enum CodingKeys: String, CodingKey {
        case schemaVersion, mediaType, artifactType, manifests, subject, annotations
    }

    /// An index of schema version 2 listing `manifests`, with no subject or artifact type.
    public init(mediaType: MediaType? = .ociIndex, manifests: [Descriptor], annotations: [String: String]? = nil) {
        self.schemaVersion = 2
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }
}

/// The image configuration (OCI `config.json` of an image, or Docker's container image JSON).
public struct ImageConfig: Hashable, Sendable, Codable {
    /// Execution parameters (`config` in the JSON).
    public struct Execution: Hashable, Sendable, Codable {
        /// The user (and optionally group) the process runs as (`User`), by name or numeric ID.
        public var user: String?
        /// The ports the container exposes (`ExposedPorts`), keyed `port/protocol`.
        public var exposedPorts: [String: EmptyObject]?
        /// The environment of the process as `NAME=VALUE` entries (`Env`).
        public var env: [String]?
        /// The command run at start, before the arguments (`Entrypoint`).
        public var entrypoint: [String]?
        /// The default arguments to the entrypoint, or the command itself when there is none (`Cmd`).
        public var cmd: [String]?
        /// The directories meant to hold volumes (`Volumes`), keyed by path.
        public var volumes: [String: EmptyObject]?
        /// The working directory of the process (`WorkingDir`).
        public var workingDir: String?
        /// Arbitrary metadata about the container (`Labels`).
        public var labels: [String: String]?
        /// The signal that asks the process to stop (`StopSignal`), e.g. `SIGTERM`.
        public var stopSignal: String?

        enum CodingKeys: String, CodingKey {
            case user = "User"
            case exposedPorts = "ExposedPorts"
            case env = "Env"
            case entrypoint = "Entrypoint"
            case cmd = "Cmd"
            case volumes = "Volumes"
            case workingDir = "WorkingDir"
            case labels = "Labels"
            case stopSignal = "StopSignal"
        }

        /// Execution parameters with the given fields, each optional.
        public init(
            user: String? = nil, exposedPorts: [String: EmptyObject]? = nil, env: [String]? = nil,
            entrypoint: [String]? = nil, cmd: [String]? = nil, volumes: [String: EmptyObject]? = nil,
            workingDir: String? = nil, labels: [String: String]? = nil, stopSignal: String? = nil
        ) {
            self.user = user
            self.exposedPorts = exposedPorts
            self.env = env
            self.entrypoint = entrypoint
            self.cmd = cmd
            self.volumes = volumes
            self.workingDir = workingDir
            self.labels = labels
            self.stopSignal = stopSignal
        }
    }

    /// `rootfs`: the ordered diff_ids of the uncompressed layers.
    public struct RootFS: Hashable, Sendable, Codable {
        /// The kind of root filesystem (`type`), always `layers`.
        public var type: String
        /// The digests of the uncompressed layer tar streams (`diff_ids`), base layer first.
        public var diffIDs: [Digest]

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }

        /// A root filesystem of type `layers` with the given diff_ids.
        public init(diffIDs: [Digest]) {
            self.type = "layers"
            self.diffIDs = diffIDs
        }
    }

    /// One entry of `history`: how a layer, or a step that made none, was built.
    public struct History: Hashable, Sendable, Codable {
        /// When the step ran (`created`), as an RFC 3339 date-time.
        public var created: String?
        /// The command the step ran (`created_by`).
        public var createdBy: String?
        /// A free-form note about the step (`comment`).
        public var comment: String?
        /// Whether the step made no layer (`empty_layer`), so that no diff_id belongs to it.
        public var emptyLayer: Bool?

        enum CodingKeys: String, CodingKey {
            case created
            case createdBy = "created_by"
            case comment
            case emptyLayer = "empty_layer"
        }

        /// A history entry with the given fields, each optional.
        public init(created: String? = nil, createdBy: String? = nil, comment: String? = nil, emptyLayer: Bool? = nil) {
            self.created = created
            self.createdBy = createdBy
            self.comment = comment
            self.emptyLayer = emptyLayer
        }
    }

    /// When the image was created (`created`), as an RFC 3339 date-time.
    public var created: String?
    /// The person or entity that created the image (`author`).
    public var author: String?
    /// The CPU architecture the image's binaries are built for (`architecture`).
    public var architecture: String
    /// The operating system the image is built to run on (`os`).
    public var os: String
    /// The operating system version the image requires (`os.version`).
    public var osVersion: String?
    /// The operating system features the image requires (`os.features`).
    public var osFeatures: [String]?
    /// The variant of the CPU architecture (`variant`), e.g. `v7` for `arm`.
    public var variant: String?
    /// The default parameters for running a container from the image (`config`).
    public var config: Execution?
    /// The layers' diff_ids, which make up the root filesystem (`rootfs`).
    public var rootfs: RootFS
    /// How each layer of the image was built (`history`).
    public var history: [History]?

    enum CodingKeys: String, CodingKey {
        case created
        case author
        case architecture
        case os
        case osVersion = "os.version"
        case osFeatures = "os.features"
        case variant
        case config
        case rootfs
        case history
    }

    /// A configuration for `platform` with the given execution parameters and layer diff_ids.
    public init(platform: Platform, config: Execution? = nil, diffIDs: [Digest], created: String? = nil) {
        self.architecture = platform.architecture
        self.os = platform.os
        self.variant = platform.variant
        self.osVersion = platform.osVersion
        self.osFeatures = platform.osFeatures
        self.config = config
        self.rootfs = RootFS(diffIDs: diffIDs)
        self.created = created
    }

    /// The platform this configuration declares.
    public var platform: Platform {
        Platform(os: os, architecture: architecture, variant: variant, osVersion: osVersion, osFeatures: osFeatures)
    }
}

/// `{}`: the value type of `ExposedPorts` and `Volumes` maps.
public struct EmptyObject: Hashable, Sendable, Codable {
    /// The empty object.
    public init() {}
    /// Accepts the JSON value without reading it: only the keys of such a map carry meaning.
    public init(from decoder: any Decoder) throws {}
    /// Writes `{}`.
    public func encode(to encoder: any Encoder) throws {
        _ = encoder.container(keyedBy: NoKeys.self)
    }
    private enum NoKeys: CodingKey {}
}
