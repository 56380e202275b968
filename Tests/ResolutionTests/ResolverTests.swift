import Foundation
import LayoutSource
import OCIImage
import Resolution
import Testing
import UnpackTestSupport

/// Builds layouts in code and checks which manifest is chosen and why the others were not.
@Suite struct ResolverTests {
    let tmp: TemporaryDirectory
    let b: LayoutBuilder

    init() throws {
        tmp = try TemporaryDirectory()
        b = try LayoutBuilder(path: tmp.path + "/layout")
    }

    static let amd64 = Platform(os: "linux", architecture: "amd64")
    static let arm64 = Platform(os: "linux", architecture: "arm64")

    func tar(_ name: String) -> [UInt8] {
        var t = TarBuilder()
        t.file(name, "content of \(name)")
        return t.bytes()
    }

    func image(
        _ platform: Platform = amd64, compressions: [LayerCompression] = [.gzip], name: String = "f",
        annotations: [String: String]? = nil, descriptorPlatform: Platform?? = nil,
        style: LayoutBuilder.LayerStyle = .oci
    ) throws -> Descriptor {
        let layers = try compressions.enumerated().map { i, c in
            try b.layer(tar("\(name)\(i)-\(platform.architecture)"), compression: c, style: style)
        }
        return try b.image(
            layers: layers, platform: platform, style: style, descriptorPlatform: descriptorPlatform,
            annotations: annotations)
    }

    func resolve(
        _ ref: String = "latest", platform: Platform = amd64,
        preference: [LayerCompression] = ResolutionRequest.defaultCompressionPreference, firstMatch: Bool = false
    ) throws(UnpackError) -> ResolvedImage {
        let layout = try OCILayout(path: b.path)
        let reference =
            ref.hasPrefix("@")
            ? ImageReference(layoutPath: b.path, selector: .digest(try Digest(parsing: String(ref.dropFirst()))))
            : ref.isEmpty
                ? ImageReference(layoutPath: b.path, selector: .only)
                : ImageReference(layoutPath: b.path, selector: .tag(ref))
        return try Resolver(source: layout).resolve(
            reference,
            request: ResolutionRequest(platform: platform, compressionPreference: preference, firstMatch: firstMatch))
    }

    func status(_ r: ResolvedImage, _ d: Descriptor) -> ResolvedImage.Candidate? {
        r.candidates.first { $0.digest == d.digest }
    }

    // MARK: - References

    @Test func tagSelectsEntry() throws {
        let one = try image(name: "one")
        let two = try image(name: "two")
        b.tag(one, "one")
        b.tag(two, "two")
        try b.write()
        let r = try resolve("two")
        #expect(r.manifestDescriptor.digest == two.digest)
        #expect(r.steps.first?.selectedBy == "tag \"two\" in index.json")
        #expect(r.layers.count == 1)
        #expect(r.layers[0].compression == .gzip)
    }

    @Test func unknownTagListsAvailableTags() throws {
        b.tag(try image(name: "a"), "v1")
        b.tag(try image(name: "b"), "v2")
        try b.write()
        let error = #expect(throws: UnpackError.self) { try resolve("v3") }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("tag \"v3\" not found") == true)
        #expect(error?.message.contains("available tags: v1, v2") == true)
    }

    @Test func onlyEntryWithoutReference() throws {
        let only = try image()
        b.tag(only, nil)
        try b.write()
        #expect(try resolve("").manifestDescriptor.digest == only.digest)
    }

    @Test func ambiguousWithoutReferenceListsTags() throws {
        b.tag(try image(name: "a"), "stable")
        b.tag(try image(name: "b"), "edge")
        try b.write()
        let error = #expect(throws: UnpackError.self) { try resolve("") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("available tags: edge, stable") == true)
    }

    @Test func ambiguousUntaggedListsDigests() throws {
        let a = try image(name: "a")
        let c = try image(name: "c")
        b.tag(a, nil)
        b.tag(c, nil)
        try b.write()
        let error = #expect(throws: UnpackError.self) { try resolve("") }
        #expect(error?.message.contains("select one by digest") == true)
        #expect(error?.message.contains("@\(a.digest)") == true)
    }

    @Test func digestSelectsTopLevelNestedAndUnlisted() throws {
        let amd = try image(name: "x")
        let arm = try image(Self.arm64, name: "x")
        let index = try b.index([amd, arm])
        b.tag(index, "latest")
        let unlisted = try image(name: "unlisted")
        try b.write()
        #expect(try resolve("@\(index.digest)").manifestDescriptor.digest == amd.digest)
        // A digest inside the index selects that manifest even for another platform request.
        let nested = try resolve("@\(arm.digest)", platform: Self.arm64)
        #expect(nested.manifestDescriptor.digest == arm.digest)
        #expect(nested.steps.first?.selectedBy.contains("nested") == true)
        let sniffed = try resolve("@\(unlisted.digest)")
        #expect(sniffed.manifestDescriptor.digest == unlisted.digest)
        #expect(sniffed.manifestDescriptor.mediaType == .ociManifest)
    }

    @Test func unknownDigestIsNotFound() throws {
        b.tag(try image(), "latest")
        try b.write()
        let missing = "sha256:" + String(repeating: "e", count: 64)
        let error = #expect(throws: UnpackError.self) { try resolve("@" + missing) }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains(missing) == true)
    }

    // MARK: - Platforms

    @Test func picksRequestedPlatformAndExplainsOthers() throws {
        let amd = try image(name: "p")
        let arm = try image(Self.arm64, name: "p")
        b.tag(try b.index([amd, arm]), "latest")
        try b.write()
        let r = try resolve(platform: Self.arm64)
        #expect(r.manifestDescriptor.digest == arm.digest)
        #expect(status(r, arm)?.status == .chosen)
        #expect(status(r, amd)?.status == .refused)
        #expect(status(r, amd)?.reason == "platform linux/amd64 does not match linux/arm64")
        #expect(r.steps.count == 1)
        #expect(r.steps[0].entries == 2)
    }

    @Test func missingPlatformListsAvailable() throws {
        b.tag(try b.index([try image(name: "q"), try image(Self.arm64, name: "q")]), "latest")
        try b.write()
        let error = #expect(throws: UnpackError.self) {
            try resolve(platform: Platform(os: "linux", architecture: "s390x"))
        }
        #expect(error?.code == .platformNotFound)
        #expect(error?.message.contains("no manifest for platform linux/s390x") == true)
        #expect(error?.message.contains("available platforms: linux/amd64, linux/arm64") == true)
    }

    @Test func armVariantFallsBackToOlderVariant() throws {
        let v5 = try image(Platform(os: "linux", architecture: "arm", variant: "v5"), name: "v")
        let v6 = try image(Platform(os: "linux", architecture: "arm", variant: "v6"), name: "v")
        b.tag(try b.index([v5, v6]), "latest")
        try b.write()
        let r = try resolve(platform: Platform(os: "linux", architecture: "arm", variant: "v7"))
        #expect(r.manifestDescriptor.digest == v6.digest)
        #expect(status(r, v5)?.status == .passedOver)
        #expect(status(r, v5)?.reason?.contains("weaker match") == true)
    }

    @Test func exactVariantBeatsFallbackEvenIfLater() throws {
        let v6 = try image(Platform(os: "linux", architecture: "arm", variant: "v6"), name: "w")
        let v7 = try image(Platform(os: "linux", architecture: "arm", variant: "v7"), name: "w")
        b.tag(try b.index([v6, v7]), "latest")
        try b.write()
        #expect(
            try resolve(platform: Platform(os: "linux", architecture: "arm", variant: "v7")).manifestDescriptor.digest
                == v7.digest)
    }

    @Test func platformFromConfigWhenDescriptorHasNone() throws {
        let amd = try image(name: "c", descriptorPlatform: .some(nil))
        let arm = try image(Self.arm64, name: "c", descriptorPlatform: .some(nil))
        b.tag(try b.index([amd, arm]), "latest")
        try b.write()
        let r = try resolve(platform: Self.arm64)
        #expect(r.manifestDescriptor.digest == arm.digest)
        #expect(status(r, arm)?.platformSource == .config)
        #expect(status(r, amd)?.platform == Self.amd64)
    }

    @Test func osFeaturesRequiredByImageAreNotOfferedByDefault() throws {
        let special = try image(
            Platform(os: "linux", architecture: "amd64", osFeatures: ["sgx"]), name: "s")
        let plain = try image(name: "s2")
        b.tag(try b.index([special, plain]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == plain.digest)
        #expect(status(r, special)?.status == .refused)
    }

    // MARK: - Compression variants

    @Test func prefersZstdVariantByDefaultAndGzipWhenAsked() throws {
        let gzip = try image(compressions: [.gzip, .gzip], name: "z")
        let zstd = try image(
            compressions: [.zstd, .zstd], name: "z", annotations: [AnnotationKey.zstdCompression: "true"])
        b.tag(try b.index([gzip, zstd, try image(Self.arm64, name: "z")]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == zstd.digest)
        #expect(status(r, gzip)?.status == .passedOver)
        #expect(status(r, gzip)?.reason == "compression gzip ranks after zstd in the preference zstd,gzip,none")
        #expect(r.layers.map(\.compression) == [.zstd, .zstd])
        let g = try resolve(preference: [.gzip, .zstd])
        #expect(g.manifestDescriptor.digest == gzip.digest)
        #expect(status(g, zstd)?.reason?.contains("zstd ranks after gzip") == true)
    }

    /// `--prefer-compression first`: the first usable entry in index order, as image-index.md
    /// describes, whatever a later entry's compression or platform match; an unusable first entry
    /// is still refused with its reason.
    @Test func firstMatchTakesTheFirstUsableEntry() throws {
        let missingLayer = try b.layer(tar("f0"), compression: .zstd)
        let broken = try b.image(layers: [missingLayer], annotations: [AnnotationKey.zstdCompression: "true"])
        try b.removeBlob(missingLayer.descriptor.digest)
        let gzip = try image(compressions: [.gzip, .gzip], name: "f1")
        let zstd = try image(
            compressions: [.zstd, .zstd], name: "f1", annotations: [AnnotationKey.zstdCompression: "true"])
        let fallback = try image(Platform(os: "linux", architecture: "arm", variant: "v6"), name: "f2")
        let exact = try image(Platform(os: "linux", architecture: "arm", variant: "v7"), name: "f2")
        b.tag(try b.index([broken, gzip, zstd]), "latest")
        b.tag(try b.index([fallback, exact]), "arm")
        try b.write()
        let r = try resolve(firstMatch: true)
        #expect(r.manifestDescriptor.digest == gzip.digest)
        #expect(status(r, broken)?.status == .refused)
        #expect(
            status(r, zstd)?.reason
                == "comes after \(gzip.digest) in index order (--prefer-compression first takes the first usable entry)"
        )
        #expect(try resolve().manifestDescriptor.digest == zstd.digest, "the default still prefers zstd")
        let arm = Platform(os: "linux", architecture: "arm", variant: "v7")
        #expect(try resolve("arm", platform: arm, firstMatch: true).manifestDescriptor.digest == fallback.digest)
        #expect(try resolve("arm", platform: arm).manifestDescriptor.digest == exact.digest)
        // The command line's spelling.
        let request = try ResolutionRequest(platform: arm, preferCompression: " first ")
        #expect(request.firstMatch && request.compressionPreference.isEmpty)
        #expect(throws: UnpackError.self) { try ResolutionRequest(platform: arm, preferCompression: "first,zstd") }
    }

    @Test func tiesGoToIndexOrder() throws {
        let first = try image(name: "t1")
        let second = try image(name: "t2")
        b.tag(try b.index([first, second]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == first.digest)
        #expect(status(r, second)?.reason?.contains("comes first in index order") == true)
    }

    @Test func uncompressedLayersDoNotHideTheVariantDifference() throws {
        let gzip = try image(compressions: [.gzip, .none], name: "un")
        let zstd = try image(
            compressions: [.zstd, .none], name: "un", annotations: [AnnotationKey.zstdCompression: "true"])
        b.tag(try b.index([gzip, zstd]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == zstd.digest)
        #expect(status(r, zstd)?.compression == "mixed(none+zstd)")
        #expect(try resolve(preference: [.gzip]).manifestDescriptor.digest == gzip.digest)
    }

    @Test func annotationBreaksTiesByPreference() throws {
        // Two variants whose layers are all uncompressed: only the annotation tells them apart.
        let plain = try image(compressions: [.none], name: "an")
        let annotated = try image(
            compressions: [.none], name: "an", annotations: [AnnotationKey.zstdCompression: "true"])
        b.tag(try b.index([plain, annotated]), "latest")
        try b.write()
        #expect(try resolve().manifestDescriptor.digest == annotated.digest)
        #expect(try resolve(preference: [.none, .gzip, .zstd]).manifestDescriptor.digest == plain.digest)
    }

    @Test func mixedRanksBelowPureVariant() throws {
        let mixed = try image(compressions: [.zstd, .gzip], name: "m")
        let pure = try image(compressions: [.zstd, .zstd], name: "m")
        b.tag(try b.index([mixed, pure]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == pure.digest)
        #expect(status(r, mixed)?.compression == "mixed(gzip+zstd)")
        #expect(r.layers.map(\.compression) == [.zstd, .zstd])
    }

    @Test func mixedLayersKeepTheirOwnCompression() throws {
        let mixed = try image(compressions: [.gzip, .zstd, .none], name: "k")
        b.tag(mixed, "latest")
        try b.write()
        let r = try resolve()
        #expect(r.layers.map(\.compression) == [.gzip, .zstd, .none])
        #expect(r.layers.map(\.descriptor.mediaType) == [.ociLayerGzip, .ociLayerZstd, .ociLayer])
    }

    // MARK: - Unprocessable variants

    @Test func skipsVariantWithUnprocessableLayer() throws {
        let enc = try b.blob(
            Array("ciphertext".utf8), mediaType: "application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
        let plainLayer = try b.layer(tar("e"), compression: .gzip)
        let encrypted = try b.image(
            layers: [LayoutBuilder.Layer(descriptor: enc, diffID: Digest.of([1])), plainLayer],
            annotations: [AnnotationKey.zstdCompression: "true"])
        let usable = try image(name: "u")
        b.tag(try b.index([encrypted, usable]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == usable.digest)
        #expect(status(r, encrypted)?.status == .refused)
        #expect(
            status(r, encrypted)?.reason
                == "layer 0 (\(enc.digest)) has media type application/vnd.oci.image.layer.v1.tar+gzip+encrypted: encrypted layers are not supported"
        )
    }

    @Test func noProcessableVariantNamesEachCandidate() throws {
        let squash = try b.blob(Array("hsqs".utf8), mediaType: "application/vnd.example.layer.squashfs")
        let unknown = try b.blob(Array("????".utf8), mediaType: "application/x-unknown")
        let one = try b.image(layers: [LayoutBuilder.Layer(descriptor: squash, diffID: Digest.of([2]))])
        let two = try b.image(layers: [LayoutBuilder.Layer(descriptor: unknown, diffID: Digest.of([3]))])
        b.tag(try b.index([one, two]), "latest")
        try b.write()
        let error = #expect(throws: UnpackError.self) { try resolve() }
        #expect(error?.code == .unsupportedMediaType)
        #expect(error?.message.contains("no usable manifest for platform linux/amd64") == true)
        #expect(
            error?.message.contains(
                "\(one.digest): layer 0 (\(squash.digest)) has media type application/vnd.example.layer.squashfs: squashfs layers are not supported"
            ) == true)
        #expect(
            error?.message.contains(
                "\(two.digest): layer 0 (\(unknown.digest)) has media type application/x-unknown: unknown layer media type"
            ) == true)
        #expect(error?.context.mediaType == "application/vnd.example.layer.squashfs")
    }

    @Test func missingLayerBlobRefusesVariant() throws {
        let gzipLayer = try b.layer(tar("g"), compression: .gzip)
        let zstdLayer = try b.layer(tar("g"), compression: .zstd)
        let zstd = try b.image(layers: [zstdLayer], annotations: [AnnotationKey.zstdCompression: "true"])
        let gzip = try b.image(layers: [gzipLayer])
        try b.removeBlob(zstdLayer.descriptor.digest)
        b.tag(try b.index([zstd, gzip]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == gzip.digest)
        #expect(status(r, zstd)?.reason == "layer 0 blob \(zstdLayer.descriptor.digest) is missing from the layout")
    }

    @Test func missingManifestOfOtherPlatformIsFine() throws {
        let amd = try image(name: "mm")
        let arm = try image(Self.arm64, name: "mm")
        try b.removeBlob(arm.digest)
        b.tag(try b.index([amd, arm]), "latest")
        try b.write()
        #expect(try resolve().manifestDescriptor.digest == amd.digest)
    }

    @Test func diffIDCountMismatchRefuses() throws {
        let layer = try b.layer(tar("d"), compression: .gzip)
        let bad = try b.image(layers: [layer], diffIDs: [])
        b.tag(bad, "latest")
        try b.write()
        let error = #expect(throws: UnpackError.self) { try resolve() }
        #expect(error?.code == .invalidImage)
        #expect(error?.message.contains("lists 0 diff_ids for 1 layer") == true)
    }

    @Test func corruptCandidateIsAnErrorNotASkip() throws {
        let zstd = try image(compressions: [.zstd], name: "cc", annotations: [AnnotationKey.zstdCompression: "true"])
        let gzip = try image(name: "cc")
        try b.overwriteBlob(zstd.digest, with: Array(repeating: UInt8(ascii: " "), count: Int(zstd.size)))
        b.tag(try b.index([zstd, gzip]), "latest")
        try b.write()
        let error = #expect(throws: UnpackError.self) { try resolve() }
        #expect(error?.code == .digestMismatch)
        #expect(error?.context.digest == zstd.digest)
    }

    @Test func nonManifestEntriesAreIgnoredWithReason() throws {
        let artifact = try b.blob(Array("{}".utf8), mediaType: "application/vnd.example.attestation")
        let img = try image(name: "n")
        b.tag(try b.index([artifact, img]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == img.digest)
        #expect(
            status(r, artifact)?.reason == "media type application/vnd.example.attestation is not an image manifest")
    }

    // MARK: - Index shapes

    @Test func nestedIndexesAreFollowed() throws {
        let amd = try image(name: "ni")
        let arm = try image(Self.arm64, name: "ni")
        let inner = try b.index([arm])
        let outer = try b.index([amd, inner])
        b.tag(outer, "latest")
        try b.write()
        let r = try resolve(platform: Self.arm64)
        #expect(r.manifestDescriptor.digest == arm.digest)
        #expect(status(r, arm)?.indexPath == [outer.digest, inner.digest])
        #expect(r.steps.map(\.digest) == [outer.digest, inner.digest])
    }

    @Test func theSameNestedIndexTwiceIsNotACycle() throws {
        let amd = try image(name: "twice")
        let inner = try b.index([amd])
        b.tag(try b.index([inner, inner]), "latest")
        try b.write()
        let r = try resolve()
        #expect(r.manifestDescriptor.digest == amd.digest)
        #expect(r.candidates.count == 2)
    }

    @Test func dockerManifestListAndSchema2() throws {
        let amd = try image(name: "dk", style: .docker)
        let arm = try image(Self.arm64, name: "dk", style: .docker)
        b.tag(try b.index([amd, arm], style: .docker), "latest")
        try b.write()
        let r = try resolve(platform: Self.arm64)
        #expect(r.manifestDescriptor.digest == arm.digest)
        #expect(r.manifestDescriptor.mediaType == .dockerManifest)
        #expect(r.layers[0].descriptor.mediaType == .dockerLayerGzip)
        #expect(r.layers[0].compression == .gzip)
    }

    /// A cycle of indexes cannot be built (an index would have to contain its own digest, or two
    /// would need colliding hashes): the bound that matters is the nesting depth.
    @Test func indexesNestedTooDeeplyAreRejected() throws {
        var current = try image(name: "deep")
        for _ in 0..<10 { current = try b.index([current]) }
        b.tag(current, "latest")
        try b.write()
        let error = #expect(throws: UnpackError.self) { try resolve() }
        #expect(error?.code == .limitExceeded)
        #expect(error?.message.contains("nest deeper than 8") == true)
    }

    @Test func reportEncodesAsDocumentedJSON() throws {
        let gzip = try image(compressions: [.gzip], name: "j")
        let zstd = try image(compressions: [.zstd], name: "j", annotations: [AnnotationKey.zstdCompression: "true"])
        b.tag(try b.index([gzip, zstd]), "latest")
        try b.write()
        let r = try resolve()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let object = try #require(
            try JSONSerialization.jsonObject(with: try encoder.encode(r)) as? [String: Any])
        #expect(
            Set(object.keys) == [
                "reference", "layout", "requestedPlatform", "compressionPreference", "selection", "path", "candidates",
                "manifest", "config", "platform", "layers", "unverifiable",
            ])
        #expect(object["selection"] as? String == "preference")
        let layers = try #require(object["layers"] as? [[String: Any]])
        #expect(Set(layers[0].keys) == ["index", "digest", "mediaType", "compression", "size", "diffID"])
        #expect(layers[0]["compression"] as? String == "zstd")
        let candidates = try #require(object["candidates"] as? [[String: Any]])
        #expect(candidates.map { $0["status"] as? String } == ["passed-over", "chosen"])
        #expect(object["compressionPreference"] as? [String] == ["zstd", "gzip", "none"])
    }
}

/// The source seam: resolution reads through `ImageSource` only, so any store of blobs can feed
/// it. A source that keeps its blobs in memory resolves like the layout it was copied from.
@Suite struct ImageSourceTests {
    final class MemorySource: ImageSource, @unchecked Sendable {
        // Immutable after init.
        let name = "memory"
        let index: Index
        let limits = DocumentLimits()
        let blobs: [Digest: [UInt8]]

        init(copying layout: OCILayout, path: String) throws {
            index = layout.index
            var blobs: [Digest: [UInt8]] = [:]
            for file in try FileManager.default.contentsOfDirectory(atPath: path + "/blobs/sha256") {
                let digest = try Digest(parsing: "sha256:" + file)
                blobs[digest] = Array(try Data(contentsOf: URL(fileURLWithPath: path + "/blobs/sha256/" + file)))
            }
            self.blobs = blobs
        }

        func hasBlob(_ digest: Digest) -> Bool { blobs[digest] != nil }

        func readBlob(_ descriptor: Descriptor, limit: Int) throws(UnpackError) -> [UInt8] {
            guard let bytes = blobs[descriptor.digest] else { throw UnpackError(.notFound, "no \(descriptor.digest)") }
            guard Digest.of(bytes) == descriptor.digest, Int64(bytes.count) == descriptor.size else {
                throw UnpackError(.digestMismatch, "corrupt \(descriptor.digest)")
            }
            return bytes
        }

        func openBlob(_ descriptor: Descriptor) throws(UnpackError) -> any ByteStream {
            guard let bytes = blobs[descriptor.digest] else { throw UnpackError(.notFound, "no \(descriptor.digest)") }
            return BytesStream(bytes)
        }

        func sniffDescriptor(for digest: Digest) throws(UnpackError) -> Descriptor {
            throw UnpackError(.notFound, "no sniffing in memory")
        }
    }

    final class BytesStream: ByteStream {
        var rest: ArraySlice<UInt8>
        init(_ bytes: [UInt8]) { rest = bytes[...] }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws(UnpackError) -> Int {
            let n = min(buffer.count, rest.count)
            buffer.copyBytes(from: rest.prefix(n))
            rest = rest.dropFirst(n)
            return n
        }
    }

    @Test func aSourceOtherThanALayoutResolvesTheSameImage() throws {
        let tmp = try TemporaryDirectory()
        let b = try LayoutBuilder(path: tmp.path + "/img")
        var t = TarBuilder()
        t.file("a", "a")
        let gzip = try b.image(layers: [b.layer(t.bytes(), compression: .gzip)])
        let zstd = try b.image(
            layers: [b.layer(t.bytes(), compression: .zstd)], annotations: [AnnotationKey.zstdCompression: "true"])
        b.tag(try b.index([gzip, zstd]), "v1")
        try b.write()
        let layout = try OCILayout(path: b.path)
        let memory = try MemorySource(copying: layout, path: b.path)
        let reference = ImageReference(layoutPath: b.path, selector: .tag("v1"))
        let request = ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64"))
        let fromLayout = try Resolver(source: layout).resolve(reference, request: request)
        let fromMemory = try Resolver(source: memory).resolve(reference, request: request)
        #expect(fromMemory.manifestDescriptor == fromLayout.manifestDescriptor)
        #expect(fromMemory.manifestDescriptor.digest == zstd.digest)
        #expect(fromMemory.layers.map(\.diffID) == fromLayout.layers.map(\.diffID))
        #expect(fromMemory.layoutPath == "memory")
    }
}
