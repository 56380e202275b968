import OCIImage

/// What the user asked for besides the reference: a platform and an order of compressions.
public struct ResolutionRequest: Sendable, Equatable {
    /// The platform asked for, normalised.
    public var platform: Platform
    /// Most preferred first. A compression not listed ranks after every listed one.
    public var compressionPreference: [LayerCompression]
    /// Take the first usable entry in index order, whatever its platform match and compression
    /// (`--prefer-compression first`: what image-index.md says a client SHOULD do).
    public var firstMatch: Bool
    /// The annotation key whose value names an alternative descriptor (an equivalent manifest or
    /// layer in another compression), or nil to ignore alternatives (`--alternatives`; see
    /// ``Alternatives``).
    public var alternativeAnnotation: String?

    /// The order used when none is asked for: zstd, then gzip, then uncompressed.
    public static let defaultCompressionPreference: [LayerCompression] = [.zstd, .gzip, .none]

    /// A request for `platform` (normalised here; the host's by default) and a compression order.
    public init(
        platform: Platform = .host, compressionPreference: [LayerCompression] = defaultCompressionPreference,
        firstMatch: Bool = false, alternativeAnnotation: String? = nil
    ) {
        self.platform = platform.normalized
        self.compressionPreference = compressionPreference
        self.firstMatch = firstMatch
        self.alternativeAnnotation = alternativeAnnotation
    }

    /// A request from `--platform` and `--prefer-compression`: a list of compressions, or `first`
    /// (index order, the first usable entry); alternatives read under `alternativeAnnotation`.
    public init(platform: Platform, preferCompression text: String, alternativeAnnotation: String? = nil)
        throws(UnpackError)
    {
        if text[...].trimmingSpaces.lowercased() == "first" {
            self.init(
                platform: platform, compressionPreference: [], firstMatch: true,
                alternativeAnnotation: alternativeAnnotation)
        } else {
            self.init(
                platform: platform, compressionPreference: try Self.parseCompressionPreference(text),
                alternativeAnnotation: alternativeAnnotation)
        }
    }

    /// Parses `--prefer-compression`: a comma-separated list of `zstd`, `gzip`, `none`.
    public static func parseCompressionPreference(_ text: String) throws(UnpackError) -> [LayerCompression] {
        var result: [LayerCompression] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingSpaces.lowercased()
            let value: LayerCompression
            switch name {
            case "zstd": value = .zstd
            case "gzip", "gz": value = .gzip
            case "none", "uncompressed", "tar": value = .none
            case "first":
                throw UnpackError(
                    .invalidArgument,
                    "--prefer-compression first stands alone (it takes the first usable entry in index order), not in \"\(text.truncatedForMessage)\""
                )
            default:
                throw UnpackError(
                    .invalidArgument,
                    "unknown compression \"\(name.truncatedForMessage)\" in --prefer-compression \"\(text.truncatedForMessage)\" (known: zstd, gzip, none)"
                )
            }
            guard !result.contains(value) else {
                throw UnpackError(
                    .invalidArgument,
                    "compression \(value) is listed twice in --prefer-compression \"\(text.truncatedForMessage)\"")
            }
            result.append(value)
        }
        return result
    }
}

/// Walks from a reference through indexes to one manifest, recording every candidate and why it was
/// chosen or refused.
package struct Resolver: Sendable {
    package let source: any ImageSource

    package init(source: any ImageSource) {
        self.source = source
    }

    /// Resolves `reference` (whose images must be this resolver's source's) for `request`.
    package func resolve(_ reference: ImageReference, request: ResolutionRequest) throws(UnpackError) -> ResolvedImage {
        var walk = Walk(source: source, alternativeKey: request.alternativeAnnotation)
        let roots = try selectRoots(reference, walk: &walk)
        for root in roots {
            try walk.expand(root.descriptor, via: [], selectedBy: root.how, depth: 0)
        }
        var candidates = walk.candidates
        let cache = DocumentCache()
        for i in candidates.indices {
            try evaluate(&candidates[i], platform: request.platform, cache: cache, layersFor: request)
        }
        try checkAlternatives(&candidates, key: request.alternativeAnnotation, cache: cache)
        let eligible = candidates.indices.filter { candidates[$0].decision == .eligible }
        let ranked: Int?
        if request.firstMatch {
            ranked = eligible.min { candidates[$0].position < candidates[$1].position }
        } else {
            ranked = eligible.min { rankKey(candidates[$0], request) < rankKey(candidates[$1], request) }
        }
        let unverifiable = walk.unverifiable + rootUnverifiable(reference)
        guard let best = ranked else {
            throw noChoiceError(reference, request: request, candidates: candidates, unverifiable: unverifiable)
        }
        let bestKey = rankKey(candidates[best], request)
        for i in eligible where i != best {
            candidates[i].decision = .passedOver(
                reason: passOverReason(candidates[i], than: candidates[best], bestKey, request))
        }
        candidates[best].decision = .chosen
        let chosen = candidates[best]
        // evaluate() loaded these for every eligible candidate.
        guard let manifest = chosen.manifest, let config = chosen.config else {
            throw UnpackError(.internal, "chosen candidate \(chosen.descriptor.digest) was not loaded")
        }
        var resolved = ResolvedImage(
            reference: reference.description, source: source, request: request, steps: walk.steps,
            candidates: candidates.map(\.report), manifestDescriptor: chosen.descriptor, manifest: manifest,
            config: config, layers: chosen.layers)
        resolved.unverifiable = unverifiable
        resolved.imageReference = reference
        if let key = request.alternativeAnnotation {
            resolved.alternatives = candidates.compactMap { $0.alternativeReport(key: key) } + chosen.layerAlternatives
        }
        return resolved
    }

    /// `index.json`'s own unverifiable entries, when the reference names no tag or digest (with a
    /// tag, an entry that cannot be read cannot be known to carry it).
    private func rootUnverifiable(_ reference: ImageReference) -> [ResolvedImage.UnverifiableEntry] {
        guard case .only = reference.selector else { return [] }
        return source.index.unverifiableEntries.map { .init(index: nil, entry: $0) }
    }

    /// Every manifest-level entry `reference` leads to, each evaluated for any platform: eligible
    /// ones (status `chosen` in their report, since each could be) carry their manifest, config and
    /// layers; the others say why they cannot be unpacked. For `verify-variants`.
    /// A reference without tag or digest surveys every entry of `index.json`.
    /// With `alternativeAnnotation`, the alternative manifests are entries of their own, and an
    /// entry whose layers name alternatives is surveyed twice: as listed, and with every
    /// alternative whose blob is there in place of its original.
    package func survey(_ reference: ImageReference, alternativeAnnotation: String? = nil) throws(UnpackError) -> (
        candidates: [SurveyedCandidate], unverifiable: [ResolvedImage.UnverifiableEntry]
    ) {
        var walk = Walk(source: source, alternativeKey: alternativeAnnotation)
        let entries = source.index.manifests
        let roots: [Root]
        if case .only = reference.selector, entries.count > 1 {
            roots = entries.enumerated().map { Root(descriptor: $1, how: "entry \($0) of \(source.indexOrigin)") }
        } else {
            roots = try selectRoots(reference, walk: &walk)
        }
        for root in roots {
            try walk.expand(root.descriptor, via: [], selectedBy: root.how, depth: 0)
        }
        let cache = DocumentCache()
        var candidates = walk.candidates
        // As listed: no alternative layer ranks before its original.
        let asListed = alternativeAnnotation.map {
            ResolutionRequest(compressionPreference: [], firstMatch: true, alternativeAnnotation: $0)
        }
        for i in candidates.indices {
            try evaluate(&candidates[i], platform: nil, cache: cache, layersFor: asListed)
        }
        try checkAlternatives(&candidates, key: alternativeAnnotation, cache: cache)
        var out: [SurveyedCandidate] = []
        for var candidate in candidates {
            var layers: [ResolvedImage.Layer] = []
            if candidate.decision == .eligible {
                candidate.decision = .chosen
                layers = candidate.layers
            }
            var code: UnpackError.Code?
            if case .refused(_, let refusal) = candidate.decision { code = refusal }
            out.append(
                SurveyedCandidate(
                    report: candidate.report, refusal: code, manifest: candidate.manifest, config: candidate.config,
                    layers: layers))
            if let key = alternativeAnnotation, code == nil, let manifest = candidate.manifest,
                let config = candidate.config
            {
                let (alternatives, _) = try Alternatives.layers(
                    of: manifest, diffIDs: config.rootfs.diffIDs, request: nil, key: key, source: source)
                let replaced = alternatives.filter { $0.alternativeOf != nil }.map(\.index)
                if !replaced.isEmpty {
                    var report = candidate.report
                    report.alternativeOf = candidate.descriptor.digest
                    out.append(
                        SurveyedCandidate(
                            report: report, refusal: nil, manifest: manifest, config: config, layers: alternatives,
                            alternativeLayers: replaced))
                }
            }
        }
        return (out, walk.unverifiable + rootUnverifiable(reference))
    }

    // MARK: - Roots

    private struct Root {
        let descriptor: Descriptor
        let how: String
    }

    private func selectRoots(_ reference: ImageReference, walk: inout Walk) throws(UnpackError) -> [Root] {
        let entries = source.index.manifests
        switch reference.selector {
        case .only:
            // One image listed under several names (a docker-archive's tag and its short forms).
            if let only = entries.first, entries.allSatisfy({ $0.digest == only.digest }) {
                return [Root(descriptor: only, how: "the only entry of \(source.indexOrigin)")]
            }
            if entries.isEmpty {
                throw UnpackError(
                    .notFound,
                    "the image source \(source.name) has no images (\(source.indexOrigin) lists no manifests)")
            }
            throw UnpackError(
                .invalidArgument,
                "the image layout \(source.name) holds \(entries.count) entries; name one: \(availableEntries())")
        case .tag(let tag):
            let tagged = entries.filter { $0.refName == tag }
            guard !tagged.isEmpty else {
                throw UnpackError(
                    .notFound, "tag \"\(tag.truncatedForMessage)\" not found in \(source.name); \(availableEntries())")
            }
            return tagged.map { Root(descriptor: $0, how: "tag \"\(tag)\" in \(source.indexOrigin)") }
        case .digest(let digest):
            if let entry = entries.first(where: { $0.digest == digest }) {
                return [Root(descriptor: entry, how: "digest \(digest) in \(source.indexOrigin)")]
            }
            if let nested = try walk.findNested(digest, in: entries) {
                return [Root(descriptor: nested, how: "digest \(digest) inside a nested index")]
            }
            let sniffed = try source.sniffDescriptor(for: digest)
            return [Root(descriptor: sniffed, how: "digest \(digest) (blob not listed in any index)")]
        }
    }

    /// "available tags: a, b" or, without tags, the digests to select by.
    private func availableEntries() -> String {
        let tags = source.index.manifests.compactMap(\.refName)
        if !tags.isEmpty {
            return "available tags: " + Array(Set(tags)).sorted().joined(separator: ", ")
        }
        let digests = source.index.manifests.map { entry in
            entry.platform.map { "@\(entry.digest) (\($0))" } ?? "@\(entry.digest)"
        }
        return "no entry has a tag; select one by digest: " + digests.joined(separator: ", ")
    }

    // MARK: - Evaluation

    /// Decides whether `candidate` can be unpacked for `platform` (any platform when nil), loading
    /// its manifest and config.
    /// With `layersFor`, layer alternatives are read as that request ranks them.
    private func evaluate(
        _ candidate: inout Walk.Candidate, platform wanted: Platform?, cache: DocumentCache,
        layersFor request: ResolutionRequest?
    ) throws(UnpackError) {
        guard candidate.descriptor.mediaType.kind == .manifest else {
            candidate.decision = .refused(
                reason: "media type \(candidate.descriptor.mediaType) is not an image manifest",
                code: .unsupportedMediaType)
            return
        }
        // An alternative is for its original's platform (it may be listed elsewhere under one no
        // client matches, so that copying tools carry it along).
        let stated = candidate.alternativeOf == nil ? candidate.descriptor.platform : candidate.alternativeOf?.platform
        if let platform = stated {
            candidate.platform = platform.normalized
            candidate.platformSource = .descriptor
        } else {
            // No platform on the descriptor: the config says which platform the image is for.
            guard try load(&candidate, cache: cache) else { return }
            candidate.platform = candidate.config?.platform.normalized
            candidate.platformSource = .config
        }
        guard let platform = candidate.platform, let rank = wanted.map({ $0.matchRank(of: platform) }) ?? 0 else {
            candidate.decision = .refused(
                reason:
                    "platform \(candidate.platform?.description ?? "unknown") does not match \(wanted?.description ?? "any")",
                code: .platformNotFound)
            return
        }
        candidate.platformRank = rank
        // A candidate for the request whose annotation names an unusable alternative: the image
        // claims something false, and is refused rather than read around.
        if let problem = candidate.alternativeProblem { throw problem }
        guard try load(&candidate, cache: cache), let manifest = candidate.manifest, let config = candidate.config
        else { return }
        for (i, layer) in manifest.layers.enumerated() {
            if let why = layer.mediaType.unprocessableReason {
                candidate.decision = .refused(
                    reason: "layer \(i) (\(layer.digest)) has media type \(layer.mediaType): \(why)",
                    code: .unsupportedMediaType)
                return
            }
        }
        guard config.rootfs.diffIDs.count == manifest.layers.count else {
            candidate.decision = .refused(
                reason:
                    "config \(manifest.config.digest) lists \(config.rootfs.diffIDs.count) diff_ids for \(manifest.layers.count == 1 ? "1 layer" : "\(manifest.layers.count) layers")",
                code: .invalidImage)
            return
        }
        if let missing = source.hasBlobs(manifest.layers.map(\.digest)).firstIndex(of: false) {
            candidate.decision = .refused(
                reason: "layer \(missing) blob \(manifest.layers[missing].digest) is missing from the layout",
                code: .notFound)
            return
        }
        if let key = request?.alternativeAnnotation {
            (candidate.layers, candidate.layerAlternatives) = try Alternatives.layers(
                of: manifest, diffIDs: config.rootfs.diffIDs, request: request, key: key, source: source)
        } else {
            candidate.layers = manifest.layers.enumerated().map { i, layer in
                ResolvedImage.Layer(
                    index: i, descriptor: layer, compression: layer.mediaType.layerCompression ?? .none,
                    diffID: config.rootfs.diffIDs[i])
            }
        }
        candidate.compression = CompressionClass(manifestDescriptor: candidate.descriptor, layers: candidate.layers)
        candidate.decision = .eligible
    }

    /// Loads the candidate's manifest and config; a missing blob or an artifact (non-image) manifest
    /// refuses the candidate, while corruption (wrong digest or size, invalid JSON) is an error.
    private func load(_ candidate: inout Walk.Candidate, cache: DocumentCache) throws(UnpackError) -> Bool {
        if candidate.manifest != nil, candidate.config != nil { return true }
        do throws(UnpackError) {
            let manifest: Manifest
            if let cached = cache.manifests[candidate.descriptor] {
                manifest = cached
            } else {
                manifest = try source.manifest(candidate.descriptor)
                cache.manifests[candidate.descriptor] = manifest
            }
            candidate.manifest = manifest
            if let cached = cache.configs[manifest.config] {
                candidate.config = cached
            } else {
                let config = try source.config(manifest.config)
                cache.configs[manifest.config] = config
                candidate.config = config
            }
            return true
        } catch  where error.code == .notFound || error.code == .unsupportedMediaType {
            candidate.decision = .refused(reason: error.message, code: error.code)
            return false
        }
    }

    /// The content guarantee for every eligible alternative manifest: its original's config, or
    /// a config with the same diff_ids. A mismatch is an error, never a fallback.
    private func checkAlternatives(_ candidates: inout [Walk.Candidate], key: String?, cache: DocumentCache)
        throws(UnpackError)
    {
        guard let key else { return }
        // An alternative that cannot be unpacked (not for want of its blob, nor for being for
        // another platform) is the image claiming something false: refused, not read around.
        for i in candidates.indices {
            guard let original = candidates[i].alternativeOf,
                case .refused(let reason, let code) = candidates[i].decision,
                code != .notFound, code != .platformNotFound
            else { continue }
            throw UnpackError(
                code,
                "manifest \(candidates[i].descriptor.digest), the alternative named by annotation \(key) of manifest \(original.digest), cannot be unpacked: \(reason)",
                context: .init(digest: candidates[i].descriptor.digest, mediaType: candidates[i].descriptor.mediaType))
        }
        for i in candidates.indices where candidates[i].decision == .eligible {
            guard let original = candidates[i].alternativeOf, let manifest = candidates[i].manifest,
                let config = candidates[i].config
            else { continue }
            // The original is the entry just before (Walk puts it there).
            var listed = candidates[i - 1]
            guard try load(&listed, cache: cache), let originalManifest = listed.manifest,
                let originalConfig = listed.config
            else {
                throw UnpackError(
                    .invalidImage,
                    "manifest \(candidates[i].descriptor.digest), the alternative named by annotation \(key) of manifest \(original.digest), cannot be checked against its original, which cannot be read: \(listed.report.reason ?? "")",
                    context: .init(digest: original.digest, mediaType: original.mediaType))
            }
            try Alternatives.checkSameContent(
                alternative: candidates[i].descriptor, manifest, config, original: original, originalManifest,
                originalConfig, key: key)
        }
    }

    // MARK: - Ranking

    /// Best platform match, then the compression preference, then index order.
    private struct RankKey: Comparable {
        let platform: Int
        let compression: [Int]
        let position: Int

        static func < (a: RankKey, b: RankKey) -> Bool {
            if a.platform != b.platform { return a.platform < b.platform }
            if a.compression != b.compression { return a.compression.lexicographicallyPrecedes(b.compression) }
            return a.position < b.position
        }
    }

    private func rankKey(_ candidate: Walk.Candidate, _ request: ResolutionRequest) -> RankKey {
        RankKey(
            platform: candidate.platformRank ?? Int.max,
            compression: candidate.compression?.rankKey(in: request.compressionPreference) ?? [Int.max],
            position: candidate.position)
    }

    private func passOverReason(
        _ candidate: Walk.Candidate, than best: Walk.Candidate, _ bestKey: RankKey, _ request: ResolutionRequest
    ) -> String {
        if request.firstMatch {
            return
                "comes after \(best.descriptor.digest) in index order (--prefer-compression first takes the first usable entry)"
        }
        let key = rankKey(candidate, request)
        if key.platform != bestKey.platform {
            return
                "platform \(candidate.platform?.description ?? "?") is a weaker match for \(request.platform) than \(best.platform?.description ?? "?")"
        }
        if key.compression != bestKey.compression {
            let order = request.compressionPreference.map(\.rawValue).joined(separator: ",")
            return
                "compression \(candidate.compression?.description ?? "?") ranks after \(best.compression?.description ?? "?") in the preference \(order)"
        }
        return "same platform and compression as \(best.descriptor.digest), which comes first in index order"
    }

    // MARK: - Errors

    private func noChoiceError(
        _ reference: ImageReference, request: ResolutionRequest, candidates: [Walk.Candidate],
        unverifiable: [ResolvedImage.UnverifiableEntry]
    ) -> UnpackError {
        let manifests = candidates.filter { $0.descriptor.mediaType.kind == .manifest }
        let matching = candidates.filter { $0.platformRank != nil }
        // Entries that cannot be verified are named: never a silent skip.
        let unusable = unverifiable.filter { entry in
            entry.entry.platform.map { request.platform.matchRank(of: $0) != nil } ?? true
        }
        if !unusable.isEmpty && matching.allSatisfy({ if case .refused = $0.decision { true } else { false } }) {
            let reasons =
                matching.compactMap { c -> String? in
                    if case .refused(let reason, _) = c.decision { return "\(c.descriptor.digest): \(reason)" }
                    return nil
                }
                + unusable.map {
                    "entry \($0.entry.position) of \($0.index?.description ?? "index.json"): \($0.entry.reason)"
                }
            return UnpackError(
                .unsupportedMediaType,
                "no usable manifest for platform \(request.platform) in \(reference): "
                    + reasons.joined(separator: "; "))
        }
        if manifests.isEmpty {
            return UnpackError(.platformNotFound, "\(reference) contains no image manifests")
        }
        if matching.isEmpty {
            var seen: [String] = []
            for c in manifests {
                let name = c.platform?.description ?? "unknown"
                if !seen.contains(name) { seen.append(name) }
            }
            return UnpackError(
                .platformNotFound,
                "no manifest for platform \(request.platform) in \(reference); available platforms: \(seen.joined(separator: ", "))"
            )
        }
        let reasons = matching.map { c -> String in
            if case .refused(let reason, _) = c.decision { return "\(c.descriptor.digest): \(reason)" }
            return "\(c.descriptor.digest): not usable"
        }
        var code = UnpackError.Code.unsupportedMediaType
        if case .refused(_, let first) = matching[0].decision,
            !matching.contains(where: {
                if case .refused(_, .unsupportedMediaType) = $0.decision { return true }
                return false
            })
        {
            code = first
        }
        let first = matching[0]
        return UnpackError(
            code,
            "no usable manifest for platform \(request.platform) in \(reference): " + reasons.joined(separator: "; "),
            context: .init(digest: first.descriptor.digest, mediaType: unprocessableMediaType(in: first)))
    }

    private func unprocessableMediaType(in candidate: Walk.Candidate) -> MediaType? {
        candidate.manifest?.layers.first(where: { $0.mediaType.unprocessableReason != nil })?.mediaType
    }
}

/// One entry of a survey: its report (platform, compression, annotations, and why it cannot be
/// unpacked when it cannot), and for a usable one its documents and layers.
package struct SurveyedCandidate: Sendable {
    package let report: ResolvedImage.Candidate
    /// The code of the refusal, for one that cannot be unpacked.
    package let refusal: UnpackError.Code?
    package let manifest: Manifest?
    package let config: ImageConfig?
    package let layers: [ResolvedImage.Layer]
    /// For the survey of an entry with its layer alternatives: the layers read from alternatives.
    package var alternativeLayers: [Int] = []

    package var usable: Bool { refusal == nil }
}

/// Manifests and configs already read during one resolution, by descriptor: an index that lists
/// the same manifest many times costs one read and one decode.
private final class DocumentCache {
    var manifests: [Descriptor: Manifest] = [:]
    var configs: [Descriptor: ImageConfig] = [:]
}
