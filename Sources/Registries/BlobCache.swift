import FoundationEssentials
import Glibc
import OCIImage
import UnpackSystem

/// `--cache DIR`: an OCI image layout used as a content-addressed store of what registries sent.
///
/// - A blob becomes visible (`blobs/ALG/HEX`) only by a rename, once its bytes verified: a
///   layer is written to `ingest/` while it streams into the pipeline, and renamed when the
///   pipeline's blob stage says its size and digest held; a document is written after its check.
///   Readers therefore never see a partial blob, and nothing that failed verification is kept.
/// - What is read back is verified again, as any layout's blob is (the pipeline hashes every
///   layer anyway, so this costs nothing); a stored blob that does not verify is removed.
/// - Several processes may share a cache: each writes its own `ingest/` file, renames are atomic,
///   and the only lock (flock on `blobs/`) is held while `index.json` is rewritten or the size
///   bound is enforced, never across a download.
/// - `index.json` records which manifest each pulled tag named (`org.opencontainers.image.ref.name`
///   is `HOST/REPO:TAG`), so a later run can resolve the tag without the registry.
/// - With a size bound, the least recently used blobs go first: a blob's mtime is set whenever
///   it is stored or read.
package final class BlobCache: Sendable {
    package let path: String
    /// Bytes the blobs may take together; `nil` for no bound.
    package let maxSize: Int64?
    private let root: OwnedFD
    private let ingest: OwnedFD
    /// The uid that owns the cache's top directory: every stored blob must be its.
    private let owner: uid_t
    private let blobDirectories: [Digest.Algorithm: OwnedFD]
    /// Where warnings go (a blob that could not be stored is not an unpack failure).
    private let onWarning: @Sendable (String) -> Void

    /// `ingest/` files older than this are left by a process that died: removed when the bound is enforced.
    static let staleIngestSeconds = 24 * 3600

    /// Opens the cache at `path`, making it (and its parents) if needed. An existing directory
    /// must be an OCI layout, or empty.
    package init(path: String, maxSize: Int64? = nil, onWarning: @escaping @Sendable (String) -> Void = { _ in })
        throws(UnpackError)
    {
        self.path = path
        self.maxSize = maxSize
        self.onWarning = onWarning
        let failed = { (error: SystemError) in
            error.unpackError("the cache \(path) cannot be opened", context: .init(path: path))
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw UnpackError(.io, "the cache directory \(path) cannot be made: \(error)", context: .init(path: path))
        }
        do throws(SystemError) {
            root = try OwnedFD(
                retryingSyscall("open", path: path) { Glibc.open(path, O_PATH_VALUE | O_DIRECTORY | O_CLOEXEC) })
        } catch {
            throw failed(error)
        }
        // Blobs are verified when read, but the tags index.json records are trusted (`--pull
        // missing`): nobody but the user may be able to change them.
        for (name, what) in [(".", "directory"), ("index.json", "index")] {
            var st = stat()
            guard fstatat(root.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            try Self.checkOwner(st, what: what, display: name == "." ? path : path + "/" + name)
        }
        var top = stat()
        owner = fstat(root.rawValue, &top) == 0 ? top.st_uid : geteuid()
        let known: Set<String> = ["oci-layout", "index.json", "blobs", "ingest"]
        let present = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        if !present.contains("oci-layout"), let stranger = present.sorted().first(where: { !known.contains($0) }) {
            throw UnpackError(
                .invalidArgument,
                "the cache \(path) is neither an OCI layout nor empty (it holds \(stranger.truncatedForMessage)): give a new or empty directory",
                context: .init(path: path))
        }
        let blobs = try Self.directory("blobs", in: root, display: path)
        var directories: [Digest.Algorithm: OwnedFD] = [:]
        for algorithm in [Digest.Algorithm.sha256, .sha512] {
            directories[algorithm] = try Self.directory(algorithm.rawValue, in: blobs, display: path + "/blobs")
        }
        blobDirectories = directories
        ingest = try Self.directory("ingest", in: root, display: path)
        do throws(SystemError) {
            try createIfMissing("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
            try createIfMissing("index.json", Self.indexText([]))
        } catch {
            throw failed(error)
        }
        let marker = try readFile("oci-layout", limit: 64 << 10)
        try ImageDocuments.checkLayoutMarker(marker, place: path + "/oci-layout")
        sweepIngest()
    }

    /// A part of the cache that only its user (or root) may be able to change.
    private static func checkOwner(_ st: stat, what: String, display: String) throws(UnpackError) {
        guard st.st_uid == geteuid() || st.st_uid == 0, st.st_mode & 0o022 == 0 else {
            throw UnpackError(
                .invalidArgument,
                "the cache \(what) \(display) is owned by uid \(st.st_uid) with mode \(String(st.st_mode & 0o7777, radix: 8)): the tags it records would be others' to choose; give a cache only you can write",
                context: .init(path: display))
        }
    }

    /// A directory of the cache, made if missing, never through a symlink, owned and writable as
    /// the cache's top must be (another user able to write `blobs/` or `ingest/` could swap files
    /// in under a name between a check and a use).
    private static func directory(_ name: String, in parent: OwnedFD, display: String) throws(UnpackError) -> OwnedFD {
        let fd: OwnedFD
        do throws(SystemError) {
            if mkdirat(parent.rawValue, name, 0o755) != 0 && errno != EEXIST {
                throw SystemError(call: "mkdirat", errno: errno, path: "\(display)/\(name)")
            }
            fd = try parent.openChild(name, flags: O_PATH_VALUE | O_DIRECTORY, display: "\(display)/\(name)")
        } catch {
            throw error.unpackError("the cache \(display) cannot be opened", context: .init(path: display))
        }
        var st = stat()
        if fstat(fd.rawValue, &st) == 0 { try checkOwner(st, what: "directory", display: "\(display)/\(name)") }
        return fd
    }

    /// Whether a stored blob's file may be used (and marked used): a regular file with no other
    /// name, owned by the cache's owner (or by this user, who wrote it into a cache root shares).
    /// A hard link to a file elsewhere would have that file's time changed by the mark and its
    /// bytes served; a file of another user's is not ours.
    private func usable(_ st: stat) -> Bool {
        st.isRegularFile && st.st_nlink == 1 && (st.st_uid == owner || st.st_uid == geteuid())
    }

    /// Writes `name` at the top of the cache unless it exists (a concurrent first run may race:
    /// the file appears whole, through link(2) of a complete `ingest/` file, or not at all).
    private func createIfMissing(_ name: String, _ bytes: [UInt8]) throws(SystemError) {
        if faccessat(root.rawValue, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0 { return }
        let file = try IngestFile(in: self)
        try writeAll(file.fd.rawValue, bytes, path: "\(path)/ingest/\(file.name)")
        if linkat(ingest.rawValue, file.name, root.rawValue, name, 0) != 0 && errno != EEXIST {
            throw SystemError(call: "linkat", errno: errno, path: "\(path)/\(name)")
        }
    }

    // MARK: - Blobs

    /// The file that holds a blob, for messages.
    package func blobPath(_ digest: Digest) -> String {
        "\(path)/blobs/\(digest.algorithm.rawValue)/\(digest.encoded)"
    }

    /// Whether the cache holds a blob (it is verified when read).
    package func has(_ digest: Digest) -> Bool {
        guard let directory = blobDirectories[digest.algorithm] else { return false }
        guard let st = try? directory.statusOfChild(digest.encoded) else { return false }
        return usable(st)
    }

    /// The stored blob, opened for reading and marked used; `nil` when absent (or not a regular file).
    package func open(_ digest: Digest) -> OwnedFD? {
        guard let directory = blobDirectories[digest.algorithm],
            case .success(let fd) = directory.openBeneath([digest.encoded]),
            let st = try? fd.status()
        else { return nil }
        // Checked on the open file before it is touched or read: not used, and fetched again
        // (the new copy is renamed over the name, which leaves the other file as it was).
        guard usable(st) else {
            onWarning(
                "the cached blob \(digest) is not used: \(blobPath(digest)) has \(st.st_nlink) links and owner uid \(st.st_uid) (a cache blob has one link and the cache's owner, uid \(owner))"
            )
            return nil
        }
        touch(fd)
        return fd
    }

    /// A stored document, checked against its descriptor; `nil` when absent. One that does not
    /// verify is removed (with a warning) and reported absent, so it is fetched again.
    package func read(_ descriptor: Descriptor, limit: Int) -> [UInt8]? {
        guard let fd = open(descriptor.digest) else { return nil }
        return contents(of: fd, descriptor, limit: limit)
    }

    /// A stored document known only by its digest (its size is the file's), verified; `nil` when
    /// absent, larger than `limit`, or removed for not verifying.
    package func document(_ digest: Digest, limit: Int) -> [UInt8]? {
        guard let fd = open(digest), let st = try? fd.status(), Int(st.st_size) <= limit else { return nil }
        return contents(
            of: fd, Descriptor(mediaType: .ociManifest, digest: digest, size: Int64(st.st_size)), limit: limit)
    }

    private func contents(of fd: OwnedFD, _ descriptor: Descriptor, limit: Int) -> [UInt8]? {
        guard let bytes = try? fd.readAll(limit: limit),
            (try? descriptor.checkContent(bytes, from: path)) != nil
        else {
            // The descriptor may be what is wrong (another size): the file goes only if its own
            // bytes do not hash to its name.
            check(descriptor.digest)
            return nil
        }
        return bytes
    }

    /// Stores a verified document.
    package func store(_ bytes: [UInt8], for digest: Digest) {
        guard !has(digest) else { return }
        do throws(SystemError) {
            let file = try IngestFile(in: self)
            try writeAll(file.fd.rawValue, bytes, path: "\(path)/ingest/\(file.name)")
            try commit(file, as: digest)
        } catch {
            onWarning("blob \(digest) could not be stored in the cache \(path): \(error)")
        }
    }

    /// Hashes a stored blob and removes it when its bytes do not hash to its name (a manifest
    /// that gives a good blob another size does not evict it).
    package func check(_ digest: Digest) {
        guard let fd = open(digest) else { return }
        var digester = Digester(digest.algorithm)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        while let n = try? fd.read(into: chunk), n > 0 {
            digester.update(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
        }
        if digester.finalize() != digest { discard(digest, checked: fd) }
    }

    /// Removes the stored blob `checked` was opened from: not a good copy another process
    /// renamed over it meanwhile (the name must still lead to the same inode).
    private func discard(_ digest: Digest, checked: OwnedFD) {
        guard let directory = blobDirectories[digest.algorithm], let opened = try? checked.status() else { return }
        var st = stat()
        guard fstatat(directory.rawValue, digest.encoded, &st, AT_SYMLINK_NOFOLLOW) == 0,
            st.st_dev == opened.st_dev, st.st_ino == opened.st_ino
        else { return }
        if unlinkat(directory.rawValue, digest.encoded, 0) == 0 {
            onWarning("the cached blob \(digest) does not verify: removed from the cache \(path)")
        }
    }

    /// A blob's bytes as they stream: written to `ingest/`, and renamed into `blobs/` by
    /// ``CacheWriter/finish(verified:)`` only when the pipeline says they verified.
    package func writer(for digest: Digest) -> CacheWriter? {
        guard blobDirectories[digest.algorithm] != nil else { return nil }
        do throws(SystemError) {
            return CacheWriter(cache: self, file: try IngestFile(in: self), digest: digest)
        } catch {
            onWarning("blob \(digest) will not be cached in \(path): \(error)")
            return nil
        }
    }

    /// Renames a complete `ingest/` file into place (over a copy another process stored meanwhile,
    /// which has the same bytes), then keeps the bound.
    fileprivate func commit(_ file: IngestFile, as digest: Digest) throws(SystemError) {
        guard let directory = blobDirectories[digest.algorithm] else { return }
        touch(file.fd)
        if renameat(ingest.rawValue, file.name, directory.rawValue, digest.encoded) != 0 {
            throw SystemError(call: "renameat", errno: errno, path: blobPath(digest))
        }
        file.committed = true
        if maxSize != nil { enforceBound() }
    }

    /// Marks a blob used now (its mtime orders eviction). A cache shared read-only stays as it is.
    private func touch(_ fd: OwnedFD) {
        _ = futimens(fd.rawValue, nil)
    }

    fileprivate func warn(_ message: String) { onWarning(message) }

    // MARK: - Size bound

    /// Removes the least recently used blobs until they take at most `maxSize` bytes, then the
    /// `index.json` entries whose manifest went, and `ingest/` files a dead process left.
    package func enforceBound() {
        guard let maxSize else { return }
        withLock {
            var blobs: [(directory: OwnedFD, name: String, size: Int64, used: Int)] = []
            // Nanoseconds: blobs one run stores a few milliseconds apart must keep their order.
            var total: Int64 = 0
            for (algorithm, directory) in blobDirectories {
                for name in entries(of: "blobs/\(algorithm.rawValue)") {
                    var st = stat()
                    guard fstatat(directory.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
                    blobs.append(
                        (directory, name, Int64(st.st_size), st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec))
                    total += Int64(st.st_size)
                }
            }
            var removed = false
            for blob in blobs.sorted(by: { $0.used < $1.used }) where total > maxSize {
                if unlinkat(blob.directory.rawValue, blob.name, 0) == 0 {
                    total -= blob.size
                    removed = true
                }
            }
            if removed { pruneIndex() }
        }
    }

    /// Removes the `ingest/` files a process that died left (older than a day).
    private func sweepIngest() {
        let now = time(nil)
        for name in entries(of: "ingest") {
            var st = stat()
            if fstatat(ingest.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0,
                now - st.st_mtim.tv_sec > Self.staleIngestSeconds
            {
                _ = unlinkat(ingest.rawValue, name, 0)
            }
        }
    }

    private func entries(of relative: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "\(path)/\(relative)")) ?? []
    }

    /// Runs `body` holding the cache's lock (flock on `blobs/`, which every process opens the same
    /// way); without the lock (an error) it runs anyway: the lock only orders index rewrites.
    private func withLock<R>(_ body: () -> R) -> R {
        let blobs = try? root.openChild("blobs", flags: O_RDONLY | O_DIRECTORY)
        if let blobs { _ = lockExclusive(blobs.rawValue, wait: true) }
        return withExtendedLifetime(blobs) { body() }
    }

    // MARK: - Tags

    /// The manifest or index `name` (`HOST/REPO:TAG`) named when it was last pulled, if it is
    /// still stored.
    package func tagged(_ name: String) -> Descriptor? {
        guard let index = try? readIndex() else { return nil }
        guard let entry = index.manifests.last(where: { $0.annotations?[AnnotationKey.refName] == name }),
            has(entry.digest)
        else { return nil }
        return entry
    }

    /// Records that `name` (`HOST/REPO:TAG`) named `descriptor`, replacing what it named before.
    package func record(_ descriptor: Descriptor, as name: String) {
        withLock {
            let index: Index
            do throws(UnpackError) {
                index = try readIndex()
            } catch {
                // Not written over: it may be another tool's layout this reader refuses.
                onWarning("the tag \(name) is not recorded in the cache: \(error.message)")
                return
            }
            var entries = index.manifests.filter { $0.annotations?[AnnotationKey.refName] != name }
            var entry = descriptor
            entry.annotations = [AnnotationKey.refName: name]
            entry.platform = nil
            entries.append(entry)
            writeIndex(entries)
        }
    }

    /// Drops the entries whose manifest is no longer stored (the caller holds the lock).
    private func pruneIndex() {
        guard let index = try? readIndex() else { return }
        let kept = index.manifests.filter { has($0.digest) }
        if kept.count != index.manifests.count { writeIndex(kept) }
    }

    private func readIndex() throws(UnpackError) -> Index {
        let bytes = try readFile("index.json", limit: 4 << 20)
        return try ImageDocuments.index(from: bytes, expected: .ociIndex, where: path + "/index.json")
    }

    /// One of the cache's own small files (`oci-layout`, `index.json`), never through a symlink.
    private func readFile(_ name: String, limit: Int) throws(UnpackError) -> [UInt8] {
        let display = "\(path)/\(name)"
        let context = UnpackError.Context(path: display)
        let read: [UInt8]?
        switch root.openBeneath([name]) {
        case .success(let fd):
            read = try SystemError.mapping({ () throws(SystemError) in try fd.readAll(limit: limit) }) {
                $0.unpackError("the cache's \(display) cannot be read", context: context)
            }
        case .failure(.missing(let error)), .failure(.failed(let error)):
            throw error.unpackError("the cache's \(display) cannot be read", context: context)
        case .failure(.symlink), .failure(.notRegular):
            throw UnpackError(
                .invalidArgument, "the cache's \(display) is not a regular file of its own", context: context)
        }
        guard let bytes = read else {
            throw UnpackError(.limitExceeded, "the cache's \(display) is larger than \(limit) bytes", context: context)
        }
        return bytes
    }

    private func writeIndex(_ entries: [Descriptor]) {
        do throws(SystemError) {
            let file = try IngestFile(in: self)
            try writeAll(file.fd.rawValue, Self.indexText(entries), path: "\(path)/ingest/\(file.name)")
            if renameat(ingest.rawValue, file.name, root.rawValue, "index.json") != 0 {
                throw SystemError(call: "renameat", errno: errno, path: path + "/index.json")
            }
            file.committed = true
        } catch {
            onWarning("the cache's index \(path)/index.json could not be written: \(error)")
        }
    }

    static func indexText(_ entries: [Descriptor]) -> [UInt8] {
        let manifests = entries.map { entry -> JSONValue in
            var members: [String: JSONValue] = [
                "mediaType": .string(entry.mediaType.rawValue), "digest": .string(entry.digest.description),
                "size": .int(entry.size),
            ]
            if let annotations = entry.annotations {
                members["annotations"] = .object(annotations.mapValues { .string($0) })
            }
            return .object(members)
        }
        let index: JSONValue = .object([
            "schemaVersion": .int(2), "mediaType": .string(MediaType.ociIndex.rawValue), "manifests": .array(manifests),
        ])
        return index.formatted()
    }

    fileprivate var ingestDirectory: OwnedFD { ingest }
}

/// A new file in `ingest/`, removed when dropped unless it was renamed into place.
final class IngestFile {
    let fd: OwnedFD
    let name: String
    private let directory: OwnedFD
    var committed = false

    init(in cache: BlobCache) throws(SystemError) {
        directory = cache.ingestDirectory
        var attempt = 0
        while true {
            let candidate = "\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
            let raw = openat(directory.rawValue, candidate, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            if raw >= 0 {
                fd = OwnedFD(raw)
                name = candidate
                return
            }
            attempt += 1
            if errno != EEXIST || attempt > 8 {
                throw SystemError(call: "openat", errno: errno, path: "\(cache.path)/ingest/\(candidate)")
            }
        }
    }

    deinit {
        if !committed { _ = unlinkat(directory.rawValue, name, 0) }
    }
}

/// A layer's bytes on their way into the cache (see ``BlobCache/writer(for:)``). A write error
/// stops the copy (with a warning) and never the unpack.
package final class CacheWriter {
    private let cache: BlobCache
    private let file: IngestFile
    private let digest: Digest
    private var failed = false

    fileprivate init(cache: BlobCache, file: IngestFile, digest: Digest) {
        self.cache = cache
        self.file = file
        self.digest = digest
    }

    package func write(_ bytes: UnsafeRawBufferPointer) {
        guard !failed, bytes.count > 0 else { return }
        do throws(SystemError) {
            try writeAll(file.fd.rawValue, bytes, path: "\(cache.path)/ingest/\(file.name)")
        } catch {
            failed = true
            cache.warn("blob \(digest) will not be cached in \(cache.path): \(error)")
        }
    }

    /// Publishes the blob if it verified; otherwise its file goes.
    package func finish(verified: Bool) {
        guard verified, !failed else { return }
        do throws(SystemError) {
            try cache.commit(file, as: digest)
        } catch {
            cache.warn("blob \(digest) could not be stored in the cache \(cache.path): \(error)")
        }
    }
}
