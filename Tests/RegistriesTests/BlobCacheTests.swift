import Foundation
import OCIImage
import Registries
import Testing
import UnpackTestSupport

/// The `--cache` store's own rules, without a registry: what it removes and what it keeps.
struct BlobCacheTests {
    @Test func onlyABlobWhoseBytesDoNotHashToItsNameIsRemoved() throws {
        let tmp = try TemporaryDirectory()
        let cache = try BlobCache(path: tmp.path + "/cache")
        let bytes = Array(#"{"schemaVersion":2}"#.utf8)
        let digest = Digest.of(bytes)
        cache.store(bytes, for: digest)
        let right = Descriptor(mediaType: .ociManifest, digest: digest, size: Int64(bytes.count))
        #expect(cache.read(right, limit: 1 << 20) == bytes)
        #expect(cache.document(digest, limit: 1 << 20) == bytes)

        // A descriptor that gives the blob another size is refused, and the good file stays.
        var wrongSize = right
        wrongSize.size += 1
        #expect(cache.read(wrongSize, limit: 1 << 20) == nil)
        #expect(cache.has(digest))

        // A file altered on disk goes.
        try Data(Array(#"{"schemaVersion":3}"#.utf8)).write(to: URL(fileURLWithPath: cache.blobPath(digest)))
        #expect(cache.read(right, limit: 1 << 20) == nil)
        #expect(!cache.has(digest))
    }

    /// Issue: a cache blob hard-linked to a host file had that file's mtime changed (the LRU
    /// mark) before anything was checked, and its bytes served. A blob must be a regular file
    /// with one link, owned by the cache's owner, before it is touched or read.
    @Test func aHardLinkedBlobIsNeitherTouchedNorUsed() throws {
        let tmp = try TemporaryDirectory()
        let cache = try BlobCache(path: tmp.path + "/cache")
        let bytes = Array(#"{"schemaVersion":2,"linked":true}"#.utf8)
        let digest = Digest.of(bytes)
        // A host file with the blob's very bytes (so only the link count gives it away), old.
        let host = tmp.path + "/host-file"
        try Data(bytes).write(to: URL(fileURLWithPath: host))
        var times = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
        try #require(utimensat(AT_FDCWD, host, &times, 0) == 0)
        let blob = cache.blobPath(digest)
        try #require(link(host, blob) == 0)

        #expect(cache.open(digest) == nil)
        #expect(cache.document(digest, limit: 1 << 20) == nil)
        #expect(!cache.has(digest))
        var st = stat()
        try #require(stat(host, &st) == 0)
        #expect(st.st_mtim.tv_sec == 1_000_000, "the host file's time was changed")
        // Storing the blob anew replaces the name, and leaves the host file as it was.
        cache.store(bytes, for: digest)
        #expect(cache.document(digest, limit: 1 << 20) == bytes)
        try #require(stat(host, &st) == 0)
        #expect(st.st_nlink == 1)
        #expect(st.st_mtim.tv_sec == 1_000_000)
    }

    /// `blobs/` and `ingest/` are checked like the cache's top: another user able to write them
    /// could put files under a blob's name.
    @Test(arguments: ["blobs", "blobs/sha256", "ingest"])
    func aDirectoryOthersCanWriteIsRefused(directory: String) throws {
        let tmp = try TemporaryDirectory()
        _ = try BlobCache(path: tmp.path + "/cache")
        try #require(chmod(tmp.path + "/cache/" + directory, 0o777) == 0)
        let refused = #expect(throws: UnpackError.self) { try BlobCache(path: tmp.path + "/cache") }
        #expect(refused?.code == .invalidArgument)
        #expect(refused?.message.contains("/cache/\(directory) is owned by uid") == true, "\(refused?.message ?? "")")
    }
}
