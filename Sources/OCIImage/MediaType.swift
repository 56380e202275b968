/// A media type such as `application/vnd.oci.image.layer.v1.tar+zstd`.
///
/// Kept as a type rather than a loose string so that every place that decides what to do with a
/// blob asks the same questions (``kind``, ``layerCompression``, ``unprocessableReason``).
public struct MediaType: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    /// The media type string, e.g. `application/vnd.oci.image.manifest.v1+json`.
    public let rawValue: String

    /// Wraps a media type string as is, without validation.
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Wraps a media type string as is, without validation.
    public init(_ rawValue: String) { self.rawValue = rawValue }
    /// A media type written as a string literal, kept as is.
    public init(stringLiteral value: String) { self.rawValue = value }

    /// Reads a JSON string, kept as is: an unknown media type is judged where it is used, not here.
    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    /// Writes the media type as a JSON string.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// The media type string.
    public var description: String { rawValue }

    // Manifests and indexes.
    /// `application/vnd.oci.image.index.v1+json`: an OCI image index.
    public static let ociIndex: MediaType = "application/vnd.oci.image.index.v1+json"
    /// `application/vnd.oci.image.manifest.v1+json`: an OCI image manifest.
    public static let ociManifest: MediaType = "application/vnd.oci.image.manifest.v1+json"
    /// `application/vnd.docker.distribution.manifest.list.v2+json`: a Docker manifest list.
    public static let dockerManifestList: MediaType = "application/vnd.docker.distribution.manifest.list.v2+json"
    /// `application/vnd.docker.distribution.manifest.v2+json`: a Docker schema 2 image manifest.
    public static let dockerManifest: MediaType = "application/vnd.docker.distribution.manifest.v2+json"
    // Configs.
    /// `application/vnd.oci.image.config.v1+json`: an OCI image configuration.
    public static let ociConfig: MediaType = "application/vnd.oci.image.config.v1+json"
    /// `application/vnd.docker.container.image.v1+json`: a Docker image configuration.
    public static let dockerConfig: MediaType = "application/vnd.docker.container.image.v1+json"
    // Layers.
    /// `application/vnd.oci.image.layer.v1.tar`: an uncompressed OCI layer.
    public static let ociLayer: MediaType = "application/vnd.oci.image.layer.v1.tar"
    /// `application/vnd.oci.image.layer.v1.tar+gzip`: a gzip-compressed OCI layer.
    public static let ociLayerGzip: MediaType = "application/vnd.oci.image.layer.v1.tar+gzip"
    /// `application/vnd.oci.image.layer.v1.tar+zstd`: a zstd-compressed OCI layer.
    public static let ociLayerZstd: MediaType = "application/vnd.oci.image.layer.v1.tar+zstd"
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar`: an uncompressed non-distributable layer (deprecated).
    public static let ociNondistributableLayer: MediaType = "application/vnd.oci.image.layer.nondistributable.v1.tar"
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar+gzip`: a gzip non-distributable layer (deprecated).
    public static let ociNondistributableLayerGzip: MediaType =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    /// `application/vnd.oci.image.layer.nondistributable.v1.tar+zstd`: a zstd non-distributable layer (deprecated).
    public static let ociNondistributableLayerZstd: MediaType =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    /// `application/vnd.docker.image.rootfs.diff.tar`: an uncompressed Docker layer.
    public static let dockerLayer: MediaType = "application/vnd.docker.image.rootfs.diff.tar"
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`: a gzip-compressed Docker layer.
    public static let dockerLayerGzip: MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    /// `application/vnd.docker.image.rootfs.diff.tar.zstd`: a zstd-compressed Docker layer.
    public static let dockerLayerZstd: MediaType = "application/vnd.docker.image.rootfs.diff.tar.zstd"
    /// `application/vnd.docker.image.rootfs.foreign.diff.tar.gzip`: a gzip Docker foreign layer.
    public static let dockerForeignLayerGzip: MediaType = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

    /// The layer media types oci-unpack can process, with their compression.
    public static let processableLayers: [MediaType: LayerCompression] = [
        .ociLayer: .none, .ociLayerGzip: .gzip, .ociLayerZstd: .zstd,
        .ociNondistributableLayer: .none, .ociNondistributableLayerGzip: .gzip, .ociNondistributableLayerZstd: .zstd,
        .dockerLayer: .none, .dockerLayerGzip: .gzip, .dockerLayerZstd: .zstd,
        .dockerForeignLayerGzip: .gzip,
    ]

    /// What a blob of this media type is.
    public enum Kind: Sendable, Equatable {
        case index
        case manifest
        case config
        case layer
        case other
    }

    /// Whether a blob of this type is an index, a manifest, a config, a processable layer or something else.
    public var kind: Kind {
        switch self {
        case .ociIndex, .dockerManifestList: .index
        case .ociManifest, .dockerManifest: .manifest
        case .ociConfig, .dockerConfig: .config
        default: Self.processableLayers[self] != nil ? .layer : .other
        }
    }

    /// The compression of a processable layer media type; `nil` for anything that is not one.
    public var layerCompression: LayerCompression? { Self.processableLayers[self] }

    /// Whether this is a Docker schema-2 media type (manifest, list, config or layer).
    public var isDocker: Bool { rawValue.hasPrefix("application/vnd.docker.") }

    /// Why a layer of this media type cannot be processed, or `nil` when it can.
    public var unprocessableReason: String? {
        if layerCompression != nil { return nil }
        if rawValue.hasSuffix("+encrypted") { return "encrypted layers are not supported" }
        if rawValue.contains("squashfs") { return "squashfs layers are not supported" }
        if rawValue.isEmpty { return "the layer has no media type" }
        if kind == .manifest || kind == .index || kind == .config { return "a \(kind) media type is not a layer" }
        return "unknown layer media type"
    }
}

/// How a layer's tar stream is compressed.
public enum LayerCompression: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case none
    case gzip
    case zstd

    /// The compression's name: `none`, `gzip` or `zstd`.
    public var description: String { rawValue }
}
