import Foundation
import LayerStream
import OCIImage

/// Writes OCI image layouts in code: blobs, layers in any compression, configs, manifests, indexes
/// and `index.json`, including deliberately inconsistent ones for error tests.
package final class LayoutBuilder {
    package let path: String
    /// Entries written to `index.json` by `write()`.
    package var indexEntries: [Descriptor] = []

    package init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path + "/blobs/sha256", withIntermediateDirectories: true)
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: path + "/oci-layout"))
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// Stores `bytes` as a blob and returns its descriptor.
    @discardableResult
    package func blob(
        _ bytes: [UInt8], mediaType: MediaType, annotations: [String: String]? = nil, platform: Platform? = nil
    ) throws -> Descriptor {
        let digest = Digest.of(bytes)
        let url = URL(fileURLWithPath: "\(path)/blobs/sha256/\(digest.encoded)")
        try Data(bytes).write(to: url)
        return Descriptor(
            mediaType: mediaType, digest: digest, size: Int64(bytes.count), annotations: annotations, platform: platform
        )
    }

    /// A JSON document as a blob.
    @discardableResult
    package func json(
        _ value: some Encodable, mediaType: MediaType, platform: Platform? = nil,
        annotations: [String: String]? = nil
    ) throws -> Descriptor {
        let data = try Self.encoder.encode(value)
        return try blob(Array(data), mediaType: mediaType, annotations: annotations, platform: platform)
    }

    /// A layer: the tar compressed as asked, with the media type that says so.
    package struct Layer {
        package var descriptor: Descriptor
        package var diffID: Digest

        package init(descriptor: Descriptor, diffID: Digest) {
            self.descriptor = descriptor
            self.diffID = diffID
        }
    }

    package enum LayerStyle: Sendable {
        case oci
        case docker
    }

    package func layer(
        _ tar: [UInt8], compression: LayerCompression, style: LayerStyle = .oci, mediaType: MediaType? = nil
    ) throws -> Layer {
        let bytes: [UInt8]
        switch compression {
        case .none: bytes = tar
        case .gzip: bytes = GzipCompressor.compress(tar)
        case .zstd: bytes = ZstdCompressor.compress(tar)
        }
        let type = mediaType ?? Self.layerMediaType(compression, style: style)
        return Layer(descriptor: try blob(bytes, mediaType: type), diffID: Digest.of(tar))
    }

    /// A layer whose blob bytes are given as they are (multi-member gzip, skippable frames, corrupt
    /// streams), with the media type to declare and the diff_id of `tar`.
    package func layer(tar: [UInt8], blob bytes: [UInt8], mediaType: MediaType) throws -> Layer {
        Layer(descriptor: try blob(bytes, mediaType: mediaType), diffID: Digest.of(tar))
    }

    package static func layerMediaType(_ compression: LayerCompression, style: LayerStyle) -> MediaType {
        switch (style, compression) {
        case (.oci, .none): .ociLayer
        case (.oci, .gzip): .ociLayerGzip
        case (.oci, .zstd): .ociLayerZstd
        case (.docker, .none): .dockerLayer
        case (.docker, .gzip): .dockerLayerGzip
        case (.docker, .zstd): .dockerLayerZstd
        }
    }

    /// An image: config + manifest over `layers`. Returns the manifest descriptor, carrying
    /// `descriptorPlatform` and `annotations` (for use as an index entry).
    package func image(
        layers: [Layer], platform: Platform = Platform(os: "linux", architecture: "amd64"),
        execution: ImageConfig.Execution? = nil, style: LayerStyle = .oci, descriptorPlatform: Platform?? = nil,
        annotations: [String: String]? = nil, diffIDs: [Digest]? = nil, created: String = "2026-01-01T00:00:00Z"
    ) throws -> Descriptor {
        let config = ImageConfig(
            platform: platform, config: execution, diffIDs: diffIDs ?? layers.map(\.diffID), created: created)
        let configDescriptor = try json(config, mediaType: style == .oci ? .ociConfig : .dockerConfig)
        let manifest = Manifest(
            mediaType: style == .oci ? .ociManifest : .dockerManifest, config: configDescriptor,
            layers: layers.map(\.descriptor))
        let entryPlatform: Platform? =
            switch descriptorPlatform {
            case .none: platform
            case .some(let explicit): explicit
            }
        return try json(
            manifest, mediaType: style == .oci ? .ociManifest : .dockerManifest, platform: entryPlatform,
            annotations: annotations)
    }

    /// An index (or Docker manifest list) over `entries`.
    package func index(_ entries: [Descriptor], style: LayerStyle = .oci, annotations: [String: String]? = nil)
        throws -> Descriptor
    {
        let type: MediaType = style == .oci ? .ociIndex : .dockerManifestList
        return try json(Index(mediaType: type, manifests: entries), mediaType: type, annotations: annotations)
    }

    /// The value of an alternative annotation naming `alternative`: its descriptor as JSON, without
    /// the platform (an alternative is for its original's) or annotations.
    package static func alternativeValue(_ alternative: Descriptor) throws -> String {
        var plain = alternative
        plain.platform = nil
        plain.annotations = nil
        return String(decoding: try encoder.encode(plain), as: UTF8.self)
    }

    /// `original` with the annotation `key` naming `alternative` (the image-spec discussion's
    /// proposals for offering zstd beside gzip).
    package static func naming(
        _ alternative: Descriptor, on original: Descriptor, key: String = "zstd-compressed-alternative"
    ) throws -> Descriptor {
        var named = original
        named.annotations = (original.annotations ?? [:]).merging([key: try alternativeValue(alternative)]) { $1 }
        return named
    }

    /// Adds `descriptor` to `index.json`, tagged `tag` when given.
    package func tag(_ descriptor: Descriptor, _ tag: String?) {
        var entry = descriptor
        if let tag {
            var annotations = entry.annotations ?? [:]
            annotations[AnnotationKey.refName] = tag
            entry.annotations = annotations
        }
        indexEntries.append(entry)
    }

    /// Writes `index.json`.
    package func write() throws {
        let data = try Self.encoder.encode(Index(mediaType: .ociIndex, manifests: indexEntries))
        try data.write(to: URL(fileURLWithPath: path + "/index.json"))
    }

    /// Overwrites a blob's file with other bytes (corruption tests).
    package func overwriteBlob(_ digest: Digest, with bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: "\(path)/blobs/\(digest.algorithm.rawValue)/\(digest.encoded)"))
    }

    package func removeBlob(_ digest: Digest) throws {
        try FileManager.default.removeItem(atPath: "\(path)/blobs/\(digest.algorithm.rawValue)/\(digest.encoded)")
    }
}

/// A temporary directory removed when the value goes away.
package final class TemporaryDirectory: Sendable {
    package let path: String

    package init(prefix: String = "oci-unpack-test") throws {
        var template = Array("\(NSTemporaryDirectory())/\(prefix).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
            return String(cString: base)
        }
        guard let made else { throw CocoaError(.fileWriteUnknown) }
        path = made
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
