/// The one error type of oci-unpack.
///
/// Every failure a user can cause (a bad reference, a missing blob, a hostile layer) is an
/// `UnpackError` with a ``Code`` that maps to a documented exit code, one sentence of ``message``
/// naming the thing at fault, and the ``context`` facts (digest, media type, layer index, path).
public struct UnpackError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. Each code has its own documented exit code.
    ///
    /// Exit codes never give a sysexits.h number another meaning (supervisors act on them: 75,
    /// EX_TEMPFAIL, invites a retry): the four that match a sysexits.h meaning use its number
    /// (64 EX_USAGE, 66 EX_NOINPUT, 74 EX_IOERR, 77 EX_NOPERM), the others are 80-89, 1 is a bug
    /// and 130 a signal.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A short stable name, used in `--json` output and logs.
        public let name: String
        /// The process exit code the CLI uses for this code.
        public let exitCode: Int32

        /// A code with its stable name and exit code.
        public init(name: String, exitCode: Int32) {
            self.name = name
            self.exitCode = exitCode
        }

        /// The code's stable name.
        public var description: String { name }

        /// Something unexpected inside oci-unpack itself.
        public static let `internal` = Code(name: "internal", exitCode: 1)
        /// A malformed argument: image reference, platform string, option value.
        public static let invalidArgument = Code(name: "invalidArgument", exitCode: 64)
        /// The image layout, a tag, or a blob does not exist.
        public static let notFound = Code(name: "notFound", exitCode: 66)
        /// No manifest in the image is for the requested platform.
        public static let platformNotFound = Code(name: "platformNotFound", exitCode: 80)
        /// No candidate manifest (or a required layer) uses media types oci-unpack can process.
        public static let unsupportedMediaType = Code(name: "unsupportedMediaType", exitCode: 81)
        /// A blob's content does not hash to its digest, or a layer's tar stream to its diff_id.
        public static let digestMismatch = Code(name: "digestMismatch", exitCode: 82)
        /// A blob's length differs from its descriptor's size.
        public static let sizeMismatch = Code(name: "sizeMismatch", exitCode: 83)
        /// The image's JSON documents are malformed or inconsistent with each other.
        public static let invalidImage = Code(name: "invalidImage", exitCode: 84)
        /// A layer's compressed or tar stream is corrupt or truncated.
        public static let corruptLayer = Code(name: "corruptLayer", exitCode: 85)
        /// A layer entry tried to leave the root filesystem.
        public static let unsafePath = Code(name: "unsafePath", exitCode: 86)
        /// The target bundle exists and is not empty (and `--force` was not given).
        public static let bundleExists = Code(name: "bundleExists", exitCode: 87)
        /// The operating system refused an operation for lack of privilege.
        public static let permissionDenied = Code(name: "permissionDenied", exitCode: 77)
        /// A configured resource limit was exceeded.
        public static let limitExceeded = Code(name: "limitExceeded", exitCode: 88)
        /// `verify-variants`: the variants of one image do not yield the same filesystem.
        public static let variantsDiffer = Code(name: "variantsDiffer", exitCode: 89)
        /// A system call failed for another reason (disk full, I/O error).
        public static let io = Code(name: "io", exitCode: 74)
        /// The run was stopped by a terminating signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT, …).
        public static let interrupted = Code(name: "interrupted", exitCode: 130)

        /// Every code, in the order the README documents them.
        public static let all: [Code] = [
            .internal, .invalidArgument, .notFound, .platformNotFound, .unsupportedMediaType,
            .digestMismatch, .sizeMismatch, .invalidImage, .corruptLayer, .unsafePath, .bundleExists,
            .limitExceeded, .variantsDiffer, .io, .permissionDenied, .interrupted,
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
