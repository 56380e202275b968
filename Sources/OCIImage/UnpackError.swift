/// The one error type of oci-unpack.
///
/// Every failure a user can cause (a bad reference, a missing blob, a hostile layer) is an
/// `UnpackError` with a ``Code`` (which the command line maps to a documented exit status), one sentence of ``message``
/// naming the thing at fault, and the ``context`` facts (digest, media type, layer index, path).
public struct UnpackError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is, by a short stable name.
    ///
    /// The model says what went wrong; which process exit status a code becomes is the command
    /// line's decision (docs/exit-codes.md), so a library user never meets exit numbers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short stable name, used in `--json` output and logs.
        public let name: String

        /// A code with its stable name.
        public init(name: String) {
            self.name = name
        }

        /// The code's stable name.
        public var description: String { name }

        /// Something unexpected inside oci-unpack itself.
        public static let `internal` = Code(name: "internal")
        /// A malformed argument: image reference, platform string, option value.
        public static let invalidArgument = Code(name: "invalidArgument")
        /// The image layout, a tag, or a blob does not exist.
        public static let notFound = Code(name: "notFound")
        /// No manifest in the image is for the requested platform.
        public static let platformNotFound = Code(name: "platformNotFound")
        /// No candidate manifest (or a required layer) uses media types oci-unpack can process.
        public static let unsupportedMediaType = Code(name: "unsupportedMediaType")
        /// A blob's content does not hash to its digest, or a layer's tar stream to its diff_id.
        public static let digestMismatch = Code(name: "digestMismatch")
        /// A blob's length differs from its descriptor's size.
        public static let sizeMismatch = Code(name: "sizeMismatch")
        /// The image's JSON documents are malformed or inconsistent with each other.
        public static let invalidImage = Code(name: "invalidImage")
        /// A layer's compressed or tar stream is corrupt or truncated.
        public static let corruptLayer = Code(name: "corruptLayer")
        /// A layer entry tried to leave the root filesystem.
        public static let unsafePath = Code(name: "unsafePath")
        /// The target bundle exists and is not empty (and `--force` was not given).
        public static let bundleExists = Code(name: "bundleExists")
        /// The operating system refused an operation for lack of privilege.
        public static let permissionDenied = Code(name: "permissionDenied")
        /// A configured resource limit was exceeded.
        public static let limitExceeded = Code(name: "limitExceeded")
        /// `verify-variants`: the variants of one image do not yield the same filesystem.
        public static let variantsDiffer = Code(name: "variantsDiffer")
        /// The image was refused by the site's policy: the signature policy (policy.json), a
        /// `--verifier-dir` program, or a registries.conf `blocked` namespace.
        public static let policyRejected = Code(name: "policyRejected")
        /// A system call failed for another reason (disk full, I/O error).
        public static let io = Code(name: "io")
        /// The run was stopped by a terminating signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, …).
        public static let interrupted = Code(name: "interrupted")

        /// Every code, in the order the README documents them.
        public static let all: [Code] = [
            .internal, .invalidArgument, .notFound, .platformNotFound, .unsupportedMediaType,
            .digestMismatch, .sizeMismatch, .invalidImage, .corruptLayer, .unsafePath, .bundleExists,
            .limitExceeded, .variantsDiffer, .policyRejected, .io, .permissionDenied, .interrupted,
        ]
    }

    /// Facts about where the failure happened; each is optional.
    public struct Context: Sendable, Equatable {
        /// The blob concerned.
        public var digest: Digest?
        /// The media type of the blob concerned.
        public var mediaType: MediaType?
        /// The position of the layer concerned in the manifest, counting from 0.
        public var layerIndex: Int?
        /// The path concerned: a layer entry's name, or a file of the layout or bundle.
        public var path: String?

        /// Context with the given facts; those not known stay nil.
        public init(digest: Digest? = nil, mediaType: MediaType? = nil, layerIndex: Int? = nil, path: String? = nil) {
            self.digest = digest
            self.mediaType = mediaType
            self.layerIndex = layerIndex
            self.path = path
        }
    }

    /// The kind of failure, which sets the exit code.
    public var code: Code
    /// One sentence for the user, naming the thing at fault.
    public var message: String
    /// Facts about where the failure happened (blob, media type, layer, path).
    public var context: Context
    /// The lower-level error behind this one (a system error, a decoder error), if any.
    public var underlying: (any Error & Sendable)?

    /// An error of kind `code` with its one-sentence `message`, context facts and underlying error.
    public init(
        _ code: Code, _ message: String, context: Context = Context(), underlying: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.context = context
        self.underlying = underlying
    }

    /// The message followed by the context facts it does not already name, e.g.
    /// `… [layer 2, blob sha256:…, media type …+zstd, entry etc/passwd]`.
    public var description: String {
        var facts: [String] = []
        if let layer = context.layerIndex, !message.contains("layer \(layer)") { facts.append("layer \(layer)") }
        if let digest = context.digest, !message.contains(digest.description) { facts.append("blob \(digest)") }
        if let mediaType = context.mediaType, !message.contains(mediaType.rawValue) {
            facts.append("media type \(mediaType)")
        }
        if let path = context.path, !message.contains(path) { facts.append("entry \(path)") }
        return facts.isEmpty ? message : "\(message) [\(facts.joined(separator: ", "))]"
    }

    /// Returns a copy with the layer index and other facts filled in where they were not yet known.
    public func adding(
        layerIndex: Int? = nil, digest: Digest? = nil, mediaType: MediaType? = nil, path: String? = nil
    ) -> UnpackError {
        var copy = self
        copy.context.layerIndex = copy.context.layerIndex ?? layerIndex
        copy.context.digest = copy.context.digest ?? digest
        copy.context.mediaType = copy.context.mediaType ?? mediaType
        copy.context.path = copy.context.path ?? path
        return copy
    }
}
