import Glibc
import LayerEngine
import LayerStream
import OCIImage
import Resolution
import TarArchive
import UnpackSystem

/// The work of one `verify-variants` run: which layers were verified (each blob once, however
/// many variants list it) and which trees were built (once per list of diff_ids).
package struct VariantVerifier {
    /// How layers are read and trees compared.
    package struct Settings: Sendable {
        /// Size caps, as for an unpack.
        package var limits: UnpackLimits
        /// Leave modification times out of listings and comparisons.
        package var ignoreMtime: Bool
        package var gzip: LayerDecoder.GzipImplementation
        /// How many differing paths a variant's report names at most (all are counted).
        package var maxDifferences: Int
        /// Receives warnings (sockets skipped, libarchive warnings).
        package var warn: @Sendable (String) -> Void
        /// Receives debug messages (each layer verified).
        package var debug: @Sendable (String) -> Void
        /// The annotation that names alternatives, when they are verified too.
        package var alternativeAnnotation: String?

        package init(
            limits: UnpackLimits, ignoreMtime: Bool, gzip: LayerDecoder.GzipImplementation, maxDifferences: Int,
            warn: @escaping @Sendable (String) -> Void, debug: @escaping @Sendable (String) -> Void,
            alternativeAnnotation: String? = nil
        ) {
            self.alternativeAnnotation = alternativeAnnotation
            self.limits = limits
            self.ignoreMtime = ignoreMtime
            self.gzip = gzip
            self.maxDifferences = maxDifferences
            self.warn = warn
            self.debug = debug
        }
    }

    let source: any ImageSource
    let settings: Settings

    /// A layer as verified: the same blob read with the same diff_id and compression.
    private struct LayerKey: Hashable {
        let digest: Digest
        let diffID: Digest
        let compression: LayerCompression
    }

    fileprivate enum Outcome: Sendable {
        case verified
        case failed(UnpackError)
    }

    private var verified: [LayerKey: Outcome] = [:]
    private var trees: [TreeKey: Result<TreeListing, UnpackError>] = [:]

    /// What decides the tree a list of layers yields: their diff_ids and, per layer, every rule
    /// that changes what is written from the same tar stream (today the entries a layer format
    /// keeps out: eStargz's table of contents and landmarks, announced by the descriptor alone).
    /// Two variants are the same by config or by diff_ids only when these rules are the same too.
    struct TreeKey: Hashable {
        let diffIDs: [Digest]
        let rules: [Set<[UInt8]>]

        init(_ layers: [ResolvedImage.Layer]) {
            diffIDs = layers.map(\.diffID)
            rules = layers.map { $0.descriptor.layerFormat?.metadataEntries ?? [] }
        }
    }

    package init(source: any ImageSource, settings: Settings) {
        self.source = source
        self.settings = settings
    }

    /// The report on every variant `reference` names in `source`, per platform (only the
    /// platforms that best match `platform`, when one is given).
    package static func report(
        _ reference: ImageReference, in source: any ImageSource, platform: Platform?, settings: Settings
    ) throws(UnpackError) -> VariantReport {
        let (surveyed, unverifiable) = try Resolver(source: source).survey(
            reference, alternativeAnnotation: settings.alternativeAnnotation)
        var order: [String] = []
        var members: [String: [SurveyedCandidate]] = [:]
        for candidate in surveyed {
            let key = candidate.report.platform?.description ?? "unknown"
            if members[key] == nil { order.append(key) }
            // A manifest reached twice (a tag and a nested index) is one variant.
            // (A manifest read with its layer alternatives is a variant of its own.)
            guard
                members[key]?.contains(where: {
                    $0.report.digest == candidate.report.digest && $0.alternativeLayers == candidate.alternativeLayers
                }) != true
            else {
                continue
            }
            members[key, default: []].append(candidate)
        }
        if let platform {
            // The platforms unpack would rank best for the request.
            let ranks = order.compactMap { key -> (String, Int)? in
                guard let found = members[key]?.first?.report.platform, let rank = platform.matchRank(of: found) else {
                    return nil
                }
                return (key, rank)
            }
            guard let best = ranks.map(\.1).min() else {
                let offered = unverifiable.filter {
                    $0.entry.platform.map { platform.matchRank(of: $0) != nil } ?? false
                }
                if let entry = offered.first {
                    throw UnpackError(
                        .unsupportedMediaType,
                        "no verifiable manifest for platform \(platform) in \(reference): entry \(entry.entry.position) of \(entry.index?.description ?? "index.json"): \(entry.entry.reason)"
                    )
                }
                throw UnpackError(
                    .platformNotFound,
                    "no manifest for platform \(platform) in \(reference); available platforms: \(order.joined(separator: ", "))"
                )
            }
            order = ranks.filter { $0.1 == best }.map(\.0)
        }
        var verifier = VariantVerifier(source: source, settings: settings)
        var groups: [VariantReport.Group] = []
        for key in order {
            var group = try verifier.verify(platform: key, members[key] ?? [])
            // An entry that cannot be verified, listed for this platform (or for none), leaves the
            // group unproven.
            group.unverifiable = unverifiable.filter { entry in
                entry.entry.platform.map { $0.normalized.description == key } ?? true
            }
            if !group.unverifiable.isEmpty { group.verdict = max(group.verdict, .incomplete) }
            groups.append(group)
        }
        // With every platform asked for, one offered only through entries that cannot be verified
        // is a group of its own (a single platform asked for is one of the groups above, or an
        // error already).
        for entry in unverifiable where platform == nil {
            guard let entryPlatform = entry.entry.platform?.normalized else { continue }
            let key = entryPlatform.description
            guard !groups.contains(where: { $0.platform == key }) else { continue }
            groups.append(
                VariantReport.Group(
                    platform: key, verdict: .incomplete, variants: [],
                    unverifiable: unverifiable.filter { $0.entry.platform?.normalized == entryPlatform }))
        }
        return VariantReport(
            reference: reference.description, layout: source.name, ignoreMtime: settings.ignoreMtime, groups: groups)
    }

    mutating func verify(platform: String, _ candidates: [SurveyedCandidate]) throws(UnpackError)
        -> VariantReport.Group
    {
        var variants = candidates.map(Self.variant)
        let usable = candidates.indices.filter { candidates[$0].usable }
        guard let first = usable.first else {
            return VariantReport.Group(platform: platform, verdict: .skipped, variants: variants)
        }
        // Trees are built (in the same pass that verifies the layers) for every list of diff_ids
        // that is not the first variant's, and then for the first one too.
        let keys = candidates.map { TreeKey($0.layers) }
        // The same config implies the same diff_ids: a key that differs from the first's under
        // the same config differs in its rules, and needs a tree as much as other diff_ids do.
        let needTrees = usable.filter { keys[$0] != keys[first] }
        try run(
            trees: ((needTrees.isEmpty ? [] : [first]) + needTrees).map { candidates[$0].layers },
            layers: usable.flatMap { candidates[$0].layers })
        for i in usable {
            if let failure = failure(of: candidates[i].layers) {
                variants[i].status = .failed
                variants[i].reason = failure.description
                variants[i].errorCode = failure.code.name
                variants[i].failure = failure.code
            }
        }
        // The reference: the first variant that verified.
        let good = usable.filter { variants[$0].status != .failed }
        if let reference = good.first {
            variants[reference].status = .reference
            for i in good.dropFirst() {
                try compare(&variants[i], candidates[i], with: candidates[reference], referenceIndex: reference)
            }
            if case .success(let tree)? = trees[keys[reference]] {
                variants[reference].treeDigest = tree.digest(ignoringMtime: settings.ignoreMtime)
            }
        }
        var verdict = VariantReport.Verdict.agree
        if variants.contains(where: { $0.status == .refused }) { verdict = max(verdict, .incomplete) }
        if variants.contains(where: { $0.status == .differs }) { verdict = max(verdict, .differ) }
        if variants.contains(where: { $0.status == .failed }) { verdict = .failed }
        return VariantReport.Group(platform: platform, verdict: verdict, variants: variants)
    }

    /// Compares a verified variant with the reference: config digest, diff_ids, then trees; and the
    /// execution configs in every case.
    private mutating func compare(
        _ variant: inout VariantReport.Variant, _ candidate: SurveyedCandidate, with reference: SurveyedCandidate,
        referenceIndex: Int
    ) throws(UnpackError) {
        let configDifferences = Self.executionDifferences(reference.config, candidate.config)
        variant.configDifferences = configDifferences
        let same: Bool
        // The config (or the diff_ids) decide only between variants written by the same rules.
        let sameRules = TreeKey(candidate.layers).rules == TreeKey(reference.layers).rules
        if sameRules && candidate.manifest?.config.digest == reference.manifest?.config.digest {
            variant.sameBy = "config"
            same = true
        } else if sameRules && candidate.layers.map(\.diffID) == reference.layers.map(\.diffID) {
            variant.sameBy = "diff_ids"
            same = true
        } else {
            let mine = try treeResult(candidate.layers)
            let theirs = try treeResult(reference.layers)
            switch (theirs, mine) {
            case (.success(let a), .success(let b)):
                variant.treeDigest = b.digest(ignoringMtime: settings.ignoreMtime)
                let (first, count) = a.differences(
                    to: b, ignoringMtime: settings.ignoreMtime, limit: settings.maxDifferences)
                variant.differences = first
                variant.differenceCount = count
                same = count == 0
                if same { variant.sameBy = "tree" }
            case (.failure(let error), _), (_, .failure(let error)):
                // A tree that cannot be built (a limit, an unsafe path) fails the variant it
                // belongs to; verification already marked a stream failure.
                variant.status = .failed
                variant.reason = error.description
                variant.errorCode = error.code.name
                variant.failure = error.code
                return
            }
        }
        variant.status = same && configDifferences.isEmpty ? .same : .differs
        if !same || !configDifferences.isEmpty { variant.sameBy = same ? variant.sameBy : nil }
    }

    // MARK: - Layers and trees

    /// The first failure among `layers`' verifications.
    private func failure(of layers: [ResolvedImage.Layer]) -> UnpackError? {
        for layer in layers {
            if case .failed(let error)? = verified[key(layer)] { return error }
        }
        return nil
    }

    private func key(_ layer: ResolvedImage.Layer) -> LayerKey {
        LayerKey(digest: layer.descriptor.digest, diffID: layer.diffID, compression: layer.compression)
    }

    /// One unit of work: a tree to build (verifying its layers on the way) or a layer to verify.
    private enum Job: Sendable {
        case tree([ResolvedImage.Layer])
        case layer(ResolvedImage.Layer)
    }

    /// What a job found.
    fileprivate enum JobResult: Sendable {
        case tree(Result<TreeListing, UnpackError>, [(ResolvedImage.Layer, Outcome)])
        case layer(Outcome)
    }

    /// Builds the trees not yet built (once per list of diff_ids), then verifies every layer those
    /// did not stream, as one pool of jobs on one thread per core (at most four): trees first,
    /// as they take longest. A tree job keeps its pipeline's reader and hasher threads; a layer
    /// job is one thread decompressing and hashing, unless there are fewer jobs than cores.
    /// Records each outcome; only an interruption is thrown.
    private mutating func run(trees treeLists: [[ResolvedImage.Layer]], layers: [ResolvedImage.Layer])
        throws(UnpackError)
    {
        var jobs: [Job] = []
        var planned: Set<TreeKey> = []
        var covered: Set<LayerKey> = []
        for list in treeLists where trees[TreeKey(list)] == nil && planned.insert(TreeKey(list)).inserted {
            jobs.append(.tree(list))
            for layer in list { covered.insert(key(layer)) }
        }
        for layer in layers where verified[key(layer)] == nil && covered.insert(key(layer)).inserted {
            jobs.append(.layer(layer))
        }
        guard !jobs.isEmpty else { return }
        let cores = max(1, min(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 4))
        let prefetch = jobs.count < cores
        let results = JobResults(count: jobs.count)
        let all = jobs
        let source = self.source
        let settings = self.settings
        let work: @Sendable () -> Void = {
            while let i = results.next() {
                switch all[i] {
                case .tree(let list):
                    results.set(i, Self.buildTree(list, source: source, settings: settings))
                case .layer(let layer):
                    results.set(i, .layer(Self.verify(layer, source: source, settings: settings, prefetch: prefetch)))
                }
            }
        }
        var threads: [ThreadHandle] = []
        for n in 0..<min(cores, jobs.count) - 1 {
            guard let thread = try? startThread(name: "oci-verify-\(n)", work) else { break }
            threads.append(thread)
        }
        work()
        for thread in threads { thread.join() }
        for (i, job) in jobs.enumerated() {
            switch (job, results.get(i)) {
            case (.tree(let list), .tree(let result, let outcomes)):
                if case .failure(let error) = result { try Self.rethrowInterruption(error) }
                trees[TreeKey(list)] = result
                for (layer, outcome) in outcomes { verified[key(layer)] = outcome }
            case (.layer(let layer), .layer(let outcome)):
                if case .failed(let error) = outcome { try Self.rethrowInterruption(error) }
                verified[key(layer)] = outcome
            default:
                throw UnpackError(.internal, "verification job \(i) returned another kind of result")
            }
        }
    }

    /// One layer through size, digest, decompression and diff_id, nothing kept.
    private static func verify(
        _ layer: ResolvedImage.Layer, source: any ImageSource, settings: Settings, prefetch: Bool
    )
        -> Outcome
    {
        settings.debug("verifying layer \(layer.descriptor.digest)")
        do throws(UnpackError) {
            try driver([layer], source: source, settings: settings, prefetch: prefetch).run(into: VerifyingConsumer())
            return .verified
        } catch {
            return .failed(error)
        }
    }

    /// The layer driver for `layers` (errors come located: layer index, digest, media type).
    private static func driver(
        _ layers: [ResolvedImage.Layer], source: any ImageSource, settings: Settings, prefetch: Bool
    ) -> LayerDriver {
        let warn = settings.warn
        return LayerDriver(
            source: source, layers: layers,
            settings: LayerDriver.Settings(
                limits: settings.limits, gzip: settings.gzip, prefetch: prefetch, warn: { warn($0) }))
    }

    /// The tree listing of `layers`, built once per list of diff_ids; the layers it streams count
    /// as verified.
    private mutating func treeResult(_ layers: [ResolvedImage.Layer]) throws(UnpackError) -> Result<
        TreeListing, UnpackError
    > {
        try run(trees: [layers], layers: [])
        return trees[TreeKey(layers)] ?? .failure(UnpackError(.internal, "a tree was not built"))
    }

    /// Applies `layers` in memory, verifying each stream on the way.
    package mutating func tree(of layers: [ResolvedImage.Layer]) throws(UnpackError) -> TreeListing {
        try treeResult(layers).get()
    }

    /// Applies `layers` in memory, verifying each stream on the way: the tree, and the outcome of
    /// each layer it streamed.
    private static func buildTree(_ layers: [ResolvedImage.Layer], source: any ImageSource, settings: Settings)
        -> JobResult
    {
        let warn = settings.warn
        let tree = VirtualTree(limits: settings.limits) { warn($0) }
        let committed = CommittedLayers(tree)
        do throws(UnpackError) {
            try driver(layers, source: source, settings: settings, prefetch: true).run(into: committed)
            return .tree(.success(TreeListing(tree)), layers.map { ($0, .verified) })
        } catch {
            // The layers before the failing one verified; the failing one is the tree's failure.
            var outcomes = layers.prefix(committed.count).map { ($0, Outcome.verified) }
            if committed.count < layers.count { outcomes.append((layers[committed.count], .failed(error))) }
            return .tree(.failure(error), outcomes)
        }
    }

    private static func rethrowInterruption(_ error: UnpackError) throws(UnpackError) {
        if error.code == .interrupted { throw error }
    }

    // MARK: - Reports

    private static func variant(_ candidate: SurveyedCandidate) -> VariantReport.Variant {
        let report = candidate.report
        var variant = VariantReport.Variant(
            digest: report.digest, mediaType: report.mediaType, compression: report.compression,
            annotations: report.annotations, config: candidate.manifest?.config.digest,
            layers: candidate.layers.map {
                VariantReport.Layer(
                    index: $0.index, digest: $0.descriptor.digest, mediaType: $0.descriptor.mediaType,
                    compression: $0.compression, format: $0.descriptor.layerFormat?.rawValue, size: $0.descriptor.size,
                    diffID: $0.diffID)
            },
            status: .refused)
        variant.alternativeOf = report.alternativeOf
        variant.alternativeLayers = candidate.alternativeLayers
        if let refusal = candidate.refusal {
            variant.reason = report.reason
            variant.errorCode = refusal.name
            variant.failure = refusal
        } else {
            variant.status = .same  // until verified and compared
        }
        return variant
    }

    private static let noExecution = ImageConfig.Execution()

    /// The execution-config fields (`config` in the image config) that differ.
    static func executionDifferences(_ a: ImageConfig?, _ b: ImageConfig?) -> [String] {
        let x = a?.config ?? Self.noExecution
        let y = b?.config ?? Self.noExecution
        var out: [String] = []
        if x.user != y.user { out.append("User") }
        if x.exposedPorts != y.exposedPorts { out.append("ExposedPorts") }
        if x.env != y.env { out.append("Env") }
        if x.entrypoint != y.entrypoint { out.append("Entrypoint") }
        if x.cmd != y.cmd { out.append("Cmd") }
        if x.volumes != y.volumes { out.append("Volumes") }
        if x.workingDir != y.workingDir { out.append("WorkingDir") }
        if x.labels != y.labels { out.append("Labels") }
        if x.stopSignal != y.stopSignal { out.append("StopSignal") }
        if out.isEmpty && x != y { out.append("other fields") }
        return out
    }
}

/// The results of parallel verification jobs, and the next job to take.
private final class JobResults: @unchecked Sendable {
    private let lock = ConditionLock()
    private var results: [VariantVerifier.JobResult?]
    private var taken = 0

    init(count: Int) { results = Array(repeating: nil, count: count) }

    func next() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard taken < results.count else { return nil }
        taken += 1
        return taken - 1
    }

    func set(_ i: Int, _ result: VariantVerifier.JobResult) {
        lock.lock()
        results[i] = result
        lock.unlock()
    }

    func get(_ i: Int) -> VariantVerifier.JobResult {
        lock.lock()
        defer { lock.unlock() }
        return results[i] ?? .layer(.failed(UnpackError(.internal, "verification job \(i) did not run")))
    }
}

/// The in-memory tree, counting the layers that verified (for the outcomes of a tree job).
private final class CommittedLayers: LayerConsumer {
    let tree: VirtualTree
    private(set) var count = 0

    init(_ tree: VirtualTree) { self.tree = tree }

    func beginLayer(at position: Int) throws(UnpackError) { tree.beginLayer(at: position) }
    func consume(_ entry: TarEntry, from reader: TarReader) throws(UnpackError) {
        try tree.consume(entry, from: reader)
    }
    func commitLayer(at position: Int) throws(UnpackError) { count = position + 1 }
}
