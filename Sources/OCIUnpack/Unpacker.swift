import ArchiveSource
import LayoutSource
import Logging
import OCIImage
import Resolution

/// The entry point of the library: resolves an image reference to one manifest of one platform
/// and compression variant, and unpacks it into an OCI runtime bundle.
///
/// ```swift
/// let unpacker = Unpacker()
/// let result = try unpacker.unpack(
///     "oci:/images/app:latest", into: "/run/bundles/app",
///     request: ResolutionRequest(platform: try Platform(parsing: "linux/arm64")))
/// print(result.image.manifestDescriptor.digest, result.rootfs)
/// ```
public struct Unpacker: Sendable {
    /// oci-unpack's version (`oci-unpack --version`; recorded in the layers a store holds).
    public static let version = "0.1.0"

    /// Where debug and informational messages go.
    public var logger: Logger
    /// Size caps for the image's JSON documents.
    public var documentLimits: DocumentLimits
    /// Credentials, TLS and the cache for `docker://` references.
    public var registry: RegistryOptions
    /// What reaches registries (`RegistryClientAccess()` from the `OCIUnpackRegistries` library);
    /// without it a `docker://` reference is refused.
    public var registries: (any RegistryAccess)?

    /// An unpacker logging to `logger`, reading documents within `documentLimits`, reaching
    /// registries through `registries` as `registry` says.
    public init(
        logger: Logger = Logger(label: "oci-unpack"), documentLimits: DocumentLimits = .init(),
        registry: RegistryOptions = .init(), registries: (any RegistryAccess)? = nil
    ) {
        self.logger = logger
        self.documentLimits = documentLimits
        self.registry = registry
        self.registries = registries
    }

    /// Parses `reference` (`oci:PATH[:TAG]`, `oci:PATH@DIGEST` or `PATH[:TAG]`), opens its layout
    /// and resolves it for `request`.
    public func resolve(_ reference: String, request: ResolutionRequest) throws(UnpackError) -> ResolvedImage {
        let parsed = try ImageReference(parsing: reference)
        return try resolve(parsed, request: request)
    }

    /// Opens the layout `reference` names and resolves it for `request`.
    public func resolve(_ reference: ImageReference, request: ResolutionRequest) throws(UnpackError) -> ResolvedImage {
        try resolve(reference, in: try openSource(reference), request: request)
    }

    /// The store `reference` names: an OCI layout directory, an OCI archive or a docker archive
    /// (each read in place), or a registry (behind the `--cache` blob store when `registry.cache`
    /// is set).
    public func openSource(_ reference: ImageReference) throws(UnpackError) -> any ImageSource {
        switch reference.transport {
        case .layout: try ReferenceHints.openLayout(reference, limits: documentLimits)
        case .ociArchive: try OCIArchive(path: reference.layoutPath, limits: documentLimits)
        case .dockerArchive: try DockerArchive(path: reference.layoutPath, limits: documentLimits)
        case .registry:
            try registryAccess(for: reference).openSource(
                reference, options: registry, limits: documentLimits,
                onWarning: { [logger] message in logger.warning("\(message)") })
        }
    }

    private func registryAccess(for reference: ImageReference) throws(UnpackError) -> any RegistryAccess {
        guard let registries else {
            throw UnpackError(
                .invalidArgument,
                "\(reference) is in a registry, and this unpacker was made without registry access (Unpacker(registries: RegistryClientAccess()), from the OCIUnpackRegistries library)"
            )
        }
        return registries
    }

    /// Resolves `reference`'s tag or digest in any source of images (see ``ImageSource``).
    public func resolve(_ reference: ImageReference, in source: any ImageSource, request: ResolutionRequest)
        throws(UnpackError) -> ResolvedImage
    {
        var reference = reference
        // A short name is what the source resolved it to (registries.conf's alias or search
        // registry): that name, not docker's default, is what verifiers, inspect and logs see.
        if reference.transport == .registry, reference.shortName != nil, source.name.hasPrefix("docker://") {
            let resolvedName = String(source.name.dropFirst("docker://".count))
            if resolvedName != reference.layoutPath {
                reference = ImageReference(layoutPath: resolvedName, selector: reference.selector, transport: .registry)
            }
        }
        let resolved = try Resolver(source: source).resolve(reference, request: request)
        logger.debug(
            "resolved image",
            metadata: [
                "reference": "\(reference)", "manifest": "\(resolved.manifestDescriptor.digest)",
                "platform": "\(resolved.platform)",
            ])
        return resolved
    }
}
