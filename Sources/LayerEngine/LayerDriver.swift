import LayerStream
import OCIImage
import Resolution
import TarArchive
import UnpackSystem

/// What a layer's entries are fed to: the on-disk applier, the in-memory tree, a verification
/// that keeps nothing, a layer store's per-layer directory. The driver calls, for each layer in
/// order, `beginLayer`, `consume` for every entry, `endEntries`, and `commitLayer` only once the
/// layer's blob digest, size and diff_id verified; `abandonLayer` when the layer failed instead;
/// `finish` after the last layer.
package protocol LayerConsumer: AnyObject {
    /// Whether entries are read at all: a verification needs only the stream read to its end.
    var readsEntries: Bool { get }
    /// Starts the layer at `position` in the driven list: what earlier layers made is now lower.
    func beginLayer(at position: Int) throws(UnpackError)
    /// One entry, within the per-entry limits and not a layer format's own metadata; its data, if
    /// any, is read from `reader`.
    func consume(_ entry: TarEntry, from reader: TarReader) throws(UnpackError)
    /// The layer's last entry was consumed: complete its work (pending files, directory times).
    func endEntries() throws(UnpackError)
    /// The layer's blob and tar stream verified (digest, size, trailer, diff_id): what it made
    /// may be committed.
    func commitLayer(at position: Int) throws(UnpackError)
    /// The layer failed: release what it holds. Nothing of it is committed.
    func abandonLayer(at position: Int)
    /// After the last layer committed.
    func finish() throws(UnpackError)
}

extension LayerConsumer {
    /// Entries are read.
    package var readsEntries: Bool { true }
    /// Nothing to start.
    package func beginLayer(at position: Int) throws(UnpackError) {}
    /// Nothing pending.
    package func endEntries() throws(UnpackError) {}
    /// Nothing to commit.
    package func commitLayer(at position: Int) throws(UnpackError) {}
    /// Nothing held.
    package func abandonLayer(at position: Int) {}
    /// Nothing to finish.
    package func finish() throws(UnpackError) {}
}

/// A consumer that keeps nothing: the layers' streams are verified, their entries not read.
package final class VerifyingConsumer: LayerConsumer {
    package init() {}
    package var readsEntries: Bool { false }
    package func consume(_ entry: TarEntry, from reader: TarReader) throws(UnpackError) {}
}

/// The one layer loop: every layer of a list, in order, from its source through the pipeline
/// (blob digest and size, decompression, diff_id, limits) into a ``LayerConsumer``, with streams
/// opened ahead, progress, cancellation between entries, and each failure located (layer index,
/// digest, media type).
package struct LayerDriver {
    /// How layers are streamed.
    package struct Settings {
        package var limits: UnpackLimits
        package var gzip: LayerDecoder.GzipImplementation
        /// Decompress and hash on helper threads, ahead of tar parsing.
        package var prefetch: Bool
        /// Layers whose streams are opened while an earlier one is consumed.
        package var readAhead: Int
        /// Receives the pipeline's warnings (libarchive's), prefixed with the layer's index.
        package var warn: (String) -> Void
        /// Called between entries; throws to stop.
        package var checkpoint: () throws(UnpackError) -> Void
        /// Called after every entry and at each layer's end.
        package var progress: ((Progress) -> Void)?

        package init(
            limits: UnpackLimits = .init(), gzip: LayerDecoder.GzipImplementation = .isal, prefetch: Bool = true,
            readAhead: Int = 0, warn: @escaping (String) -> Void = { _ in },
            checkpoint: @escaping () throws(UnpackError) -> Void = {}, progress: ((Progress) -> Void)? = nil
        ) {
            self.limits = limits
            self.gzip = gzip
            self.prefetch = prefetch
            self.readAhead = readAhead
            self.warn = warn
            self.checkpoint = checkpoint
            self.progress = progress
        }
    }

    /// How far a layer is.
    package struct Progress {
        package let position: Int
        package let layer: ResolvedImage.Layer
        /// Compressed bytes of the blob read so far.
        package let bytesDone: Int64
        package let finished: Bool
    }

    package let source: any ImageSource
    package let layers: [ResolvedImage.Layer]
    package let settings: Settings

    package init(source: any ImageSource, layers: [ResolvedImage.Layer], settings: Settings) {
        self.source = source
        self.layers = layers
        self.settings = settings
    }

    /// Every layer into `consumer`, then its `finish`; returns each layer's entry count.
    @discardableResult
    package func run(into consumer: some LayerConsumer) throws(UnpackError) -> [Int] {
        var entries: [Int] = []
        var uncompressed: Int64 = 0
        // Layers ahead: the next `readAhead` layers' streams are opened before this one is
        // consumed, so a registry sends them (each up to its body buffer, on a connection of its
        // own) while this one unpacks, and many small layers do not each wait for a request. A
        // stream that fails to open early is opened again in its turn, which reports the error.
        var ahead: [Int: any ByteStream] = [:]
        for (position, layer) in layers.enumerated() {
            do throws(UnpackError) {
                try settings.checkpoint()
                let stream: any ByteStream
                if let opened = ahead.removeValue(forKey: position) {
                    stream = opened
                } else {
                    stream = try source.openBlob(layer.descriptor)
                }
                for next in (position + 1)..<min(position + 1 + settings.readAhead, layers.count)
                where ahead[next] == nil {
                    ahead[next] = try? source.openBlob(layers[next].descriptor)
                }
                let (count, bytes) = try run(
                    layer, at: position, stream: stream, into: consumer, uncompressedSoFar: uncompressed)
                entries.append(count)
                uncompressed += bytes
            } catch {
                var located = error.adding(
                    layerIndex: layer.index, digest: layer.descriptor.digest, mediaType: layer.descriptor.mediaType)
                // An alternative that fails (a diff_id that is not the config's) is refused with
                // both descriptors named; it is never replaced by the original mid-unpack.
                if let original = layer.alternativeOf, error.code != .interrupted {
                    located.message +=
                        " (layer \(layer.index) was read from \(layer.descriptor.digest), the alternative that an annotation of its descriptor \(original.digest) names)"
                }
                throw located
            }
        }
        try consumer.finish()
        return entries
    }

    /// One layer: blob → size/digest check → decompressor → diff_id check → tar reader → consumer,
    /// committed after the stream verified.
    private func run(
        _ layer: ResolvedImage.Layer, at position: Int, stream: any ByteStream, into consumer: some LayerConsumer,
        uncompressedSoFar: Int64
    ) throws(UnpackError) -> (entries: Int, uncompressedBytes: Int64) {
        let descriptor = layer.descriptor
        let warn = settings.warn
        let index = layer.index
        let pipeline = try LayerPipeline(
            stream: stream, descriptor: descriptor, compression: layer.compression, diffID: layer.diffID,
            limits: settings.limits, uncompressedSoFar: uncompressedSoFar, gzip: settings.gzip,
            prefetch: settings.prefetch
        ) { warning in
            warn("layer \(index): \(warning)")
        }
        let blob = pipeline.blob
        let progress = settings.progress
        var count = 0
        do throws(UnpackError) {
            try consumer.beginLayer(at: position)
            if consumer.readsEntries {
                count = try Self.feed(
                    pipeline.reader, to: consumer, skipping: descriptor.layerFormat?.metadataEntries ?? [],
                    limits: settings.limits, checkpoint: settings.checkpoint,
                    onEntry: progress.map { report in
                        {
                            report(
                                Progress(position: position, layer: layer, bytesDone: blob.bytesRead, finished: false))
                        }
                    })
                try consumer.endEntries()
            }
            // The tar end marker may come before the end of the stream: hash the rest too, which
            // also checks the blob's size and digest and the compressed stream's trailer.
            try pipeline.finish()
            try consumer.commitLayer(at: position)
        } catch {
            consumer.abandonLayer(at: position)
            throw error
        }
        progress?(Progress(position: position, layer: layer, bytesDone: blob.bytesRead, finished: true))
        return (count, pipeline.uncompressedBytes)
    }

    /// The entry loop: every entry of `reader` checked against the per-entry limits and, unless it
    /// is the layer format's own metadata, handed to `consumer`. Returns the number of entries.
    package static func feed(
        _ reader: TarReader, to consumer: some LayerConsumer, skipping metadata: Set<[UInt8]> = [],
        limits: UnpackLimits, checkpoint: () throws(UnpackError) -> Void = {}, onEntry: (() -> Void)? = nil
    ) throws(UnpackError) -> Int {
        var count = 0
        while let entry = try reader.next() {
            try checkpoint()
            onEntry?()
            count += 1
            try LayerRules.check(entry, count: count, limits: limits)
            if LayerRules.isFormatMetadata(entry, metadata) { continue }
            try consumer.consume(entry, from: reader)
        }
        return count
    }

    /// One tar stream into `consumer` as one layer, unverified (tests, fuzzing, a caller that
    /// verified the stream itself).
    @discardableResult
    package static func apply(
        _ reader: TarReader, to consumer: some LayerConsumer, skipping metadata: Set<[UInt8]> = [],
        limits: UnpackLimits, checkpoint: () throws(UnpackError) -> Void = {}
    ) throws(UnpackError) -> Int {
        do throws(UnpackError) {
            try consumer.beginLayer(at: 0)
            let count = try feed(reader, to: consumer, skipping: metadata, limits: limits, checkpoint: checkpoint)
            try consumer.endEntries()
            try consumer.commitLayer(at: 0)
            return count
        } catch {
            consumer.abandonLayer(at: 0)
            throw error
        }
    }
}
