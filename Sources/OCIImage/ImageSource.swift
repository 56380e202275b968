import FoundationEssentials

/// Size caps for the JSON documents of an image, so a hostile layout cannot make us read gigabytes
/// into memory.
public struct DocumentLimits: Sendable, Equatable {
    /// Largest manifest or index accepted (registries commonly cap manifests at 4 MiB).
    public var maxManifestBytes: Int
    /// Largest image configuration accepted.
    public var maxConfigBytes: Int
    /// Deepest nesting of indexes followed.
    public var maxIndexDepth: Int

    /// Limits with the given values; the defaults are 4 MiB, 8 MiB and 8 levels.
    public init(maxManifestBytes: Int = 4 << 20, maxConfigBytes: Int = 8 << 20, maxIndexDepth: Int = 8) {
        self.maxManifestBytes = maxManifestBytes
        self.maxConfigBytes = maxConfigBytes
        self.maxIndexDepth = maxIndexDepth
    }
}

/// A pull stream of bytes: each stage of the layer pipeline reads from the stage before it.
///
/// `read` fills at most `buffer.count` bytes and returns how many; 0 means the end of the stream,
/// reached only after the stage has verified what it must verify (size, digest, trailer).
public protocol ByteStream: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int
    /// The verdict on the bytes a source's stream gave: the pipeline's blob stage says, once,
    /// whether they had the descriptor's size and digest. A cache writes a blob while it streams
    /// and makes it visible only when told it verified, and drops a stored copy that did not.
    /// Other streams ignore it (the default). A requirement, not a cast: a dynamic cast to a
    /// protocol searches every conformance in the binary the first time.
    func blobVerified(_ verified: Bool)
}

extension ByteStream {
    /// Ignores the verdict.
    public func blobVerified(_ verified: Bool) {}
}

/// Where images are read from: the one seam between a store of blobs (an OCI layout today;
/// archives and registries later) and everything above it. Resolution reads its documents and
/// the pipeline its layer streams through it, by descriptor, so a new source touches neither.
///
/// A source returns bytes as it has them; what they must be is checked above it, by the same code
/// for every source: documents against size, digest and media type (`readBlob` and the
/// `manifest`/`index`/`config` readers), layer streams against size and digest while they stream.
public protocol ImageSource: Sendable {
    /// Where the images come from, for messages (a layout's path).
    var name: String { get }
    /// The source's own list of images (a layout's `index.json`), with their tags.
    var index: Index { get }
    /// Where that list comes from, for messages and `inspect`: `index.json` (the default), a
    /// docker archive's `manifest.json`, `the registry`.
    var indexOrigin: String { get }
    /// Size caps for the documents read from it.
    var limits: DocumentLimits { get }
    /// Whether something is stored for `digest` (it may still be corrupt, or not a blob at all:
    /// opening it says which).
    func hasBlob(_ digest: Digest) -> Bool
    /// ``hasBlob(_:)`` for several digests at once (a manifest's layers), which a remote source
    /// asks concurrently. The default asks one by one.
    func hasBlobs(_ digests: [Digest]) -> [Bool]
    /// A whole small blob (a manifest, an index, a config), of at most `limit` bytes: the bytes
    /// stored for the descriptor's digest, as they are. Every reader above the source checks them
    /// against the descriptor's size and digest (``checkedBlob(_:limit:)``); a source need not.
    func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8]
    /// A blob's bytes as a stream, for the layer pipeline, which checks its size and digest as
    /// they pass.
    func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream
    /// The descriptor of a blob known only by its digest (a digest reference no index lists),
    /// worked out from its content.
    func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor
    /// The signatures kept with the image beside its blobs, for a signature policy: a registry's
    /// sigstore attachments and the signatures of an `http(s)` lookaside (``SignatureRequest``).
    /// Layouts and archives keep none (the default).
    func signatures(_ request: SignatureRequest) throws(UnpackError) -> [StoredSignature]
    /// Which place served the blob `digest`, for a source of several (a registry's mirrors, a
    /// cache in front of a registry): `mirror HOST/REPOSITORY`, `registry HOST/REPOSITORY`,
    /// `cache DIR`. Nil for a blob not fetched, and for a source of one place (the default).
    func origin(of digest: Digest) -> String?
}

extension ImageSource {
    /// One by one.
    public func hasBlobs(_ digests: [Digest]) -> [Bool] { digests.map(hasBlob) }

    /// None.
    public func signatures(_ request: SignatureRequest) throws(UnpackError) -> [StoredSignature] { [] }

    /// Nil: one place.
    public func origin(of digest: Digest) -> String? { nil }
}

extension Descriptor {
    /// Refuses a document whose descriptor says it is larger than `limit`, before anything is read.
    package func checkDocumentSize(limit: Int) throws(UnpackError) {
        guard size <= Int64(limit) else {
            throw UnpackError(
                .limitExceeded,
                "blob \(digest) (\(mediaType)) is \(size) bytes, over the \(limit)-byte limit for such documents",
                context: .init(digest: digest, mediaType: mediaType))
        }
    }

    /// Checks bytes read for this descriptor: its size, then its digest. Messages state neither
    /// the length nor the hash of bytes that did not verify (a source must not become an oracle on
    /// what it can reach).
    package func checkContent(_ bytes: [UInt8], from place: String) throws(UnpackError) {
        let context = UnpackError.Context(digest: digest, mediaType: mediaType)
        guard Int64(bytes.count) == size else {
            throw UnpackError(
                .sizeMismatch, "blob \(digest) from \(place) does not have its descriptor's size \(size)",
                context: context)
        }
        guard Digest.of(bytes, algorithm: digest.algorithm) == digest else {
            throw UnpackError(
                .digestMismatch, "blob \(digest) from \(place) is corrupt: its content does not hash to its digest",
                context: context)
        }
    }
}

extension ImageSource {
    /// ``readBlob(_:limit:)``, checked against the descriptor's size and digest: the one place a
    /// document from any source is verified, so that a source that returns other bytes (a
    /// corrupt store, a lying or buggy ``ImageSource`` of a library user's) yields an error, never
    /// an unverified document.
    public func checkedBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
        try descriptor.checkDocumentSize(limit: limit)
        let bytes = try readBlob(descriptor, limit: limit)
        try descriptor.checkContent(bytes, from: name)
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
        let bytes = try checkedBlob(descriptor, limit: limits.maxManifestBytes)
        do throws(UnpackError) {
            let manifest = try ImageDocuments.manifest(
                from: bytes, expected: descriptor.mediaType, where: "manifest \(descriptor.digest)")
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
        let bytes = try checkedBlob(descriptor, limit: limits.maxManifestBytes)
        do throws(UnpackError) {
            return try ImageDocuments.index(
                from: bytes, expected: descriptor.mediaType, where: "index \(descriptor.digest)")
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
        let bytes = try checkedBlob(descriptor, limit: limits.maxConfigBytes)
        do throws(UnpackError) {
            return try ImageDocuments.config(from: bytes, where: "config \(descriptor.digest)")
        } catch {
            throw error.adding(digest: descriptor.digest, mediaType: descriptor.mediaType)
        }
    }
}

/// Reading image documents: strict JSON first (one meaning for every reader), then the typed
/// model, with each document's media type checked against the descriptor that led to it.
package enum ImageDocuments {
    /// What tells a manifest from an index, read before the whole document.
    package struct Probe {
        package var mediaType: MediaType?
        package var schemaVersion: Int64?
        package var hasManifests = false
        package var hasConfig = false
        package var hasLayers = false

        package init(_ value: JSONValue) {
            guard case .object(let members) = value else { return }
            func present(_ key: String) -> Bool {
                if let member = members[key], member != .null { return true }
                return false
            }
            if case .string(let type)? = members["mediaType"] { mediaType = MediaType(type) }
            if case .int(let version)? = members["schemaVersion"] { schemaVersion = version }
            hasManifests = present("manifests")
            hasConfig = present("config")
            hasLayers = present("layers")
        }
    }

    /// Reads a manifest, checking that it is what the descriptor said it is.
    package static func manifest(from bytes: [UInt8], expected: MediaType, where place: String)
        throws(UnpackError) -> Manifest
    {
        let fields = try document(bytes, expected: expected, place: place)
        // image-spec after 1.1.1: a manifest may leave `config` out. It describes an artifact.
        if fields.members["config"] == nil {
            let type = (try? fields.optionalString("artifactType")).flatMap { $0 }.map { " of type \($0)" } ?? ""
            throw UnpackError(
                .unsupportedMediaType,
                "\(place) has no config: an artifact\(type), not an image, which cannot be unpacked")
        }
        do throws(DocumentFields.Problem) {
            return try Manifest(fields: fields)
        } catch {
            throw unusable(error, place: place, otherwise: "\(place) is malformed: \(error)")
        }
    }

    /// Reads an index (or Docker manifest list), checking that it is what the descriptor said.
    package static func index(from bytes: [UInt8], expected: MediaType, where place: String)
        throws(UnpackError) -> Index
    {
        let fields = try document(bytes, expected: expected, place: place)
        do throws(DocumentFields.Problem) {
            return try Index(fields: fields)
        } catch {
            throw UnpackError(.invalidImage, "\(place) is malformed: \(error)")
        }
    }

    /// Checks an `oci-layout` file (a layout's or an archived layout's): strict JSON with an
    /// `imageLayoutVersion` of 1.x.
    package static func checkLayoutMarker(_ bytes: [UInt8], place: String) throws(UnpackError) {
        let value = try requireStrictJSON(bytes, place: place)
        let version: String
        do throws(DocumentFields.Problem) {
            version = try DocumentFields(value, at: "").string("imageLayoutVersion")
        } catch {
            throw UnpackError(
                .invalidImage, "\(place) is not a valid oci-layout file: \(error)", context: .init(path: place))
        }
        guard version.hasPrefix("1.") else {
            throw UnpackError(
                .invalidImage,
                "\(place): unsupported imageLayoutVersion \"\(version.truncatedForMessage)\" (expected 1.x)",
                context: .init(path: place))
        }
    }

    /// What a blob named only by its digest is, from its verified content: a manifest or an index
    /// (by its `mediaType`, else by its fields), or an error saying why it is neither.
    package static func sniffDescriptor(_ bytes: [UInt8], digest: Digest) throws(UnpackError) -> Descriptor {
        let probe = Probe(try requireStrictJSON(bytes, place: "blob \(digest)"))
        let mediaType: MediaType
        if let declared = probe.mediaType {
            mediaType = declared
        } else if probe.hasManifests && !probe.hasConfig {
            mediaType = .ociIndex
        } else if probe.hasConfig && !probe.hasManifests {
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
        return Descriptor(mediaType: mediaType, digest: digest, size: Int64(bytes.count))
    }

    /// Reads an image configuration.
    package static func config(from bytes: [UInt8], where place: String) throws(UnpackError) -> ImageConfig {
        let value = try requireStrictJSON(bytes, place: place)
        do throws(DocumentFields.Problem) {
            return try ImageConfig(fields: DocumentFields(value, at: ""))
        } catch {
            throw unusable(error, place: place, otherwise: "\(place) is not a valid image configuration: \(error)")
        }
    }

    /// A document naming a digest of an algorithm oci-unpack cannot verify is well-formed but
    /// unusable (the candidate is refused, never unpacked unverified); anything else is malformed.
    static func unusable(_ problem: DocumentFields.Problem, place: String, otherwise message: String) -> UnpackError {
        guard let algorithm = problem.unverifiableAlgorithm else { return UnpackError(.invalidImage, message) }
        return UnpackError(
            .unsupportedMediaType,
            "\(place) names a digest of algorithm \(algorithm), which oci-unpack cannot verify (supported: sha256, sha512): \(problem)"
        )
    }

    /// The strict parse and the checks every manifest and index gets: the embedded `mediaType`
    /// (when present) must equal the descriptor's, `schemaVersion` must be 2, and an index must not
    /// carry `config`/`layers` nor a manifest `manifests` (CVE-2021-41190).
    static func document(_ bytes: [UInt8], expected: MediaType, place: String) throws(UnpackError)
        -> DocumentFields
    {
        let value = try requireStrictJSON(bytes, place: place)
        try checkSizes(in: value, place: place, at: "")
        let probe = Probe(value)
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
            guard !probe.hasConfig, !probe.hasLayers else {
                throw UnpackError(
                    .invalidImage,
                    "\(place) was referenced as an index but contains config/layers (a manifest posing as an index)")
            }
        case .manifest:
            guard !probe.hasManifests else {
                throw UnpackError(
                    .invalidImage,
                    "\(place) was referenced as a manifest but contains manifests (an index posing as a manifest)")
            }
        default:
            break
        }
        do throws(DocumentFields.Problem) {
            return try DocumentFields(value, at: "")
        } catch {
            throw UnpackError(.invalidImage, "\(place) is malformed: \(error)")
        }
    }

    /// Refuses a document that is not strict JSON (RFC 8259): above all one with a repeated key,
    /// which Go's encoding/json (docker, containerd, skopeo, scanners, policy engines) reads as its
    /// last value and Foundation's decoder as its first, so the same config would run as one user
    /// here and be vetted as another there. The typed decode that follows sees only strict JSON.
    @discardableResult
    package static func requireStrictJSON(_ bytes: [UInt8], place: String) throws(UnpackError) -> JSONValue {
        do throws(JSONValue.SyntaxError) {
            return try JSONValue(parsing: bytes)
        } catch {
            throw UnpackError(.invalidImage, "\(place) is not strict JSON (RFC 8259, no repeated keys): \(error)")
        }
    }

    /// Every descriptor `size` must be an integer below 2^63: Foundation's decoder says
    /// only "not valid JSON" for one that does not fit, so it is named here, with its place.
    package static func checkSizes(in value: JSONValue, place: String, at path: String) throws(UnpackError) {
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
}

extension ImageSource {
    /// A layout's list of images, `index.json`.
    public var indexOrigin: String { "index.json" }
}
