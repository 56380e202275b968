import Logging
import OCIImage
import Resolution
import TreeCompare
import UnpackSystem

extension Unpacker {
    /// Proves, per platform, that every variant of the image `reference` names (the entries of its
    /// indexes for one platform: gzip, zstd, uncompressed, zstd:chunked…) yields the same
    /// filesystem. Every layer of every variant is streamed through its decompressor with its
    /// digest, size and diff_id verified, and nothing is written. Variants with the same config or
    /// the same diff_ids are the same by construction; others are compared by their tree listings,
    /// built by applying their layers in memory.
    ///
    /// - Parameters:
    ///   - reference: the image, in any form ``ImageReference`` parses.
    ///   - platform: the platform whose group to verify (its best-matching platform, as unpack
    ///     ranks them); nil for every platform.
    ///   - options: limits, mtimes, the gzip decoder and how many differences to name.
    public func verifyVariants(_ reference: String, platform: Platform?, options: VerifyOptions = .init())
        throws(UnpackError) -> VariantReport
    {
        let parsed = try ImageReference(parsing: reference)
        let source = try openSource(parsed)
        return try verifyVariants(parsed, in: source, platform: platform, options: options)
    }

    /// `verifyVariants` on any source of images.
    public func verifyVariants(
        _ reference: ImageReference, in source: any ImageSource, platform: Platform?, options: VerifyOptions = .init()
    ) throws(UnpackError) -> VariantReport {
        try VariantVerifier.report(reference, in: source, platform: platform, settings: verifierSettings(options))
    }

    /// The tree listing of the image `reference` resolves to for `request`: its layers applied in
    /// memory, every digest verified, nothing written.
    public func treeListing(_ reference: String, request: ResolutionRequest, options: VerifyOptions = .init())
        throws(UnpackError) -> TreeListing
    {
        let image = try resolve(reference, request: request)
        var verifier = VariantVerifier(source: image.source, settings: verifierSettings(options))
        return try verifier.tree(of: image.layers)
    }

    private func verifierSettings(_ options: VerifyOptions) -> VariantVerifier.Settings {
        let logger = self.logger
        return VariantVerifier.Settings(
            limits: options.limits, ignoreMtime: options.ignoreMtime, gzip: options.gzipDecoder.implementation,
            maxDifferences: options.maxDifferences, warn: options.warn, debug: { logger.debug("\($0)") },
            alternativeAnnotation: options.alternativeAnnotation)
    }
}
