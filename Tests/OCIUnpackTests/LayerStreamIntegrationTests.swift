import Foundation
import Glibc
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import Resolution
import RuntimeBundle
import Testing
import UnpackSystem
import UnpackTestSupport

import enum OCIImage.LayerCompression
import struct OCIImage.MediaType

/// Decompression, verification and atomicity through the whole `unpack` pipeline.
@Suite struct LayerPipelineTests {
    static func tar(_ name: String, _ content: String = "content") -> TarBuilder {
        var t = TarBuilder()
        t.file(name, content)
        return t
    }

    @Test func mixedCompressionInOneImage() throws {
        let f = try UnpackFixture()
        try f.image([(Self.tar("g", "gzip"), .gzip), (Self.tar("z", "zstd"), .zstd), (Self.tar("n", "none"), .none)])
        let result = try f.unpack()
        #expect(result.image.layers.map(\.compression) == [.gzip, .zstd, .none])
        #expect(try f.read("g") == "gzip")
        #expect(try f.read("z") == "zstd")
        #expect(try f.read("n") == "none")
    }

    @Test func dockerMediaTypes() throws {
        let f = try UnpackFixture()
        let layers = [
            try f.builder.layer(Self.tar("a").bytes(), compression: .gzip, style: .docker),
            try f.builder.layer(Self.tar("b").bytes(), compression: .zstd, style: .docker),
        ]
        f.builder.tag(try f.builder.image(layers: layers, style: .docker), "latest")
        try f.builder.write()
        try f.unpack()
        #expect(try f.snapshot().paths == [".", "a", "b"])
    }

    @Test func multiMemberGzipAndMultiFrameZstdWithSkippableFrame() throws {
        let f = try UnpackFixture()
        var big = TarBuilder()
        for i in 0..<50 { big.file("file\(i)", String(repeating: "\(i)", count: 5000)) }
        let tarA = big.bytes()
        var other = TarBuilder()
        other.file("z", String(repeating: "z", count: 100_000))
        let tarB = other.bytes()
        try f.image([
            try f.builder.layer(tar: tarA, blob: GzipCompressor.compress(tarA, members: 4), mediaType: .ociLayerGzip),
            try f.builder.layer(
                tar: tarB, blob: ZstdCompressor.compress(tarB, frames: 3, skippablePayload: Array("toc".utf8)),
                mediaType: .ociLayerZstd),
        ])
        try f.unpack()
        #expect(try f.read("file49") == String(repeating: "49", count: 5000))
        #expect(try f.read("z").count == 100_000)
    }

    /// The same tar compressed differently: a valid gzip stream of the same size and the same
    /// diff_id (only the header's mtime differs), so only the blob digest check can catch it.
    @Test(arguments: [true, false])
    func blobDigestMismatchNamesLayer(prefetch: Bool) throws {
        let f = try UnpackFixture()
        let good = try f.builder.layer(Self.tar("a").bytes(), compression: .gzip)
        let tar = Self.tar("c").bytes()
        let layer = try f.builder.layer(tar, compression: .gzip)
        var recompressed = GzipCompressor.compress(tar)
        #expect(recompressed[0] == 0x1f && recompressed[1] == 0x8b)
        recompressed[4] ^= 0x5a  // MTIME, which no decoder checks
        try f.builder.overwriteBlob(layer.descriptor.digest, with: recompressed)
        try f.image([good, layer])
        let error = #expect(throws: UnpackError.self) { try f.unpack(prefetch: prefetch) }
        #expect(error?.code == .digestMismatch)
        #expect(error?.message == "blob \(layer.descriptor.digest) is corrupt: its content does not hash to its digest")
        #expect(error?.context.layerIndex == 1)
        #expect(error?.context.digest == layer.descriptor.digest)
        #expect(try f.siblings().isEmpty)
    }

    @Test func digestMismatchOfAValidStreamIsDetectedAtTheEnd() throws {
        // A blob that decompresses and applies cleanly but is not the one the manifest names.
        let f = try UnpackFixture()
        let tar = Self.tar("a", "original").bytes()
        let layer = try f.builder.layer(tar, compression: .none)
        let replacement = Self.tar("a", "replaced").bytes()
        #expect(replacement.count == tar.count)
        try f.builder.overwriteBlob(layer.descriptor.digest, with: replacement)
        try f.image([layer])
        try f.expectFailure(.digestMismatch, "blob \(layer.descriptor.digest) is corrupt")
    }

    /// The size check made when the blob is opened, in both directions (the streaming check
    /// behind it has its own tests in `CodecTests`, with its own messages).
    @Test(arguments: [-1, 1])
    func sizeMismatch(delta: Int64) throws {
        let f = try UnpackFixture()
        var layer = try f.builder.layer(Self.tar("a").bytes(), compression: .gzip)
        layer.descriptor.size += delta
        try f.image([layer])
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .sizeMismatch)
        let relation = delta < 0 ? "longer" : "shorter"
        #expect(
            error?.message
                == "blob \(layer.descriptor.digest) is \(relation) than its descriptor's size \(layer.descriptor.size)")
        #expect(error?.context.layerIndex == 0)
    }

    /// Hashed on the hasher thread (prefetch) or in the stream itself.
    @Test(arguments: [true, false])
    func diffIDMismatch(prefetch: Bool) throws {
        let f = try UnpackFixture()
        var layer = try f.builder.layer(Self.tar("a").bytes(), compression: .zstd)
        layer.diffID = Digest.of(Array("something else".utf8))
        try f.image([layer])
        let error = #expect(throws: UnpackError.self) { try f.unpack(prefetch: prefetch) }
        #expect(error?.code == .digestMismatch)
        #expect(error?.message.contains("the config's diff_id is \(layer.diffID)") == true)
        #expect(error?.context.layerIndex == 0)
        #expect(try f.siblings().isEmpty)
    }

    @Test func uncompressedLayerWhoseDiffIDIsNotItsDigest() throws {
        let f = try UnpackFixture()
        var layer = try f.builder.layer(Self.tar("a").bytes(), compression: .none)
        layer.diffID = Digest.of(Array("other".utf8))
        try f.image([layer])
        try f.expectFailure(.digestMismatch, "differs from its blob digest \(layer.descriptor.digest)")
    }

    @Test(arguments: [LayerCompression.gzip, .zstd, .none])
    func truncatedStreams(compression: LayerCompression) throws {
        let f = try UnpackFixture()
        var big = TarBuilder()
        big.file("big", String(repeating: "abcdefgh", count: 50_000))
        let tar = big.bytes()
        let full: [UInt8] =
            switch compression {
            case .gzip: GzipCompressor.compress(tar)
            case .zstd: ZstdCompressor.compress(tar)
            case .none: tar
            }
        let cut = Array(full.prefix(full.count / 2))
        try f.image([
            try f.builder.layer(tar: tar, blob: cut, mediaType: LayoutBuilder.layerMediaType(compression, style: .oci))
        ])
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        if compression == .none {
            // An uncompressed layer's diff_id is its digest: a cut blob is refused before reading.
            #expect(error?.code == .digestMismatch, "\(String(describing: error))")
            #expect(error?.message.contains("differs from its blob digest") == true)
        } else {
            #expect(error?.code == .corruptLayer, "\(String(describing: error))")
            #expect(error?.message.lowercased().contains("truncated") == true, "\(String(describing: error))")
        }
        #expect(error?.context.layerIndex == 0)
        #expect(try f.siblings().isEmpty)
    }

    @Test(arguments: [
        (
            LayerCompression.gzip, MediaType.ociLayerZstd,
            "media type application/vnd.oci.image.layer.v1.tar+zstd says zstd, but the blob starts with gzip magic 1f 8b"
        ),
        (.zstd, .ociLayerGzip, "says gzip, but the blob starts with zstd magic"),
        (.none, .ociLayerGzip, "says gzip, but the blob starts with no compression magic"),
        (.gzip, .ociLayer, "says uncompressed, but the blob starts with gzip magic"),
    ])
    func mediaTypeAndMagicMustAgree(actual: LayerCompression, declared: MediaType, message: String) throws {
        let f = try UnpackFixture()
        let tar = Self.tar("a").bytes()
        let bytes: [UInt8] =
            switch actual {
            case .gzip: GzipCompressor.compress(tar)
            case .zstd: ZstdCompressor.compress(tar)
            case .none: tar
            }
        try f.image([try f.builder.layer(tar: tar, blob: bytes, mediaType: declared)])
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .corruptLayer)
        #expect(error?.message.contains(message) == true, "\(String(describing: error?.message))")
        #expect(try f.siblings().isEmpty)
    }

    @Test func failingLastLayerLeavesNothing() throws {
        let f = try UnpackFixture()
        var bad = try f.builder.layer(Self.tar("last").bytes(), compression: .gzip)
        bad.diffID = Digest.of([0])
        try f.image([
            try f.builder.layer(Self.tar("first").bytes(), compression: .gzip),
            try f.builder.layer(Self.tar("second").bytes(), compression: .zstd), bad,
        ])
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .digestMismatch)
        #expect(error?.context.layerIndex == 2)
        #expect(try f.siblings().isEmpty)
    }

    @Test func existingBundleIsRefusedUnlessForcedAndKeptOnFailure() throws {
        let f = try UnpackFixture()
        try f.image(Self.tar("new", "new"))
        try FileManager.default.createDirectory(atPath: f.rootfs, withIntermediateDirectories: true)
        try Data("old".utf8).write(to: URL(fileURLWithPath: f.rootfs + "/old"))
        let refused = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(refused?.code == .bundleExists)
        #expect(refused?.message.contains("use --force") == true)
        // A forced run that fails leaves the old bundle as it was.
        var bad = try f.builder.layer(Self.tar("x").bytes(), compression: .gzip)
        bad.diffID = Digest.of([1])
        try f.image([bad])
        let failed = #expect(throws: UnpackError.self) { try f.unpack(force: true) }
        #expect(failed?.code == .digestMismatch && failed?.context.layerIndex == 0)
        #expect(try f.read("old") == "old")
        #expect(try f.siblings() == ["bundle"])
        // A forced run that succeeds replaces it whole.
        try f.image(Self.tar("new", "new"))
        try f.unpack(force: true)
        #expect(try f.snapshot().paths == [".", "new"])
        #expect(try f.siblings() == ["bundle"])
    }

    @Test func emptyExistingBundleIsUsed() throws {
        let f = try UnpackFixture()
        try f.image(Self.tar("a"))
        try FileManager.default.createDirectory(atPath: f.bundle, withIntermediateDirectories: true)
        try f.unpack()
        #expect(try f.snapshot().paths == [".", "a"])
    }
}

/// Broken images through `unpack`: each fails with its code, names the culprit, leaves nothing.
@Suite struct BrokenImageTests {
    static func fixture() throws -> (UnpackFixture, LayoutBuilder.Layer, Descriptor) {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("a", "a")
        let layer = try f.builder.layer(t.bytes(), compression: .gzip)
        let manifest = try f.builder.image(layers: [layer])
        f.builder.tag(manifest, "latest")
        try f.builder.write()
        return (f, layer, manifest)
    }

    @Test(.timeLimit(.minutes(1)))
    func layoutBlobThatIsAFIFOFailsWithoutHanging() throws {
        let (f, _, manifest) = try Self.fixture()
        let config = try OCILayout(path: f.builder.path).manifest(manifest).config
        try f.builder.removeBlob(config.digest)
        #expect(mkfifo(f.builder.path + "/blobs/sha256/" + config.digest.encoded, 0o644) == 0)
        try f.expectFailure(.invalidImage, "is not a regular file")
    }

    @Test func missingLayerBlob() throws {
        let (f, layer, _) = try Self.fixture()
        try f.builder.removeBlob(layer.descriptor.digest)
        try f.expectFailure(.notFound, "layer 0 blob \(layer.descriptor.digest) is missing")
    }

    @Test func invalidConfigJSON() throws {
        let (f, _, manifest) = try Self.fixture()
        let layout = try OCILayout(path: f.builder.path)
        let config = try layout.manifest(manifest).config
        let broken = Array("{\"os\": \"linux\", \"architecture\": 5}".utf8)
        // Keep the size so that only the content is wrong: the digest check comes first.
        try f.builder.overwriteBlob(
            config.digest,
            with: Array((broken + [UInt8](repeating: 0x20, count: Int(config.size))).prefix(Int(config.size))))
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .digestMismatch)
        #expect(error?.context.digest == config.digest)
    }

    @Test func validDigestButInvalidDocument() throws {
        let f = try UnpackFixture()
        let config = try f.builder.blob(Array("{\"os\": \"linux\"}".utf8), mediaType: .ociConfig)
        let manifest = try f.builder.json(Manifest(config: config, layers: []), mediaType: .ociManifest)
        f.builder.tag(manifest, "latest")
        try f.builder.write()
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .invalidImage)
        #expect(
            error?.message.contains(
                "config \(config.digest) is not a valid image configuration: missing field \"architecture\"") == true)
        #expect(try f.siblings().isEmpty)
    }
}
