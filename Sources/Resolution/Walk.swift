import OCIImage

/// The traversal from the selected root descriptors through (possibly nested) indexes, collecting
/// every manifest-level entry as a candidate in index order.
struct Walk {
    enum Decision: Equatable {
        case pending
        case eligible
        case chosen
        case passedOver(reason: String)
        case refused(reason: String, code: UnpackError.Code)
    }

    struct Candidate {
        let descriptor: Descriptor
        /// The indexes this entry was reached through, outermost first.
        let indexPath: [Digest]
        /// Order of discovery: the tie-breaker ("the first matching entry SHOULD be used").
        let position: Int
        var platform: Platform?
        var platformSource: ResolvedImage.PlatformSource?
        var platformRank: Int?
        var compression: CompressionClass?
        var manifest: Manifest?
        var config: ImageConfig?
        var decision: Decision = .pending
        /// For an alternative manifest: the entry whose annotation named it.
        var alternativeOf: Descriptor?
        /// The annotation on this entry named an alternative that cannot be used: an error when
        /// this entry is a candidate for the request.
        var alternativeProblem: UnpackError?
        /// The layers as they would be read: alternatives taken where the request prefers them.
        var layers: [ResolvedImage.Layer] = []
        /// The layer alternatives its layers' annotations named.
        var layerAlternatives: [ResolvedImage.Alternative] = []

        var report: ResolvedImage.Candidate {
            let (status, reason): (ResolvedImage.Candidate.Status, String?) =
                switch decision {
                case .chosen: (.chosen, nil)
                case .passedOver(let why): (.passedOver, why)
                case .refused(let why, _): (.refused, why)
                case .pending, .eligible: (.refused, "not evaluated")
                }
            return ResolvedImage.Candidate(
                digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size,
                indexPath: indexPath, platform: platform, platformSource: platformSource,
                compression: compression?.description, annotations: descriptor.annotations ?? [:],
                status: status, reason: reason, alternativeOf: alternativeOf?.digest)
        }

        /// The report on this candidate as an alternative manifest, when it is one.
        func alternativeReport(key: String) -> ResolvedImage.Alternative? {
            guard let original = alternativeOf else { return nil }
            let (status, reason): (ResolvedImage.Alternative.Status, String?) =
                switch decision {
                case .chosen: (.chosen, nil)
                case .passedOver(let why): (.passedOver, why)
                case .refused(let why, .notFound): (.missing, why + "; the original \(original.digest) is used")
                case .refused(let why, _): (.refused, why)
                case .pending, .eligible: (.refused, "not evaluated")
                }
            return ResolvedImage.Alternative(
                form: .manifest, layer: nil, original: original.digest, alternative: descriptor.digest,
                mediaType: descriptor.mediaType, compression: compression?.description, annotation: key,
                status: status, reason: reason)
        }
    }

    /// Manifests considered at most (each may be read and decoded): bounds the work a hostile
    /// index can ask for.
    static let maxCandidates = 4096

    let source: any ImageSource
    var candidates: [Candidate] = []
    var steps: [ResolvedImage.Step] = []
    /// Entries whose digests cannot be verified, from every index walked.
    var unverifiable: [ResolvedImage.UnverifiableEntry] = []

    /// The annotation that names alternative manifests, when they are read.
    let alternativeKey: String?

    init(source: any ImageSource, alternativeKey: String? = nil) {
        self.source = source
        self.alternativeKey = alternativeKey
    }

    mutating func expand(_ descriptor: Descriptor, via path: [Digest], selectedBy how: String?, depth: Int)
        throws(UnpackError)
    {
        if descriptor.mediaType.kind != .index {
            if let how {
                steps.append(.init(digest: descriptor.digest, mediaType: descriptor.mediaType, selectedBy: how))
            }
            var candidate = Candidate(descriptor: descriptor, indexPath: path, position: candidates.count)
            var alternative: Descriptor?
            if let key = alternativeKey {
                do throws(UnpackError) {
                    alternative = try Alternatives.parse(
                        descriptor, key: key, what: "manifest \(descriptor.digest)", expected: .manifest)
                } catch {
                    candidate.alternativeProblem = error
                }
            }
            try add(candidate, via: path)
            // Right after its original: where all else ties, index order keeps the original.
            if let alternative {
                var named = Candidate(descriptor: alternative, indexPath: path, position: candidates.count)
                named.alternativeOf = descriptor
                try add(named, via: path)
            }
            return
        }
        guard depth < source.limits.maxIndexDepth else {
            throw UnpackError(
                .limitExceeded,
                "indexes nest deeper than \(source.limits.maxIndexDepth) levels at \(descriptor.digest)",
                context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
        }
        // A cycle is an index on its own path; the same index reached twice by different paths is
        // legitimate (but its entries are bounded by maxCandidates).
        guard !path.contains(descriptor.digest) else {
            throw UnpackError(
                .invalidImage, "index \(descriptor.digest) refers to itself (a cycle of indexes)",
                context: .init(digest: descriptor.digest, mediaType: descriptor.mediaType))
        }
        let index = try source.index(descriptor)
        steps.append(
            .init(
                digest: descriptor.digest, mediaType: descriptor.mediaType,
                selectedBy: how ?? "nested in index \(path.last?.description ?? "index.json")",
                entries: index.manifests.count))
        for entry in index.unverifiableEntries {
            unverifiable.append(.init(index: descriptor.digest, entry: entry))
        }
        for entry in index.manifests {
            try expand(entry, via: path + [descriptor.digest], selectedBy: nil, depth: depth + 1)
        }
    }

    /// Adds a candidate, within ``maxCandidates``.
    private mutating func add(_ candidate: Candidate, via path: [Digest]) throws(UnpackError) {
        guard candidates.count < Self.maxCandidates else {
            throw UnpackError(
                .limitExceeded, "the image's indexes list more than \(Self.maxCandidates) manifests",
                context: .init(digest: path.last))
        }
        candidates.append(candidate)
    }

    /// Finds a manifest or index with `digest` anywhere below `entries` (a digest reference to one
    /// platform's manifest inside a multi-platform index).
    mutating func findNested(_ digest: Digest, in entries: [Descriptor]) throws(UnpackError) -> Descriptor? {
        var queue = entries.filter { $0.mediaType.kind == .index && source.hasBlob($0.digest) }
        var seen: Set<Digest> = []
        var depth = 0
        while !queue.isEmpty, depth < source.limits.maxIndexDepth {
            var next: [Descriptor] = []
            for descriptor in queue where seen.insert(descriptor.digest).inserted {
                let index = try source.index(descriptor)
                if let hit = index.manifests.first(where: { $0.digest == digest }) { return hit }
                next += index.manifests.filter { $0.mediaType.kind == .index && source.hasBlob($0.digest) }
            }
            queue = next
            depth += 1
        }
        return nil
    }
}

/// The compression of a whole manifest, for ranking variants.
///
/// Variants are compared by their layers' media types: the one with fewer layers in the least
/// preferred compression wins, then fewer in the next, and so on (so `zstd+none` beats `gzip+none`
/// when zstd is preferred). The `io.github.containers.compression.zstd` annotation breaks what ties
/// remain, before index order.
struct CompressionClass: Equatable, CustomStringConvertible {
    /// Layers per compression.
    let counts: [LayerCompression: Int]
    let annotatedZstd: Bool

    /// The class of a manifest whose layers are read as `layers` (its own descriptors, or
    /// alternatives in their place).
    init(manifestDescriptor: Descriptor, layers: [ResolvedImage.Layer]) {
        var counts: [LayerCompression: Int] = [:]
        for layer in layers {
            counts[layer.compression, default: 0] += 1
        }
        self.counts = counts
        annotatedZstd = manifestDescriptor.annotations?[AnnotationKey.zstdCompression] == "true"
    }

    /// Smaller is better, compared lexicographically.
    func rankKey(in preference: [LayerCompression]) -> [Int] {
        func position(_ c: LayerCompression) -> Int { preference.firstIndex(of: c) ?? preference.count }
        var perPosition = [Int](repeating: 0, count: preference.count + 1)
        for (compression, n) in counts { perPosition[position(compression)] += n }
        let best = counts.keys.map(position).min() ?? preference.count
        return perPosition.reversed() + [annotatedZstd ? position(.zstd) : best]
    }

    var description: String {
        let used = LayerCompression.allCases.filter { counts[$0] != nil }
        switch used.count {
        case 0: return "none"
        case 1: return used[0].rawValue
        default: return "mixed(" + used.map(\.rawValue).joined(separator: "+") + ")"
        }
    }
}
