import FoundationEssentials
import Glibc

/// Size caps for the JSON documents of an image, so a hostile layout cannot make us read gigabytes
/// into memory.
public struct DocumentLimits: Sendable, Equatable {
    /// Largest manifest or index accepted (registries commonly cap manifests at 4 MiB).
    public var maxManifestBytes: Int
    /// Largest image configuration accepted.
    public var maxConfigBytes: Int
    /// Deepest nesting of indexes followed.
    public var maxIndexDepth: Int

    public init(maxManifestBytes: Int = 4 << 20, maxConfigBytes: Int = 8 << 20, maxIndexDepth: Int = 8) {
        self.maxManifestBytes = maxManifestBytes
        self.maxConfigBytes = maxConfigBytes
        self.maxIndexDepth = maxIndexDepth
    }
}

/// An OCI image layout directory: `oci-layout`, `index.json` and `blobs/ALG/HEX`.
///
/// Every blob read checks the descriptor's size before reading and the digest after, and every
/// document's `mediaType` must agree with the descriptor that led to it.
public struct OCILayout: Sendable {
    public let path: String
    /// The layout's directory (O_PATH). Everything the layout names is opened beneath it, one
    /// component at a time without following symlinks: a layout cannot make oci-unpack read a
    /// file outside it (`blobs/sha256/HEX -> /etc/shadow`, or `blobs/sha256 -> /etc`).
    let directory: OwnedFD
    /// The parsed `index.json`.
    public let index: Index
    public let limits: DocumentLimits

    /// Opens the layout at `path`, checking `oci-layout` and parsing `index.json`.
    public init(path: String, limits: DocumentLimits = .init()) throws(UnpackError) {
        self.path = path
        self.limits = limits
        let st: stat
        switch fileStatus(path) {
        case .success(let found): st = found
        case .failure(let error):
            throw error.unpackError("image layout \(path) cannot be opened", context: .init(path: path))
        }
        guard st.isDirectory else {
            throw UnpackError(.notFound, "\(path) is not an OCI image layout directory", context: .init(path: path))
        }
        do throws(SystemError) {
            directory = try OwnedFD(
                retryingSyscall("open", path: path) { open(path, O_PATH_VALUE | O_DIRECTORY | O_CLOEXEC) })
        } catch {
            throw error.unpackError("image layout \(path) cannot be opened", context: .init(path: path))
        }
        let markerPath = path + "/oci-layout"
        let marker = try Self.readSmallFile(
            in: directory, ["oci-layout"], display: markerPath, limit: 64 << 10, what: "oci-layout file")
        struct Marker: Decodable { let imageLayoutVersion: String }
        let version: String
        try Self.requireStrictJSON(marker, place: markerPath)
        do {
            version = try JSONDecoder().decode(Marker.self, from: Data(marker)).imageLayoutVersion
        } catch {
            throw UnpackError(
                .invalidImage, "\(markerPath) is not a valid oci-layout file: \(Self.describe(error))",
                context: .init(path: markerPath))
        }
        guard version.hasPrefix("1.") else {
            throw UnpackError(
                .invalidImage,
                "\(markerPath): unsupported imageLayoutVersion \"\(version.truncatedForMessage)\" (expected 1.x)",
                context: .init(path: markerPath))
        }
        let indexPath = path + "/index.json"
        let indexBytes = try Self.readSmallFile(
            in: directory, ["index.json"], display: indexPath, limit: limits.maxManifestBytes, what: "index.json")
        do throws(UnpackError) {
            index = try Self.decodeDocument(Index.self, from: indexBytes, expected: .ociIndex, where: indexPath)
        } catch {
            throw error.adding(path: indexPath)
        }
    }

    /// The file that holds a blob (safe: a `Digest` is validated hex), for messages.
    public func blobPath(_ digest: Digest) -> String {
        "\(path)/blobs/\(digest.algorithm.rawValue)/\(digest.encoded)"
    }

    private static func blobComponents(_ digest: Digest) -> [String] {
        ["blobs", digest.algorithm.rawValue, digest.encoded]
    }

    /// Whether something exists where the blob should be (it may still be corrupt, a symlink or
    /// not a regular file: opening it says which).
    public func hasBlob(_ digest: Digest) -> Bool {
        if case .failure(.missing) = Self.openBeneath(directory, Self.blobComponents(digest)) { return false }
        return true
    }

    /// Why a file of the layout could not be opened.
    enum LayoutFileFailure: Error {
        /// It, or a directory on the way, does not exist.
        case missing(SystemError)
        /// A symlink on the way (named), which would lead out of the layout.
        case symlink(String)
        /// Not a regular file (a FIFO, a device, a directory).
        case notRegular
        case failed(SystemError)
    }

    /// Opens `components` beneath `directory` for reading, following no symlink and opening only
    /// a regular file (first with O_PATH, which runs no driver and does not block on a FIFO).
    static func openBeneath(_ directory: OwnedFD, _ components: [String]) -> Result<OwnedFD, LayoutFileFailure> {
        var current = directory
        for (i, component) in components.enumerated() {
            let fd = openat(current.rawValue, component, O_PATH_VALUE | O_NOFOLLOW | O_CLOEXEC)
            let walked = components[...i].joined(separator: "/")
            guard fd >= 0 else {
                let error = SystemError(call: "openat", errno: errno, path: walked)
                return .failure(error.errno == ENOENT || error.errno == ENOTDIR ? .missing(error) : .failed(error))
            }
            let handle = OwnedFD(fd)
            let st: stat
            do throws(SystemError) {
                st = try handle.status()
            } catch {
                return .failure(.failed(error))
            }
            if (st.st_mode & S_IFMT) == S_IFLNK { return .failure(.symlink(walked)) }
            if i < components.count - 1 {
                guard st.isDirectory else {
                    return .failure(.missing(SystemError(call: "openat", errno: ENOTDIR, path: walked)))
                }
                current = handle
                continue
            }
            guard st.isRegularFile else { return .failure(.notRegular) }
            do throws(SystemError) {
                return .success(try OwnedFD.openForReading("/proc/self/fd/\(handle.rawValue)"))
            } catch {
                return .failure(.failed(error))
            }
        }
        return .failure(.notRegular)
    }

    /// Opens a blob and checks that its length is the descriptor's size.
    ///
    /// Messages never state the length or hash of bytes that did not verify: a layout could
    /// otherwise make oci-unpack an oracle on files it can reach.
    public func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> OwnedFD {
        let context = UnpackError.Context(digest: descriptor.digest, mediaType: descriptor.mediaType)
        let fd: OwnedFD
        switch Self.openBeneath(directory, Self.blobComponents(descriptor.digest)) {
        case .success(let opened): fd = opened
        case .failure(.missing(let error)):
            throw UnpackError(
                .notFound, "blob \(descriptor.digest) is missing from \(path)", context: context, underlying: error)
        case .failure(.symlink(let walked)):
            throw UnpackError(
                .invalidImage,
                "blob \(descriptor.digest) is reached through a symlink (\(path)/\(walked)): a layout's blobs must be its own files",
                context: context)
        case .failure(.notRegular):
            throw UnpackError(.invalidImage, "blob \(descriptor.digest) is not a regular file", context: context)
        case .failure(.failed(let error)):
            throw error.unpackError("blob \(descriptor.digest) cannot be read", context: context)
        }
        let st = try SystemError.mapping({ () throws(SystemError) in try fd.status() }) {
            $0.unpackError("blob \(descriptor.digest) cannot be read", context: context)
        }
        guard Int64(st.st_size) == descriptor.size else {
            throw UnpackError(
                .sizeMismatch,
                "blob \(descriptor.digest) is \(Int64(st.st_size) < descriptor.size ? "shorter" : "longer") than its descriptor's size \(descriptor.size)",
                context: context)
        }
        return fd
    }

    /// Reads a whole (small) blob, verifying size and digest.
    public func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
        let context = UnpackError.Context(digest: descriptor.digest, mediaType: descriptor.mediaType)
        guard descriptor.size <= Int64(limit) else {
            throw UnpackError(
                .limitExceeded,
                "blob \(descriptor.digest) (\(descriptor.mediaType)) is \(descriptor.size) bytes, over the \(limit)-byte limit for such documents",
                context: context)
        }
        let fd = try openBlob(descriptor)
        let read = try SystemError.mapping({ () throws(SystemError) in try fd.readAll(limit: Int(descriptor.size)) }) {
            $0.unpackError("blob \(descriptor.digest) cannot be read", context: context)
        }
        guard let bytes = read else {
            throw UnpackError(.sizeMismatch, "blob \(descriptor.digest) grew while being read", context: context)
        }
        guard Int64(bytes.count) == descriptor.size else {
            throw UnpackError(
                .sizeMismatch, "blob \(descriptor.digest) shrank while being read (descriptor size \(descriptor.size))",
                context: context)
        }
        guard Digest.of(bytes, algorithm: descriptor.digest.algorithm) == descriptor.digest else {
            throw UnpackError(
                .digestMismatch, "blob \(descriptor.digest) is corrupt: its content does not hash to its digest",
                context: context)
        }
        return bytes
    }

    /// Reads and decodes a manifest, checking its `mediaType` against the descriptor.
    public func manifest(_ descriptor: Descriptor) throws(UnpackError) -> Manifest {
        guard descriptor.mediaType.kind == .manifest else {
            throw UnpackError(
                .unsupportedMediaType,
                "descriptor \(descriptor.digest) has media type \(descriptor.mediaType), not an image manifest",
                context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
        }
        let bytes = try readBlob(descriptor, limit: limits.maxManifestBytes)
        do throws(UnpackError) {
            let manifest = try Self.decodeDocument(
                Manifest.self, from: bytes, expected: descriptor.mediaType,
                where: "manifest \(descriptor.digest)")
            guard manifest.config.mediaType.kind == .config else {
                throw UnpackError(
                    .unsupportedMediaType,
                    "manifest \(descriptor.digest) has config media type \(manifest.config.mediaType), which is not an image configuration (an artifact, not an image)",
                    context: .init(mediaType: manifest.config.mediaType))
            }
            return manifest
        } catch {
            throw error.adding(digest: descriptor.digest, mediaType: descriptor.mediaType)
        }
    }

    /// Reads and decodes an index (or Docker manifest list), checking its `mediaType`.
    public func index(_ descriptor: Descriptor) throws(UnpackError) -> Index {
        guard descriptor.mediaType.kind == .index else {
            throw UnpackError(
                .unsupportedMediaType,
                "descriptor \(descriptor.digest) has media type \(descriptor.mediaType), not an image index",
                context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
        }
        let bytes = try readBlob(descriptor, limit: limits.maxManifestBytes)
        do throws(UnpackError) {
            return try Self.decodeDocument(
                Index.self, from: bytes, expected: descriptor.mediaType,
                where: "index \(descriptor.digest)")
        } catch {
            throw error.adding(digest: descriptor.digest, mediaType: descriptor.mediaType)
        }
    }

    /// Reads and decodes an image configuration.
    public func config(_ descriptor: Descriptor) throws(UnpackError) -> ImageConfig {
        let context = UnpackError.Context(digest: descriptor.digest, mediaType: descriptor.mediaType)
        guard descriptor.mediaType.kind == .config else {
            throw UnpackError(
                .unsupportedMediaType,
                "config \(descriptor.digest) has media type \(descriptor.mediaType), not an image configuration",
                context: context)
        }
        let bytes = try readBlob(descriptor, limit: limits.maxConfigBytes)
        try Self.requireStrictJSON(bytes, place: "config \(descriptor.digest)")
        do {
            return try JSONDecoder().decode(ImageConfig.self, from: Data(bytes))
        } catch {
            throw UnpackError(
                .invalidImage,
                "config \(descriptor.digest) is not a valid image configuration: \(Self.describe(error))",
                context: context)
        }
    }

    /// Reads a blob named only by its digest (a digest reference not listed in any index) and
    /// works out what it is from its content.
    public func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor {
        guard hasBlob(digest) else {
            throw UnpackError(
                .notFound, "no manifest or index with digest \(digest) in \(path)", context: .init(digest: digest))
        }
        // The length is taken from the file, and the content is then checked against the digest:
        // what does not verify is reported without its length or hash.
        let size: Int64
        switch Self.openBeneath(directory, Self.blobComponents(digest)) {
        case .success(let fd):
            let st = try SystemError.mapping({ () throws(SystemError) in try fd.status() }) {
                $0.unpackError("blob \(digest) cannot be read", context: .init(digest: digest))
            }
            size = Int64(st.st_size)
        case .failure:
            // openBlob names the problem (a symlink, not a regular file).
            _ = try openBlob(Descriptor(mediaType: .ociManifest, digest: digest, size: 0))
            throw UnpackError(.internal, "blob \(digest) could not be opened", context: .init(digest: digest))
        }
        let probeDescriptor = Descriptor(mediaType: .ociManifest, digest: digest, size: size)
        let bytes = try readBlob(probeDescriptor, limit: limits.maxManifestBytes)
        let probe: DocumentProbe
        try Self.requireStrictJSON(bytes, place: "blob \(digest)")
        do {
            probe = try JSONDecoder().decode(DocumentProbe.self, from: Data(bytes))
        } catch {
            throw UnpackError(
                .invalidImage, "blob \(digest) is not a manifest or index: \(Self.describe(error))",
                context: .init(digest: digest))
        }
        let mediaType: MediaType
        if let declared = probe.mediaType {
            mediaType = declared
        } else if probe.manifests != nil && probe.config == nil {
            mediaType = .ociIndex
        } else if probe.config != nil && probe.manifests == nil {
            mediaType = .ociManifest
        } else {
            throw UnpackError(
                .invalidImage, "blob \(digest) is neither a manifest nor an index", context: .init(digest: digest))
        }
        guard mediaType.kind == .manifest || mediaType.kind == .index else {
            throw UnpackError(
                .unsupportedMediaType, "blob \(digest) has media type \(mediaType), not a manifest or index",
                context: .init(digest: digest, mediaType: mediaType))
        }
        return Descriptor(mediaType: mediaType, digest: digest, size: size)
    }

    // MARK: - Decoding

    /// The keys that tell a manifest from an index, read before the full decode.
    private struct DocumentProbe: Decodable {
        let mediaType: MediaType?
        let schemaVersion: Int?
        let manifests: [AnyDecodable]?
        let config: AnyDecodable?
        let layers: [AnyDecodable]?
    }

    private struct AnyDecodable: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    /// Decodes a manifest or index and checks that it is what the descriptor said it is: the
    /// embedded `mediaType` (when present) must equal the descriptor's, and an index must not carry
    /// `config`/`layers` nor a manifest `manifests` (CVE-2021-41190).
    public static func decodeDocument<T: Decodable>(
        _ type: T.Type, from bytes: [UInt8], expected: MediaType, where place: String
    ) throws(UnpackError) -> T {
        let data = Data(bytes)
        let probe: DocumentProbe
        try checkSizes(in: requireStrictJSON(bytes, place: place), place: place, at: "")
        do {
            probe = try JSONDecoder().decode(DocumentProbe.self, from: data)
        } catch {
            throw UnpackError(.invalidImage, "\(place) is malformed: \(describe(error))")
        }
        if let declared = probe.mediaType, declared != expected {
            throw UnpackError(
                .invalidImage,
                "\(place) declares media type \(declared) but was referenced as \(expected)",
                context: .init(mediaType: declared))
        }
        guard probe.schemaVersion == 2 else {
            throw UnpackError(
                .invalidImage,
                "\(place) has schemaVersion \(probe.schemaVersion.map(String.init) ?? "missing"), expected 2")
        }
        switch expected.kind {
        case .index:
            guard probe.config == nil, probe.layers == nil else {
                throw UnpackError(
                    .invalidImage,
                    "\(place) was referenced as an index but contains config/layers (a manifest posing as an index)")
            }
        case .manifest:
            guard probe.manifests == nil else {
                throw UnpackError(
                    .invalidImage,
                    "\(place) was referenced as a manifest but contains manifests (an index posing as a manifest)")
            }
        default:
            break
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw UnpackError(.invalidImage, "\(place) is malformed: \(describe(error))")
        }
    }

    /// Refuses a document that is not strict JSON (RFC 8259): above all one with a repeated key,
    /// which Go's encoding/json (docker, containerd, skopeo, scanners, policy engines) reads as its
    /// last value and Foundation's decoder as its first, so the same config would run as one user
    /// here and be vetted as another there. The typed decode that follows sees only strict JSON.
    @discardableResult
    static func requireStrictJSON(_ bytes: [UInt8], place: String) throws(UnpackError) -> JSONValue {
        do throws(JSONValue.SyntaxError) {
            return try JSONValue(parsing: bytes)
        } catch {
            throw UnpackError(.invalidImage, "\(place) is not strict JSON (RFC 8259, no repeated keys): \(error)")
        }
    }

    /// Every descriptor `size` must be an integer below 2^63: Foundation's decoder says
    /// only "not valid JSON" for one that does not fit, so it is named here, with its place.
    static func checkSizes(in value: JSONValue, place: String, at path: String) throws(UnpackError) {
        switch value {
        case .object(let members):
            for (key, member) in members.sorted(by: { $0.key < $1.key }) {
                let here = "\(path).\(key)"
                if key == "size" {
                    switch member {
                    case .int: break  // a negative one is refused, as such, by the descriptor
                    case .double:
                        throw UnpackError(
                            .invalidImage,
                            "\(place) has \(here.dropFirst()) out of range (a size is an integer from 0 to 2^63 - 1)")
                    default:
                        throw UnpackError(.invalidImage, "\(place) has \(here.dropFirst()) that is not a number")
                    }
                }
                try checkSizes(in: member, place: place, at: here)
            }
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                try checkSizes(in: element, place: place, at: "\(path)[\(index)]")
            }
        default:
            break
        }
    }

    private static func readSmallFile(
        in directory: OwnedFD, _ components: [String], display path: String, limit: Int, what: String
    ) throws(UnpackError) -> [UInt8] {
        let context = UnpackError.Context(path: path)
        let fd: OwnedFD
        switch openBeneath(directory, components) {
        case .success(let opened): fd = opened
        case .failure(.missing(let error)):
            throw UnpackError(
                .notFound, "\(path) is missing: not an OCI image layout (no \(what))", context: context,
                underlying: error)
        case .failure(.symlink):
            throw UnpackError(
                .invalidImage, "\(path) is a symlink: a layout's files must be its own", context: context)
        case .failure(.notRegular):
            throw UnpackError(.invalidImage, "\(path) is not a regular file", context: context)
        case .failure(.failed(let error)):
            throw error.unpackError("\(path) cannot be read", context: context)
        }
        let read = try SystemError.mapping({ () throws(SystemError) in try fd.readAll(limit: limit) }) {
            $0.unpackError("\(path) cannot be read", context: context)
        }
        guard let bytes = read else {
            throw UnpackError(.limitExceeded, "\(path) is larger than \(limit) bytes", context: context)
        }
        return bytes
    }

    /// A decoding error as one line: what was wrong and where in the document.
    static func describe(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "" : " at \(keys)"
        }
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing field \"\(key.stringValue)\"\(path(context))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "wrong type\(path(context)): \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return "\(context.debugDescription)\(path(context))"
        default:
            return "\(error)"
        }
    }
}
