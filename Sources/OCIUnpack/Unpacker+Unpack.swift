import Glibc
import LayerApply
import LayerEngine
import LayerStream
import LayoutSource
import Logging
import OCIImage
import Resolution
import RuntimeBundle
import UnpackSystem

extension Unpacker {
    /// Layers whose streams are opened while an earlier one is applied (see `unpack`).
    static let layersAhead = 3

    /// Resolves `reference`, applies its layers in order onto `bundle/rootfs`, and publishes the
    /// bundle only when every layer verified and applied; on any error nothing is left behind.
    public func unpack(
        _ reference: String, into bundle: String, request: ResolutionRequest, options: UnpackOptions = .init()
    ) throws(UnpackError) -> UnpackResult {
        // A target that can never be published is refused before any work, and so is an
        // ownership this process cannot give.
        try BundleStaging.checkTarget(bundle, force: options.force)
        try Self.checkPrivileges(for: options.ownership)
        return try unpack(try resolve(reference, request: request), into: bundle, options: options)
    }

    /// Applies the layers of an image already resolved, from the source it was resolved in
    /// (`ResolvedImage.source`: a layout, an archive, a registry, or any ``ImageSource`` of the
    /// caller's, through ``resolve(_:in:request:)``), onto `bundle/rootfs`, and publishes the
    /// bundle only when every layer verified and applied; on any error nothing is left behind.
    /// What the source returns is verified above it: documents against their descriptors when
    /// resolved, each layer's blob digest, size and diff_id while it streams.
    public func unpack(_ image: ResolvedImage, into bundle: String, options: UnpackOptions = .init())
        throws(UnpackError) -> UnpackResult
    {
        try BundleStaging.checkTarget(bundle, force: options.force)
        try Self.checkPrivileges(for: options.ownership)
        try checkUnpackable(image, options: options)
        let cancellation = options.cancellation
        let checkpoint: () throws(UnpackError) -> Void
        if let cancellation {
            checkpoint = { () throws(UnpackError) in try cancellation.check() }
        } else {
            checkpoint = {}
        }
        let output = try BundleOutput(bundle: bundle, options: options, checkpoint: checkpoint)
        let result = try run(image, into: output, options: options, checkpoint: checkpoint)
        logger.info(
            "unpacked image",
            metadata: [
                "bundle": "\(bundle)", "manifest": "\(image.manifestDescriptor.digest)",
                "layers": "\(image.layers.count)",
            ])
        return result
    }

    /// The engine: every layer of `image` through the layer driver into `output`'s consumer, then
    /// the output published; on any error the output is discarded.
    func run(
        _ image: ResolvedImage, into output: some UnpackOutput, options: UnpackOptions,
        checkpoint: @escaping () throws(UnpackError) -> Void
    ) throws(UnpackError) -> UnpackResult {
        do throws(UnpackError) {
            let layerCount = image.layers.count
            let logger = self.logger
            let progress = options.progress.map { report in
                { (step: LayerDriver.Progress) in
                    report(
                        UnpackProgress(
                            layerIndex: step.layer.index, layerCount: layerCount, digest: step.layer.descriptor.digest,
                            bytesDone: step.bytesDone, bytesTotal: step.layer.descriptor.size,
                            layerFinished: step.finished))
                }
            }
            let driver = LayerDriver(
                source: image.source, layers: image.layers,
                settings: LayerDriver.Settings(
                    limits: options.limits, gzip: options.gzipDecoder.implementation, prefetch: options.prefetch,
                    readAhead: Self.layersAhead, warn: { logger.warning("\($0)") }, checkpoint: checkpoint,
                    progress: progress))
            let entries = try driver.run(into: output.consumer)
            try checkpoint()
            let target = try output.publish(image, checkpoint: checkpoint)
            logOrigins(image)
            return UnpackResult(image: image, bundle: target, entries: entries)
        } catch {
            output.discard()
            throw error
        }
    }

    /// Says in the log which mirror, registry or cache served each layer that was fetched.
    func logOrigins(_ image: ResolvedImage) {
        for (i, layer) in image.layers.enumerated() {
            guard let origin = image.source.origin(of: layer.descriptor.digest) else { continue }
            logger.info(
                "layer served",
                metadata: [
                    "layer": "\(i + 1)/\(image.layers.count)", "digest": "\(layer.descriptor.digest)",
                    "from": "\(origin)",
                ])
        }
    }

    /// What can be refused before any work: a layer of a media type that cannot be unpacked, an
    /// image the signature policy or a verifier program refuses, and a config that cannot become
    /// config.json (with the overrides); and a warning for an image with nothing to run.
    func checkUnpackable(_ image: ResolvedImage, options: UnpackOptions) throws(UnpackError) {
        for layer in image.layers where layer.descriptor.mediaType.layerCompression == nil {
            throw UnpackError(
                .unsupportedMediaType,
                "layer \(layer.index) (\(layer.descriptor.digest)) has media type \(layer.descriptor.mediaType), which cannot be unpacked",
                context: .init(
                    digest: layer.descriptor.digest, mediaType: layer.descriptor.mediaType, layerIndex: layer.index))
        }
        // Trust first: the policy (its signatures), then the site's verifier programs.
        try checkPolicy(image, options: options.signaturePolicy)
        if let directory = options.verifierDirectory {
            try ImageVerifiers.check(image, directory: directory, timeout: options.verifierTimeout)
        }
        try RuntimeConfig.precheck(image: image.config, overrides: options.overrides)
        // What resolution noticed (an alternative whose blob a copying tool did not carry).
        for warning in image.warnings { options.apply.warn(warning) }
        if RuntimeConfig.arguments(image: image.config, overrides: options.overrides).isEmpty {
            options.apply.warn(
                "the image has neither Entrypoint nor Cmd: config.json's process.args is empty; give a command after \"--\" to make it runnable"
            )
        }
    }

    /// The image's own owners need root (in some user namespace); shifted owners need root in
    /// the initial one, which alone can give any host id.
    static func checkPrivileges(for ownership: Ownership) throws(UnpackError) {
        switch ownership {
        case .rootless:
            return
        case .preserve, .namespaced:
            guard geteuid() == 0 else {
                throw UnpackError(
                    .permissionDenied,
                    "restoring the image's owners needs root; unpack rootless instead (the default for other users)")
            }
        case .mapped:
            guard IDMapping.fullyPrivileged else {
                throw UnpackError(
                    .permissionDenied,
                    "an id-mapped unpack (--uid-map, --gid-map) needs root in the initial user namespace, which alone can give files any host id"
                )
            }
        }
    }
}
