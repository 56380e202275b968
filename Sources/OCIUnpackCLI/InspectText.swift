import OCIUnpack

/// The human-readable form of `oci-unpack inspect`.
enum InspectText {
    static func render(_ image: ResolvedImage) -> String {
        var out = ""
        // Tags, annotations and reasons come from the image: escaped, so that none forges a line.
        func line(_ s: String = "") { out += DisplayText.escaping(s) + "\n" }
        line("image:      \(image.reference)")
        line(
            "requested:  \(image.request.platform), "
                + (image.request.firstMatch
                    ? "first usable entry in index order (--prefer-compression first)"
                    : "compression preference \(image.request.compressionPreference.map(\.rawValue).joined(separator: ","))")
        )
        line("path:")
        for step in image.steps {
            let entries = step.entries.map { ", " + counted($0, "entry", "entries") } ?? ""
            line("  \(step.digest)  \(step.mediaType)\(entries)  (\(step.selectedBy))")
        }
        line("candidates:")
        for c in image.candidates {
            var facts = [c.platform?.description ?? "platform unknown"]
            if let source = c.platformSource, source == .config { facts[0] += " (from config)" }
            if let compression = c.compression { facts.append(compression) }
            if c.annotations[AnnotationKey.zstdCompression] == "true" { facts.append("annotated zstd") }
            if let original = c.alternativeOf { facts.append("alternative of \(original)") }
            line("  \(c.status.rawValue.padding(11))  \(c.digest)  \(facts.joined(separator: ", "))")
            if let reason = c.reason { line("               \(reason)") }
        }
        for entry in image.unverifiable {
            line(
                "  refused      \(entry.entry.digest)  entry \(entry.entry.position) of \(entry.index?.description ?? "index.json")"
            )
            line("               \(entry.entry.reason)")
        }
        line(
            "manifest:   \(image.manifestDescriptor.digest)  \(image.manifestDescriptor.mediaType)  \(image.manifestDescriptor.size) bytes"
        )
        line(
            "config:     \(image.manifest.config.digest)  \(image.manifest.config.mediaType)  \(image.manifest.config.size) bytes"
        )
        line("platform:   \(image.platform)")
        line("layers:     \(image.layers.count)")
        for layer in image.layers {
            line("  [\(layer.index)] \(layer.descriptor.digest)")
            line("      media type  \(layer.descriptor.mediaType)")
            let format = layer.descriptor.layerFormat.map { " (\($0.rawValue))" } ?? ""
            line("      compression \(layer.compression)\(format), \(layer.descriptor.size) bytes")
            line("      diff_id     \(layer.diffID)")
            if let original = layer.alternativeOf {
                line("      alternative of \(original.digest) (\(original.mediaType))")
            }
        }
        if let key = image.request.alternativeAnnotation {
            line("alternatives (annotation \(key)):\(image.alternatives.isEmpty ? " none named" : "")")
            for alternative in image.alternatives {
                let what = alternative.layer.map { "layer \($0)" } ?? "manifest"
                line(
                    "  \(alternative.status.rawValue.padding(11))  \(alternative.alternative)  \(what) \(alternative.compression ?? "?"), named by \(alternative.original)"
                )
                if let reason = alternative.reason { line("               \(reason)") }
            }
        }
        return out
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
