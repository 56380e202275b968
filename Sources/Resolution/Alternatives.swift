import OCIImage

/// Alternative descriptors: an index entry or a layer descriptor that carries, in an annotation,
/// the JSON descriptor of an equivalent manifest or layer in another compression (the proposals of
/// the image-spec discussion "Formalize support for zstd compression"; docs/images.md).
///
/// Read only when asked for (`--alternatives`), since neither form is standardised.
public enum Alternatives {
    /// The annotation key the discussion proposed.
    public static let defaultAnnotation = "zstd-compressed-alternative"

    /// The alternative `original`'s annotation `key` names, checked for what every alternative
    /// must be: valid JSON, a descriptor whose digest oci-unpack can verify, of the `expected` kind,
    /// and not itself naming an alternative; nil when `original` has no such annotation. `what`
    /// names the original in errors.
    static func parse(_ original: Descriptor, key: String, what: String, expected: Expected) throws(UnpackError)
        -> Descriptor?
    {
        guard let text = original.annotations?[key] else { return nil }
        let context = UnpackError.Context(digest: original.digest, mediaType: original.mediaType)
        let named = "the alternative named by annotation \(key) of \(what)"
        let alternative: Descriptor
        do throws(DocumentFields.Problem) {
            alternative = try Descriptor(jsonText: text)
        } catch {
            if error.unverifiableAlgorithm != nil {
                throw UnpackError(.unsupportedMediaType, "\(named) cannot be verified: \(error)", context: context)
            }
            throw UnpackError(.invalidImage, "\(named) is not a valid descriptor: \(error)", context: context)
        }
        let described = "\(named) (\(alternative.digest))"
        if alternative.annotations?[key] != nil {
            throw UnpackError(
                .invalidImage,
                "\(described) names another alternative in its own annotation \(key) (alternatives do not chain)",
                context: context)
        }
        switch expected {
        case .manifest:
            guard alternative.mediaType.kind == .manifest else {
                throw UnpackError(
                    .unsupportedMediaType,
                    "\(described) has media type \(alternative.mediaType), which is not an image manifest",
                    context: .init(digest: alternative.digest, mediaType: alternative.mediaType))
            }
        case .layer:
            if let why = alternative.mediaType.unprocessableReason {
                throw UnpackError(
                    .unsupportedMediaType, "\(described) has media type \(alternative.mediaType): \(why)",
                    context: .init(digest: alternative.digest, mediaType: alternative.mediaType))
            }
        }
        return alternative
    }

    /// What an alternative must be.
    enum Expected {
        case manifest
        case layer
    }

    /// The layers of `manifest` (with `diffIDs` from its config) with each alternative that
    /// annotation `key` names taken where `request` prefers its compression (every one, without a
    /// request) and its blob is there. Reports every alternative.
    static func layers(
        of manifest: Manifest, diffIDs: [Digest], request: ResolutionRequest?, key: String, source: any ImageSource
    ) throws(UnpackError) -> (layers: [ResolvedImage.Layer], reports: [ResolvedImage.Alternative]) {
        var layers = manifest.layers.enumerated().map { i, descriptor in
            ResolvedImage.Layer(
                index: i, descriptor: descriptor, compression: descriptor.mediaType.layerCompression ?? .none,
                diffID: diffIDs[i])
        }
        var reports: [ResolvedImage.Alternative] = []
        // The alternatives the preference takes, whose blobs are then asked for at once (a
        // registry answers the HEADs concurrently).
        var wanted: [(report: Int, alternative: Descriptor)] = []
        let preference = request?.compressionPreference ?? []
        func rank(_ c: LayerCompression) -> Int { preference.firstIndex(of: c) ?? preference.count }
        for (i, descriptor) in manifest.layers.enumerated() {
            guard
                let alternative = try parse(
                    descriptor, key: key, what: "layer \(i) (\(descriptor.digest))", expected: .layer)
            else { continue }
            let compression = alternative.mediaType.layerCompression ?? .none
            var report = ResolvedImage.Alternative(
                form: .layer, layer: i, original: descriptor.digest, alternative: alternative.digest,
                mediaType: alternative.mediaType, compression: compression.rawValue, annotation: key,
                status: .passedOver, reason: nil)
            if request?.firstMatch == true {
                report.reason = "--prefer-compression first keeps the descriptor the manifest lists"
            } else if let request, rank(compression) >= rank(layers[i].compression) {
                report.reason =
                    "compression \(compression) does not rank before the original's \(layers[i].compression) in the preference \(request.compressionPreference.map(\.rawValue).joined(separator: ","))"
            } else {
                wanted.append((reports.count, alternative))
            }
            reports.append(report)
        }
        let present = source.hasBlobs(wanted.map(\.alternative.digest))
        for ((r, alternative), there) in zip(wanted, present) {
            let i = reports[r].layer ?? 0
            let original = layers[i].descriptor
            guard there else {
                reports[r].status = .missing
                reports[r].reason =
                    "blob \(alternative.digest) is not in \(source.name) (a copying tool may not have carried it); layer \(i) is read from its original \(original.digest)"
                continue
            }
            reports[r].status = .chosen
            layers[i] = ResolvedImage.Layer(
                index: i, descriptor: alternative, compression: alternative.mediaType.layerCompression ?? .none,
                diffID: diffIDs[i], alternativeOf: original)
        }
        return (layers, reports)
    }

    /// The content guarantee for a manifest alternative: the same config, or else configs that list
    /// the same diff_ids. A mismatch is an error naming both manifests; it never falls back.
    static func checkSameContent(
        alternative: Descriptor, _ alternativeManifest: Manifest, _ alternativeConfig: ImageConfig,
        original: Descriptor, _ originalManifest: Manifest, _ originalConfig: ImageConfig, key: String
    ) throws(UnpackError) {
        if alternativeManifest.config.digest == originalManifest.config.digest { return }
        if alternativeConfig.rootfs.diffIDs == originalConfig.rootfs.diffIDs {
            // The same layers, but config.json is written from the config: what runs, as whom,
            // and for which platform must be the original's too.
            guard alternativeConfig.config == originalConfig.config,
                alternativeConfig.platform.normalized == originalConfig.platform.normalized
            else {
                throw UnpackError(
                    .invalidImage,
                    "manifest \(alternative.digest), the alternative named by annotation \(key) of manifest \(original.digest), has config \(alternativeManifest.config.digest), whose execution settings or platform differ from those of the original's config \(originalManifest.config.digest): it would run another container, and is refused rather than replaced by the original",
                    context: .init(digest: alternative.digest, mediaType: alternative.mediaType))
            }
            return
        }
        throw UnpackError(
            .invalidImage,
            "manifest \(alternative.digest), the alternative named by annotation \(key) of manifest \(original.digest), has config \(alternativeManifest.config.digest) whose diff_ids differ from those of the original's config \(originalManifest.config.digest): it is not the same image, and is refused rather than replaced by the original",
            context: .init(digest: alternative.digest, mediaType: alternative.mediaType))
    }
}
