import FoundationEssentials
import OCIImage
import UnpackSystem

/// Blobs served from an archive's members: sizes checked before reading, digests after (documents)
/// or while streaming (layers, by the pipeline), as for a layout.
struct ArchiveBlobs: Sendable {
    let archive: ArchiveFile
    /// The member holding each blob.
    var names: [Digest: String]
    /// Documents made here rather than stored (a docker-archive's manifests).
    var made: [Digest: [UInt8]] = [:]

    func hasBlob(_ digest: Digest) -> Bool { made[digest] != nil || member(digest) != nil }

    func member(_ digest: Digest) -> ArchiveFile.Member? { names[digest].flatMap { archive.members[$0] } }

    func stored(_ descriptor: Descriptor) throws(UnpackError) -> ArchiveFile.Member {
        let context = UnpackError.Context(digest: descriptor.digest, mediaType: descriptor.mediaType)
        guard let member = member(descriptor.digest) else {
            throw UnpackError(
                .notFound, "blob \(descriptor.digest) is missing from the archive \(archive.path)", context: context)
        }
        guard member.size == descriptor.size else {
            throw UnpackError(
                .sizeMismatch,
                "blob \(descriptor.digest) is \(member.size < descriptor.size ? "shorter" : "longer") than its descriptor's size \(descriptor.size)",
                context: context)
        }
        return member
    }

    func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
        try descriptor.checkDocumentSize(limit: limit)
        let bytes: [UInt8]
        if let document = made[descriptor.digest] {
            bytes = document
        } else {
            bytes = try archive.read(try stored(descriptor), limit: limit)
        }
        return bytes
    }

    func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream {
        archive.stream(try stored(descriptor))
    }

    func sniffDescriptor(for digest: Digest, limits: DocumentLimits) throws(UnpackError) -> Descriptor {
        let size: Int64
        if let document = made[digest] {
            size = Int64(document.count)
        } else if let member = member(digest) {
            size = member.size
        } else {
            throw UnpackError(
                .notFound, "no manifest or index with digest \(digest) in the archive \(archive.path)",
                context: .init(digest: digest))
        }
        // What the descriptor is made of must be the blob itself.
        let probe = Descriptor(mediaType: .ociManifest, digest: digest, size: size)
        let bytes = try readBlob(probe, limit: limits.maxManifestBytes)
        try probe.checkContent(bytes, from: "the archive \(archive.path)")
        return try ImageDocuments.sniffDescriptor(bytes, digest: digest)
    }

    /// `blobs/ALG/HEX` members, by digest.
    static func layoutBlobs(_ archive: ArchiveFile) -> [Digest: String] {
        var names: [Digest: String] = [:]
        for name in archive.members.keys where name.hasPrefix("blobs/") {
            let parts = name.split(separator: "/")
            guard parts.count == 3, let digest = try? Digest(parsing: "\(parts[1]):\(parts[2])") else { continue }
            names[digest] = name
        }
        return names
    }

    /// A member's bytes as a small document.
    static func document(_ archive: ArchiveFile, _ name: String, limit: Int) throws(UnpackError) -> [UInt8]? {
        guard let member = archive.members[name] else { return nil }
        guard member.size <= Int64(limit) else {
            throw UnpackError(
                .limitExceeded, "\(name) in the archive \(archive.path) is over the \(limit)-byte limit",
                context: .init(path: archive.path))
        }
        return try archive.read(member, limit: limit)
    }
}

/// A source whose blobs are an archive's members: the blob calls go to its `ArchiveBlobs`.
protocol ArchiveBacked: ImageSource {
    var blobs: ArchiveBlobs { get }
}

extension ArchiveBacked {
    package func hasBlob(_ digest: Digest) -> Bool { blobs.hasBlob(digest) }

    package func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
        try blobs.readBlob(descriptor, limit: limit)
    }

    package func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream {
        try blobs.openBlob(descriptor)
    }

    package func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor {
        try blobs.sniffDescriptor(for: digest, limits: limits)
    }
}

/// `oci-archive:PATH`: a tar of an OCI image layout (`oci-layout`, `index.json`, `blobs/`), as
/// `skopeo copy … oci-archive:` writes it, read in place.
package struct OCIArchive: ArchiveBacked {
    package let path: String
    package var name: String { "oci-archive:\(path)" }
    package let index: Index
    package let limits: DocumentLimits
    let blobs: ArchiveBlobs

    package init(path: String, limits: DocumentLimits = .init()) throws(UnpackError) {
        let archive = try ArchiveFile(path: path)
        try self.init(archive: archive, limits: limits)
    }

    init(archive: ArchiveFile, limits: DocumentLimits) throws(UnpackError) {
        path = archive.path
        self.limits = limits
        let context = UnpackError.Context(path: archive.path)
        guard let marker = try ArchiveBlobs.document(archive, "oci-layout", limit: 64 << 10) else {
            throw UnpackError(
                .notFound, "the archive \(archive.path) holds no oci-layout file: not an OCI layout archive",
                context: context)
        }
        try ImageDocuments.checkLayoutMarker(marker, place: "\(archive.path): oci-layout")
        guard let indexBytes = try ArchiveBlobs.document(archive, "index.json", limit: limits.maxManifestBytes) else {
            throw UnpackError(.notFound, "the archive \(archive.path) holds no index.json", context: context)
        }
        index = try ImageDocuments.index(from: indexBytes, expected: .ociIndex, where: "\(archive.path): index.json")
        blobs = ArchiveBlobs(archive: archive, names: ArchiveBlobs.layoutBlobs(archive))
    }

}

/// `docker-archive:PATH`: `docker save` output (and `skopeo copy … docker-archive:`), read in
/// place. Its `manifest.json` lists each image's config and layer members, without descriptors:
/// they are made here. The config's digest is its content's; an uncompressed layer's digest is
/// its diff_id, which the pipeline then checks while streaming it (blob and diff_id are the same
/// bytes); a compressed layer (gzip or zstd, by its magic) is hashed once to name it. Each
/// image becomes a Docker schema-2 manifest (held in memory, named by its digest) and an entry of
/// the index, tagged with each of its `RepoTags` (`docker-archive:PATH:busybox:latest`) and with
/// `@N`, its position in `manifest.json` (`docker-archive:PATH:@0`).
package struct DockerArchive: ArchiveBacked {
    package let path: String
    package var name: String { "docker-archive:\(path)" }
    /// The images come from `docker save`'s `manifest.json` (its `RepoTags`).
    package var indexOrigin: String { "manifest.json" }
    package let index: Index
    package let limits: DocumentLimits
    let blobs: ArchiveBlobs

    package init(path: String, limits: DocumentLimits = .init()) throws(UnpackError) {
        let archive = try ArchiveFile(path: path)
        self.path = path
        self.limits = limits
        let context = UnpackError.Context(path: path)
        guard let listing = try ArchiveBlobs.document(archive, "manifest.json", limit: limits.maxManifestBytes) else {
            throw UnpackError(
                .notFound, "the archive \(path) holds no manifest.json: not a docker-archive", context: context)
        }
        let place = "\(path): manifest.json"
        guard case .array(let images) = try ImageDocuments.requireStrictJSON(listing, place: place) else {
            throw UnpackError(.invalidImage, "\(place) is not a list of images", context: context)
        }
        var blobs = ArchiveBlobs(archive: archive, names: [:])
        var entries: [Descriptor] = []
        for (i, image) in images.enumerated() {
            // docker's own keys (Go's encoding/json, case-sensitive here): Config, Layers, RepoTags.
            func strings(_ value: JSONValue?) -> [String]? {
                guard case .array(let items)? = value else { return nil }
                let texts = items.compactMap { item -> String? in
                    if case .string(let text) = item { return text }
                    return nil
                }
                return texts.count == items.count ? texts : nil
            }
            guard case .object(let fields) = image, case .string(let configPath)? = fields["Config"],
                let layerPaths = strings(fields["Layers"])
            else {
                throw UnpackError(
                    .invalidImage, "\(place): image \(i) needs Config (a string) and Layers (strings)",
                    context: context)
            }
            let tags = strings(fields["RepoTags"]) ?? []
            guard let (configName, configMember) = archive.member(named: configPath) else {
                throw UnpackError(
                    .notFound, "\(place): image \(i)'s config \(configPath) is missing from the archive",
                    context: context)
            }
            let configBytes = try archive.read(configMember, limit: limits.maxConfigBytes)
            let configDigest = Digest.of(configBytes)
            let config = try ImageDocuments.config(from: configBytes, where: "\(path): \(configName)")
            guard config.rootfs.diffIDs.count == layerPaths.count else {
                throw UnpackError(
                    .invalidImage,
                    "\(place): image \(i) lists \(layerPaths.count) layers and its config \(config.rootfs.diffIDs.count) diff_ids",
                    context: context)
            }
            blobs.names[configDigest] = configName
            var layers: [Descriptor] = []
            for (n, layerPath) in layerPaths.enumerated() {
                guard let (layerName, member) = archive.member(named: layerPath) else {
                    throw UnpackError(
                        .notFound, "\(place): image \(i)'s layer \(n) \(layerPath) is missing from the archive",
                        context: context)
                }
                let layer = try Self.describe(archive, member, diffID: config.rootfs.diffIDs[n])
                blobs.names[layer.digest] = layerName
                layers.append(layer)
            }
            let manifest = Manifest(
                mediaType: .dockerManifest,
                config: Descriptor(mediaType: .dockerConfig, digest: configDigest, size: Int64(configBytes.count)),
                layers: layers)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(manifest) else {
                throw UnpackError(.internal, "could not encode the manifest made for image \(i) of \(path)")
            }
            let bytes = Array(data)
            let digest = Digest.of(bytes)
            blobs.made[digest] = bytes
            let descriptor = Descriptor(mediaType: .dockerManifest, digest: digest, size: Int64(bytes.count))
            // `@N`, skopeo's name for the N-th image of the archive.
            var indexed = descriptor
            indexed.annotations = [AnnotationKey.refName: "@\(i)"]
            entries.append(indexed)
            for tag in tags {
                // `docker.io/library/busybox:latest` is also `library/busybox:latest` and
                // `busybox:latest`, as docker names it.
                for name in Self.shortNames(tag) {
                    var tagged = descriptor
                    tagged.annotations = [AnnotationKey.refName: name]
                    entries.append(tagged)
                }
            }
        }
        index = Index(mediaType: .ociIndex, manifests: entries)
        self.blobs = blobs
    }

    /// A repository tag and the shorter names docker accepts for it.
    static func shortNames(_ tag: String) -> [String] {
        var names = [tag]
        if tag.hasPrefix("docker.io/") {
            let rest = String(tag.dropFirst("docker.io/".count))
            names.append(rest)
            if rest.hasPrefix("library/") { names.append(String(rest.dropFirst("library/".count))) }
        }
        return names
    }

    /// A layer member's descriptor: an uncompressed tar is named by its diff_id (checked while
    /// streaming); a compressed one is hashed.
    static func describe(_ archive: ArchiveFile, _ member: ArchiveFile.Member, diffID: Digest) throws(UnpackError)
        -> Descriptor
    {
        let stream = archive.stream(member)
        let head = UnsafeMutableRawBufferPointer.allocate(byteCount: 4, alignment: 1)
        defer { head.deallocate() }
        var got = 0
        while got < 4 {
            let n = try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: head[got...]))
            if n == 0 { break }
            got += n
        }
        let magic = Array(head[..<got])
        let mediaType: MediaType
        if got >= 2 && magic.starts(with: [0x1f, 0x8b]) {
            mediaType = .dockerLayerGzip
        } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
            mediaType = .dockerLayerZstd
        } else {
            return Descriptor(mediaType: .dockerLayer, digest: diffID, size: member.size)
        }
        var digester = Digester(.sha256)
        let whole = archive.stream(member)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let n = try whole.read(into: chunk)
            if n == 0 { break }
            digester.update(UnsafeRawBufferPointer(rebasing: chunk[..<n]))
        }
        return Descriptor(mediaType: mediaType, digest: digester.finalize(), size: member.size)
    }

}
