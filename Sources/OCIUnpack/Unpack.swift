import LayerApply
import LayerStream
import Logging
@_exported import RuntimeBundle
import UnpackSystem

/// Progress of one layer, reported between entries and when a layer ends.
public struct UnpackProgress: Sendable {
    public let layerIndex: Int
    public let layerCount: Int
    public let digest: Digest
    /// Compressed bytes of the blob read so far, and its size.
    public let bytesDone: Int64
    public let bytesTotal: Int64
    public let layerFinished: Bool
}

/// Options of `Unpacker.unpack`.
public struct UnpackOptions: Sendable {
    /// Replace an existing non-empty bundle (only after everything succeeded).
    public var force: Bool
    public var apply: ApplyOptions
    public var progress: (@Sendable (UnpackProgress) -> Void)?
    /// Stop between entries when SIGINT/SIGTERM arrived (after `Interrupts.install()`).
    public var honourInterrupts: Bool
    /// The gzip implementation (ISA-L by default; zlib is the reference).
    public var gzip: LayerDecoder.GzipImplementation = .isal
    /// Decompress and hash on a second thread, ahead of tar parsing and application.
    public var prefetch = true
    /// The runtime-spec template for `config.json`; `nil`: the built-in bundle-templates/default.json.
    public var template: JSONValue?
    /// Command-line changes to the converted configuration.
    public var overrides: ConfigOverrides

    public init(
        force: Bool = false, apply: ApplyOptions = .init(), progress: (@Sendable (UnpackProgress) -> Void)? = nil,
        honourInterrupts: Bool = true, template: JSONValue? = nil, overrides: ConfigOverrides = .init(),
        limits: UnpackLimits = .init()
    ) {
        self.force = force
        self.apply = apply
        self.progress = progress
        self.honourInterrupts = honourInterrupts
        self.template = template
        self.overrides = overrides
        self.apply.limits = limits
    }

    /// The resource limits (kept in `apply`, which enforces most of them).
    public var limits: UnpackLimits {
        get { apply.limits }
        set { apply.limits = newValue }
    }
}

/// What `unpack` produced.
public struct UnpackResult: Sendable {
    public let image: ResolvedImage
    public let bundle: String
    public var rootfs: String { bundle + "/rootfs" }
    /// Tar entries applied, per layer.
    public let entries: [Int]
}

extension Unpacker {
    /// Resolves `reference`, applies its layers in order onto `bundle/rootfs`, and publishes the
    /// bundle only when every layer verified and applied; on any error nothing is left behind.
    public func unpack(
        _ reference: String, into bundle: String, request: ResolutionRequest, options: UnpackOptions = .init()
    ) throws(UnpackError) -> UnpackResult {
        // A target that can never be published is refused before any work.
        try BundleStaging.checkTarget(bundle, force: options.force)
        let image = try resolve(reference, request: request)
        // Every layer's media type is checked before any work starts.
        for layer in image.layers where layer.descriptor.mediaType.layerCompression == nil {
            throw UnpackError(
                .unsupportedMediaType,
                "layer \(layer.index) (\(layer.descriptor.digest)) has media type \(layer.descriptor.mediaType), which cannot be unpacked",
                context: .init(
                    digest: layer.descriptor.digest, mediaType: layer.descriptor.mediaType, layerIndex: layer.index))
        }
        // What can be refused without unpacking is refused first.
        try RuntimeConfig.precheck(image: image.config, overrides: options.overrides)
        if RuntimeConfig.arguments(image: image.config, overrides: options.overrides).isEmpty {
            options.apply.warn(
                "the image has neither Entrypoint nor Cmd: config.json's process.args is empty; give a command after \"--\" to make it runnable"
            )
        }
        let template: JSONValue
        if let given = options.template {
            template = given
        } else {
            template = try RuntimeConfig.defaultTemplate()
        }
        let staging = try BundleStaging(target: bundle, force: options.force, warn: options.apply.warn)
        do throws(UnpackError) {
            let checkpoint: () throws(UnpackError) -> Void =
                options.honourInterrupts ? { () throws(UnpackError) in try Interrupts.check() } : {}
            let applier = try Applier(rootPath: staging.rootfs, options: options.apply, checkpoint: checkpoint)
            let source = image.source
            var entries: [Int] = []
            var uncompressed: Int64 = 0
            for layer in image.layers {
                do throws(UnpackError) {
                    let (count, bytes) = try apply(
                        layer, of: image, from: source, with: applier, options: options, uncompressedSoFar: uncompressed
                    )
                    entries.append(count)
                    uncompressed += bytes
                } catch {
                    throw error.adding(
                        layerIndex: layer.index, digest: layer.descriptor.digest, mediaType: layer.descriptor.mediaType)
                }
            }
            try Interrupts.checkIf(options.honourInterrupts)
            try writeConfig(image: image, template: template, root: applier.root, staging: staging, options: options)
            // The last moment a signal can still leave the target as it was.
            try Interrupts.checkIf(options.honourInterrupts)
            try staging.publish()
            logger.info(
                "unpacked image",
                metadata: [
                    "bundle": "\(bundle)", "manifest": "\(image.manifestDescriptor.digest)",
                    "layers": "\(image.layers.count)",
                ])
            return UnpackResult(image: image, bundle: staging.target, entries: entries)
        } catch {
            staging.discard()
            throw error
        }
    }

    /// `config.json`, with users looked up in the new rootfs through the in-root resolver.
    private func writeConfig(
        image: ResolvedImage, template: JSONValue, root: RootDirectory, staging: BundleStaging, options: UnpackOptions
    ) throws(UnpackError) {
        let users = UserDatabase(
            passwd: try root.readFile(
                EntryPath(cleaning: Array("etc/passwd".utf8)), limit: options.limits.maxUserDatabaseBytes),
            group: try root.readFile(
                EntryPath(cleaning: Array("etc/group".utf8)), limit: options.limits.maxUserDatabaseBytes))
        let config = try RuntimeConfig.make(
            template: template, image: image.config, users: users, overrides: options.overrides)
        try staging.write("config.json", RuntimeConfig.encode(config))
    }

    /// One layer: blob → size/digest check → decompressor → diff_id check → tar reader → applier.
    private func apply(
        _ layer: ResolvedImage.Layer, of image: ResolvedImage, from source: any ImageSource, with applier: Applier,
        options: UnpackOptions, uncompressedSoFar: Int64
    ) throws(UnpackError) -> (entries: Int, uncompressedBytes: Int64) {
        let descriptor = layer.descriptor
        logger.debug(
            "applying layer",
            metadata: [
                "index": "\(layer.index)", "digest": "\(descriptor.digest)", "compression": "\(layer.compression)",
            ])
        let blob = BlobStream(upstream: try source.openBlob(descriptor), descriptor: descriptor)
        let decompressed = try LayerDecoder.decompressing(
            blob, compression: layer.compression, mediaType: descriptor.mediaType, gzip: options.gzip)
        // An uncompressed layer's diff_id is its blob's digest: the bytes are hashed once, by
        // the blob stage, and a differing diff_id is refused before anything is read.
        let sameBytes = layer.compression == .none && layer.diffID.algorithm == descriptor.digest.algorithm
        if sameBytes && layer.diffID != descriptor.digest {
            throw UnpackError(
                .digestMismatch,
                "the uncompressed layer's diff_id \(layer.diffID) differs from its blob digest \(descriptor.digest)")
        }
        let limits = options.limits
        let remaining = limits.maxUncompressedBytes - uncompressedSoFar
        let (ratioProduct, overflow) = limits.maxExpansionRatio.multipliedReportingOverflow(by: max(descriptor.size, 1))
        let ratioCap = max(limits.expansionRatioFloorBytes, overflow ? .max : ratioProduct)
        // With the reader thread, a third thread hashes the uncompressed stream (PrefetchStream's
        // `verifying`); this stage then only counts bytes against the limits.
        let hashHere = !sameBytes && !options.prefetch
        // The nearer of the two limits stops the stream, with its own message.
        let limitMessage =
            remaining <= ratioCap
            ? "the image is larger than \(limits.maxUncompressedBytes) bytes uncompressed (limit uncompressed-bytes)"
            : "the layer expands to more than \(limits.maxExpansionRatio) times its \(descriptor.size) compressed bytes (limit expansion-ratio; a decompression bomb?)"
        let tar = DiffIDStream(
            upstream: decompressed, diffID: layer.diffID, verify: hashHere, limit: min(remaining, ratioCap)
        ) { _ in UnpackError(.limitExceeded, limitMessage) }
        let logger = self.logger
        // Blob reading, its digest and decompression on one thread, the diff_id on another, tar
        // parsing and the applier on this one (small files are finished on a fourth).
        let source: any ByteStream =
            options.prefetch
            ? try PrefetchStream(upstream: tar, verifying: sameBytes ? nil : layer.diffID) : tar
        let reader = try TarReader(upstream: source) { warning in
            logger.warning("layer \(layer.index): \(warning)")
        }
        let progress = options.progress
        let count = try applier.apply(
            reader,
            onEntry: progress.map { report in
                {
                    report(
                        UnpackProgress(
                            layerIndex: layer.index, layerCount: image.layers.count, digest: descriptor.digest,
                            bytesDone: blob.bytesRead, bytesTotal: descriptor.size, layerFinished: false))
                }
            })
        // The tar end marker may come before the end of the stream: hash the rest too, which also
        // checks the blob's size and digest and the compressed stream's trailer.
        try source.drain()
        progress?(
            UnpackProgress(
                layerIndex: layer.index, layerCount: image.layers.count, digest: descriptor.digest,
                bytesDone: blob.bytesRead, bytesTotal: descriptor.size, layerFinished: true))
        return (count, tar.bytesRead)
    }
}
