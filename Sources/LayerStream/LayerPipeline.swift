import OCIImage
import TarArchive

/// One layer's stream, assembled: blob → size and digest check → decompressor → diff_id check and
/// limits → (reader and hasher threads) → libarchive. The façade only opens it, hands the tar
/// reader to the applier and finishes it.
package final class LayerPipeline {
    /// The blob stage, for progress (compressed bytes read so far).
    package let blob: BlobStream
    /// The tar entries of the layer.
    package let reader: TarReader
    private let tar: DiffIDStream
    private let source: any ByteStream

    /// Uncompressed bytes read so far (all of them after `finish`).
    package var uncompressedBytes: Int64 { tar.bytesRead }

    /// - Parameters:
    ///   - stream: the blob's bytes from its source.
    ///   - uncompressedSoFar: uncompressed bytes of the layers before this one (the image limit).
    ///   - prefetch: decompress and hash on helper threads, ahead of tar parsing.
    package init(
        stream: any ByteStream, descriptor: Descriptor, compression: LayerCompression, diffID: Digest,
        limits: UnpackLimits, uncompressedSoFar: Int64, gzip: LayerDecoder.GzipImplementation, prefetch: Bool,
        onWarning: @escaping (String) -> Void
    ) throws(UnpackError) {
        blob = BlobStream(upstream: stream, descriptor: descriptor)
        let decompressed = try LayerDecoder.decompressing(
            blob, compression: compression, mediaType: descriptor.mediaType, gzip: gzip)
        // An uncompressed layer's diff_id is its blob's digest: the bytes are hashed once, by the
        // blob stage, and a differing diff_id is refused before anything is read.
        let sameBytes = compression == .none && diffID.algorithm == descriptor.digest.algorithm
        if sameBytes && diffID != descriptor.digest {
            throw UnpackError(
                .digestMismatch,
                "the uncompressed layer's diff_id \(diffID) differs from its blob digest \(descriptor.digest)")
        }
        let remaining = limits.maxUncompressedBytes - uncompressedSoFar
        let (ratioProduct, overflow) = limits.maxExpansionRatio.multipliedReportingOverflow(by: max(descriptor.size, 1))
        let ratioCap = max(limits.expansionRatioFloorBytes, overflow ? .max : ratioProduct)
        // With the reader thread, a third thread hashes the uncompressed stream (PrefetchStream's
        // `verifying`); this stage then only counts bytes against the limits.
        let hashHere = !sameBytes && !prefetch
        // The nearer of the two limits stops the stream, with its own message.
        let limitMessage =
            remaining <= ratioCap
            ? "the image is larger than \(limits.maxUncompressedBytes) bytes uncompressed (limit uncompressed-bytes)"
            : "the layer expands to more than \(limits.maxExpansionRatio) times its \(descriptor.size) compressed bytes (limit expansion-ratio; a decompression bomb?)"
        tar = DiffIDStream(upstream: decompressed, diffID: diffID, verify: hashHere, limit: min(remaining, ratioCap)) {
            _ in UnpackError(.limitExceeded, limitMessage)
        }
        // Blob reading, its digest and decompression on one thread, the diff_id on another, tar
        // parsing (and the applier) on the caller's.
        source = prefetch ? try PrefetchStream(upstream: tar, verifying: sameBytes ? nil : diffID) : tar
        reader = try TarReader(upstream: source, onWarning: onWarning)
    }

    /// Reads what follows the tar end marker too (padding), which completes the checks of the blob's
    /// size and digest, the compressed stream's trailer and the diff_id.
    package func finish() throws(UnpackError) {
        try source.drain()
    }
}
