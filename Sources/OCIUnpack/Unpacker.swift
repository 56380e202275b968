@_exported import LayerApply
@_exported import LayerStream
import LayoutSource
import Logging
@_exported import OCIImage
@_exported import Resolution

/// The public entry point of the library: resolve an image reference to a manifest (and, with the
/// layer pipeline, unpack it).
public struct Unpacker: Sendable {
    public var logger: Logger
    public var documentLimits: DocumentLimits

    public init(logger: Logger = Logger(label: "oci-unpack"), documentLimits: DocumentLimits = .init()) {
        self.logger = logger
        self.documentLimits = documentLimits
    }

    /// Parses `reference`, opens its layout and resolves it for `request`.
    public func resolve(_ reference: String, request: ResolutionRequest) throws(UnpackError) -> ResolvedImage {
        let parsed = try ImageReference(parsing: reference)
        return try resolve(parsed, request: request)
    }

    public func resolve(_ reference: ImageReference, request: ResolutionRequest) throws(UnpackError) -> ResolvedImage {
        let layout = try OCILayout(path: reference.layoutPath, limits: documentLimits)
        let resolved = try Resolver(source: layout).resolve(reference, request: request)
        logger.debug(
            "resolved image",
            metadata: [
                "reference": "\(reference)", "manifest": "\(resolved.manifestDescriptor.digest)",
                "platform": "\(resolved.platform)",
            ])
        return resolved
    }
}
