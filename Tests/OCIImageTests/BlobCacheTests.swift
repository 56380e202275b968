import Foundation
import LayoutSource
import OCIImage
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
}
