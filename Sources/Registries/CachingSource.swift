import OCIImage
import Synchronization
import TarArchive
import UnpackSystem

/// A remote source seen through a ``BlobCache``: every blob is read from the cache when it is
/// there, else from the remote, which is only reached (made, and so connected to) for the first
/// blob the cache lacks. What the remote sends is stored as it passes: documents once checked,
/// layers through a ``CachingStream`` once the pipeline verified them.
package struct CachingSource: ImageSource {
    package let name: String
    /// A tag or digest is the registry's answer (or the cache's record of it).
    package var indexOrigin: String { "the registry" }
    package let index: Index
    package let limits: DocumentLimits
    package let cache: BlobCache
    private let remote: LazySource
    /// The blobs read from the cache.
    private let fromCache = CacheHits()

    /// - Parameters:
    ///   - index: the reference's entry, from the remote or from the cache's record of its tag.
    ///   - remote: makes the remote source when a blob is not in the cache.
    package init(name: String, index: Index, limits: DocumentLimits, cache: BlobCache, remote: LazySource) {
        self.name = name
        self.index = index
        self.limits = limits
        self.cache = cache
        self.remote = remote
    }

    package func hasBlob(_ digest: Digest) -> Bool { hasBlobs([digest])[0] }

    /// What the cache holds, and what the remote says of the rest. Resolution asks about every
    /// candidate's layers, and the registry is not reached for that alone: until it is, a blob is
    /// taken to exist, and opening it says if it cannot be had.
    package func hasBlobs(_ digests: [Digest]) -> [Bool] {
        var answers = digests.map(cache.has)
        let missing = answers.indices.filter { !answers[$0] }
        guard let remote = remote.made, !missing.isEmpty else { return digests.map { _ in true } }
        for (i, present) in zip(missing, remote.hasBlobs(missing.map { digests[$0] })) { answers[i] = present }
        return answers
    }

    package func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
        try descriptor.checkDocumentSize(limit: limit)
        if let bytes = cache.read(descriptor, limit: limit) {
            fromCache.insert(descriptor.digest)
            return bytes
        }
        let remote = try remote.source()
        // Checked here too, before it is stored: the cache keeps only verified blobs.
        let bytes = try remote.checkedBlob(descriptor, limit: limit)
        cache.store(bytes, for: descriptor.digest)
        return bytes
    }

    package func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream {
        if let fd = cache.open(descriptor.digest) {
            fromCache.insert(descriptor.digest)
            return CachedBlobStream(fd, cache: cache, descriptor: descriptor)
        }
        let stream = try remote.source().openBlob(descriptor)
        guard let writer = cache.writer(for: descriptor.digest) else { return stream }
        return CachingStream(upstream: stream, writer: writer)
    }

    /// Signatures are not cached: a policy that needs them reaches the registry (and its lookaside).
    package func signatures(_ request: SignatureRequest) throws(UnpackError) -> [StoredSignature] {
        try remote.source().signatures(request)
    }

    /// `cache DIR`, or the mirror or registry that sent it.
    package func origin(of digest: Digest) -> String? {
        if fromCache.contains(digest) { return "cache \(cache.path)" }
        return remote.made?.origin(of: digest)
    }

    package func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor {
        if let bytes = cache.document(digest, limit: limits.maxManifestBytes) {
            return try ImageDocuments.sniffDescriptor(bytes, digest: digest)
        }
        return try remote.source().sniffDescriptor(for: digest)
    }
}

/// The digests a ``CachingSource`` read from its cache.
final class CacheHits: Sendable {
    private let digests = Mutex<Set<Digest>>([])

    func insert(_ digest: Digest) { digests.withLock { _ = $0.insert(digest) } }

    func contains(_ digest: Digest) -> Bool { digests.withLock { $0.contains(digest) } }
}

/// A source made on first use (a registry client connects when it is made), at most once; a
/// failure is kept and thrown again, so one run does not wait for an unreachable registry twice.
package final class LazySource: Sendable {
    private let make: @Sendable () throws(UnpackError) -> any ImageSource
    private let state = Mutex<Result<any ImageSource, UnpackError>?>(nil)

    package init(_ make: @escaping @Sendable () throws(UnpackError) -> any ImageSource) {
        self.make = make
    }

    /// One already made.
    package init(_ source: any ImageSource) {
        make = { source }
        state.withLock { $0 = .success(source) }
    }

    /// The source if it was made.
    package var made: (any ImageSource)? {
        state.withLock { (try? $0?.get()) ?? nil }
    }

    package func source() throws(UnpackError) -> any ImageSource {
        let result = state.withLock { (state) -> Result<any ImageSource, UnpackError> in
            if let state { return state }
            let made = Result { () throws(UnpackError) in try make() }
            state = made
            return made
        }
        return try result.get()
    }
}

/// A layer read from the cache. If the pipeline finds that it does not verify (the file was
/// altered or cut short since it was stored), the file is hashed once more and removed if its own
/// bytes do not hash to its name (a descriptor with another size is not the file's fault), so the
/// next run fetches it again. A pipeline that stopped inside the blob gives no verdict (a
/// decompressor met the altered bytes first, or a failure elsewhere): the same check decides.
/// A stream opened ahead and never read is left alone.
final class CachedBlobStream: ByteStream {
    private let file: FileStream
    private let cache: BlobCache
    private let descriptor: Descriptor
    private var told = false
    private var consumed: Int64 = 0

    init(_ fd: OwnedFD, cache: BlobCache, descriptor: Descriptor) {
        file = FileStream(fd)
        self.cache = cache
        self.descriptor = descriptor
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        let n = try file.read(into: buffer)
        consumed += Int64(n)
        return n
    }

    func blobVerified(_ verified: Bool) {
        told = true
        if !verified { cache.check(descriptor.digest) }
    }

    deinit {
        if !told && consumed > 0 { cache.check(descriptor.digest) }
    }
}

/// A layer from the remote, copied into the cache as it passes (a tee): the copy is published
/// when the pipeline says the blob verified, and removed otherwise (also when the unpack stops
/// before the end of the blob).
final class CachingStream: ByteStream {
    private let upstream: any ByteStream
    private let writer: CacheWriter

    init(upstream: any ByteStream, writer: CacheWriter) {
        self.upstream = upstream
        self.writer = writer
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
        let n = try upstream.read(into: buffer)
        writer.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        return n
    }

    func blobVerified(_ verified: Bool) {
        writer.finish(verified: verified)
    }
}
