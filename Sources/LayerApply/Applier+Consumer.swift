import LayerEngine
import LayerStream
import OCIImage
import TarArchive

// The applier as the layer driver's consumer: each layer's state lives from `beginLayer` to its
// end; `finish` completes the tree after the last one.
extension Applier: LayerConsumer {
    package func beginLayer(at position: Int) throws(UnpackError) {
        layer = LayerState()
        root.resetSymlinkBudget(options.limits.maxSymlinkBytesPerLayer)
        // Without a second thread (a process limit), files are finished here.
        finisher =
            options.finishFilesInParallel ? try? FileFinisher(warn: options.warn, calls: options.systemCalls) : nil
    }

    package func consume(_ entry: TarEntry, from reader: TarReader) throws(UnpackError) {
        statistics.entries += 1
        // Typed all the way: what this entry caused names it (`step` maps system errors with the
        // entry's path), and what the layer stream reports passes through as it is.
        guard case .overlay(let xattrs) = options.whiteouts else {
            try apply(entry, reader: reader, layer: &layer)
            return
        }
        try apply(try overlayForm(entry, xattrs), reader: reader, layer: &layer)
    }

    /// In overlay form, what overlayfs would read as its own is not the image's to give: a 0:0
    /// character device is a whiteout there (refused: the layer cannot be kept in this form), and
    /// xattrs in overlayfs's namespace (opaque, redirect, metacopy) are left out with a warning.
    private func overlayForm(_ entry: TarEntry, _ xattrs: WhiteoutPolicy.OverlayXattrs) throws(UnpackError)
        -> TarEntry
    {
        if entry.kind == .characterDevice && entry.deviceMajor == 0 && entry.deviceMinor == 0 {
            throw UnpackError(
                .unsupportedMediaType,
                "tar entry \(entry.displayPath) is a 0:0 character device, which an overlay reads as a whiteout: the layer cannot be kept in overlay form",
                context: .init(path: entry.displayPath))
        }
        guard entry.xattrs.contains(where: { $0.name.hasPrefix(xattrs.prefix) }) else { return entry }
        var kept = entry
        kept.xattrs.removeAll { $0.name.hasPrefix(xattrs.prefix) }
        options.warn("leaving out \(xattrs.prefix)* xattrs of \(entry.displayPath): overlayfs keeps them for itself")
        return kept
    }

    package func endEntries() throws(UnpackError) {
        defer { stopFinisher() }
        try finisher?.drain()
        do {
            try finish(&layer)
        } catch {
            throw error.unpackError("restoring directory times failed")
        }
    }

    package func abandonLayer(at position: Int) {
        stopFinisher()
    }

    package func finish() throws(UnpackError) {
        try finishUnpack()
    }

    private func stopFinisher() {
        finisher?.stop()
        finisher = nil
    }
}
