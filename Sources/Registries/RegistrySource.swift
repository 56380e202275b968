import AsyncHTTPClient
import FoundationEssentials
import OCIImage
import Synchronization
import UnpackSystem

/// `docker://HOST/REPO[:TAG|@DIGEST]`: a registry (distribution-spec v2) as a source of images.
/// Its index is the one entry the reference names (the manifest or index it resolves to, fetched
/// once, hashed and checked against the digest asked for and against `Docker-Content-Digest`);
/// nested indexes, manifests and configs are fetched by digest as resolution asks for them;
/// layers stream from HTTP into the pipeline, never held whole nor written anywhere.
package struct RegistrySource: ImageSource {
    package let name: String
    /// A tag or digest is the registry's answer (or the cache's record of it).
    package var indexOrigin: String { "the registry" }
    package let index: Index
    package let limits: DocumentLimits
    /// Where the reference is pulled from: registries.conf's mirrors, then the registry.
    let endpoints: RegistryEndpoints
    /// The documents already fetched (the reference's own manifest or index).
    let fetched: [Digest: [UInt8]]

    /// What `Accept` lists for manifests: every manifest and index type oci-unpack processes.
    static let manifestTypes: [String] = [
        MediaType.ociIndex.rawValue, MediaType.ociManifest.rawValue, MediaType.dockerManifestList.rawValue,
        MediaType.dockerManifest.rawValue,
    ]

    package init(
        reference: ImageReference, options: RegistryOptions, limits: DocumentLimits = .init(),
        onWarning: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(UnpackError) {
        self.limits = limits
        name = "docker://\(reference.registryHost)/\(reference.repository)"
        let asked: String
        var tag: String?
        var digest: Digest?
        switch reference.selector {
        case .tag(let t):
            asked = t
            tag = t
        case .digest(let d):
            asked = d.description
            digest = d
        case .only:
            asked = "latest"
            tag = "latest"
        }
        endpoints = try RegistryEndpoints(
            host: reference.registryHost, repository: reference.repository,
            selector: digest.map { "@\($0)" } ?? ":\(asked)", byDigest: digest != nil, options: options,
            onWarning: onWarning)
        let ((bytes, mediaType, actual), _) = try endpoints.first(
            "manifest \(asked)", asking: digest == nil ? .tag : .digest
        ) { (client) throws(UnpackError) in
            let answer = try Self.manifest(asked, client: client, limits: limits)
            if let digest, digest != answer.2 {
                throw UnpackError(
                    .digestMismatch,
                    "\(client.place): the manifest sent for \(digest) does not hash to it",
                    context: .init(digest: digest))
            }
            return answer
        }
        var annotations: [String: String]?
        if let tag { annotations = [AnnotationKey.refName: tag] }
        index = Index(
            mediaType: .ociIndex,
            manifests: [
                Descriptor(mediaType: mediaType, digest: actual, size: Int64(bytes.count), annotations: annotations)
            ])
        fetched = [actual: bytes]
    }

    /// A manifest or index by tag or digest: its bytes (at most the manifest limit), its media
    /// type (the response's `Content-Type`, else the document's own) and the digest of its bytes,
    /// which `Docker-Content-Digest` must agree with when sent.
    static func manifest(_ reference: String, client: RegistryClient, limits: DocumentLimits) throws(UnpackError) -> (
        [UInt8], MediaType, Digest
    ) {
        let reply = try client.fetch("manifests/\(reference)", accept: manifestTypes, limit: limits.maxManifestBytes)
        guard reply.status.code != 404 else {
            throw UnpackError(.notFound, "\(client.place) has no manifest \(reference)")
        }
        let digest = Digest.of(reply.body)
        if let sent = reply.headers.first(name: "Docker-Content-Digest"), let claimed = try? Digest(parsing: sent),
            claimed.algorithm == digest.algorithm, claimed != digest
        {
            throw UnpackError(
                .digestMismatch,
                "\(client.place): the manifest for \(reference) does not hash to the Docker-Content-Digest \(claimed) sent with it",
                context: .init(digest: claimed))
        }
        var mediaType: MediaType?
        if let contentType = reply.headers.first(name: "Content-Type") {
            let type = MediaType(rawValue: String(contentType.prefix { $0 != ";" }).trimmedOfSpaces)
            if type.kind == .manifest || type.kind == .index { mediaType = type }
        }
        if mediaType == nil { mediaType = try ImageDocuments.sniffDescriptor(reply.body, digest: digest).mediaType }
        return (reply.body, mediaType ?? .ociManifest, digest)
    }

    package func hasBlob(_ digest: Digest) -> Bool {
        if fetched[digest] != nil { return true }
        // HEAD: resolution asks whether layers exist without downloading them. Any endpoint that
        // has it will do; one that cannot be asked counts as having it (the download then says).
        do throws(UnpackError) {
            return try endpoints.first("blob \(digest)") { (client) throws(UnpackError) in
                let reply = try client.fetch("blobs/\(digest)", method: .HEAD, limit: 0)
                guard reply.status.code != 404 else {
                    throw UnpackError(.notFound, "\(client.place) has no blob \(digest)")
                }
                return true
            }.value
        } catch {
            return error.code != .notFound
        }
    }

    /// The HEADs at once, on up to eight threads: one by one, a ten-layer manifest waited for ten
    /// round trips (3 ms each on loopback) before anything was unpacked.
    package func hasBlobs(_ digests: [Digest]) -> [Bool] {
        guard digests.count > 1 else { return digests.map(hasBlob) }
        let answers = Mutex([Bool](repeating: true, count: digests.count))
        let lanes = min(digests.count, 8)
        var threads: [ThreadHandle] = []
        for lane in 0..<lanes {
            let source = self
            let ask: @Sendable () -> Void = {
                for i in stride(from: lane, to: digests.count, by: lanes) {
                    let present = source.hasBlob(digests[i])
                    answers.withLock { $0[i] = present }
                }
            }
            if let thread = try? startThread(name: "registry head", ask) {
                threads.append(thread)
            } else {
                ask()
            }
        }
        for thread in threads { thread.join() }
        return answers.withLock { $0 }
    }

    package func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
        let context = UnpackError.Context(digest: descriptor.digest, mediaType: descriptor.mediaType)
        try descriptor.checkDocumentSize(limit: limit)
        let bytes: [UInt8]
        if let known = fetched[descriptor.digest] {
            bytes = known
        } else if descriptor.mediaType.kind == .manifest || descriptor.mediaType.kind == .index {
            bytes = try endpoints.first("manifest \(descriptor.digest)") { (client) throws(UnpackError) in
                try Self.manifest(descriptor.digest.description, client: client, limits: limits).0
            }.value
        } else {
            let answer = try endpoints.first("blob \(descriptor.digest)") { (client) throws(UnpackError) in
                // One byte more than the descriptor's size tells a longer blob (an endless body) apart.
                let reply: RegistryClient.Reply
                do throws(UnpackError) {
                    reply = try client.fetch("blobs/\(descriptor.digest)", limit: Int(descriptor.size) + 1)
                } catch {
                    guard error.code == .limitExceeded else { throw error }
                    throw UnpackError(
                        .sizeMismatch,
                        "\(client.place): blob \(descriptor.digest) is longer than its descriptor's size \(descriptor.size)",
                        context: context)
                }
                guard reply.status.code != 404 else {
                    throw UnpackError(.notFound, "\(client.place) has no blob \(descriptor.digest)", context: context)
                }
                return reply.body
            }
            endpoints.record(descriptor.digest, servedBy: answer.endpoint)
            bytes = answer.value
        }
        return bytes
    }

    package func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream {
        let (stream, endpoint) = try endpoints.first("blob \(descriptor.digest)") { (client) throws(UnpackError) in
            try RegistryBlobStream(client: client, descriptor: descriptor)
        }
        endpoints.record(descriptor.digest, servedBy: endpoint)
        return stream
    }

    /// The mirror or registry that served the blob.
    package func origin(of digest: Digest) -> String? { endpoints.origin(of: digest) }

    package func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor {
        let ((bytes, mediaType, _), _) = try endpoints.first("manifest \(digest)") { (client) throws(UnpackError) in
            let answer = try Self.manifest(digest.description, client: client, limits: limits)
            guard answer.2 == digest else {
                throw UnpackError(
                    .digestMismatch, "\(client.place): the manifest sent for \(digest) does not hash to it",
                    context: .init(digest: digest))
            }
            return answer
        }
        return Descriptor(mediaType: mediaType, digest: digest, size: Int64(bytes.count))
    }
}

extension RegistrySource {
    /// The source for a `docker://` reference: the registry itself, or, with `options.cache`, the
    /// cache in front of it. A tag the cache recorded (unless `--pull always`) or a digest whose
    /// document the cache holds is resolved without the registry, which is then reached only for
    /// the first blob the cache lacks; otherwise the registry is asked, and what it names recorded.
    package static func open(
        _ reference: ImageReference, options: RegistryOptions, limits: DocumentLimits,
        onWarning: @escaping @Sendable (String) -> Void
    ) throws(UnpackError) -> any ImageSource {
        var configured = options
        if options.registriesConf == nil, options.readsRegistriesConf || options.registriesConfFile != nil {
            configured.registriesConf = try RegistriesConf.load(
                explicit: options.registriesConfFile, environment: ProcessInfo.processInfo.environment)
        }
        let options = configured
        // A short name (no registry named), with registries.conf read: podman's resolution.
        if let short = reference.shortName, let conf = options.registriesConf, !conf.files.isEmpty {
            let (names, how) = try conf.resolveShortName(short)
            var failures: [String] = []
            for (n, name) in names.enumerated() {
                // Through the parser: its checks of host and repository, and docker.io's library/.
                var resolved = try ImageReference(parsing: "docker://" + name, isDirectory: { _ in false })
                resolved.selector = reference.selector
                resolved.shortName = nil
                do throws(UnpackError) {
                    return try open(resolved, options: options, limits: limits, onWarning: onWarning)
                } catch {
                    // The next candidate only when this one lacks the image or cannot be reached.
                    // (A registry answers 401 or 403 for a repository it does not have.)
                    guard n < names.count - 1, RegistryEndpoints.passesOn(error) else {
                        guard !failures.isEmpty else { throw error }
                        var last = error
                        last.message +=
                            " (short name \"\(short)\" by \(how); tried before: \(failures.joined(separator: "; ")))"
                        throw last
                    }
                    failures.append("\(name): \(error.message)")
                }
            }
        }
        guard let settings = options.cache else {
            return try RegistrySource(reference: reference, options: options, limits: limits, onWarning: onWarning)
        }
        let cache = try BlobCache(path: settings.path, maxSize: settings.maxSize, onWarning: onWarning)
        let name = "docker://\(reference.registryHost)/\(reference.repository)"
        var tag: String?
        var cached: Descriptor?
        switch reference.selector {
        case .digest(let digest):
            cached = cachedDocument(digest, in: cache, limits: limits)
        case .tag(let named):
            tag = named
        case .only:
            tag = "latest"
        }
        let recordName = tag.map { "\(reference.registryHost)/\(reference.repository):\($0)" }
        if let recordName, settings.pull != .always { cached = cache.tagged(recordName) }
        if var entry = cached {
            entry.annotations = tag.map { [AnnotationKey.refName: $0] }
            let digest = entry.digest
            let byDigest = ImageReference(
                layoutPath: reference.layoutPath, selector: .digest(digest), transport: .registry)
            let remote = LazySource { () throws(UnpackError) -> any ImageSource in
                guard settings.pull != .never else {
                    throw UnpackError(
                        .notFound,
                        "the cache \(settings.path) lacks a blob of \(name)@\(digest), and --pull never forbids asking the registry",
                        context: .init(path: settings.path))
                }
                return try RegistrySource(reference: byDigest, options: options, limits: limits, onWarning: onWarning)
            }
            return CachingSource(
                name: name, index: Index(mediaType: .ociIndex, manifests: [entry]), limits: limits, cache: cache,
                remote: remote)
        }
        guard settings.pull != .never else {
            throw UnpackError(
                .notFound, "\(reference) is not in the cache \(settings.path) (--pull never)",
                context: .init(path: settings.path))
        }
        let registry = try RegistrySource(reference: reference, options: options, limits: limits, onWarning: onWarning)
        for (digest, bytes) in registry.fetched { cache.store(bytes, for: digest) }
        if let recordName, let entry = registry.index.manifests.first { cache.record(entry, as: recordName) }
        return CachingSource(
            name: registry.name, index: registry.index, limits: limits, cache: cache, remote: LazySource(registry))
    }

    /// The descriptor of a manifest or index the cache holds, from its verified content.
    private static func cachedDocument(_ digest: Digest, in cache: BlobCache, limits: DocumentLimits) -> Descriptor? {
        guard let bytes = cache.document(digest, limit: limits.maxManifestBytes) else { return nil }
        return try? ImageDocuments.sniffDescriptor(bytes, digest: digest)
    }
}

/// Registry access over AsyncHTTPClient, with the `--cache` blob store in front when the options
/// ask for it: what `Unpacker(registries:)` takes to reach `docker://` references.
public struct RegistryClientAccess: RegistryAccess {
    /// Registry access with no state of its own: each source makes its client.
    public init() {}

    /// The registry `reference` names, or the cache in front of it (``RegistrySource/open``).
    public func openSource(
        _ reference: ImageReference, options: RegistryOptions, limits: DocumentLimits,
        onWarning: @escaping @Sendable (String) -> Void
    ) throws(UnpackError) -> any ImageSource {
        try RegistrySource.open(reference, options: options, limits: limits, onWarning: onWarning)
    }
}
