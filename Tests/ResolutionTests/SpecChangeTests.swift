import Foundation
import LayoutSource
import OCIImage
import Resolution
import Testing
import UnpackTestSupport

/// image-spec after v1.1.1: a manifest may omit `config` (an artifact), and digests may use
/// algorithms oci-unpack cannot verify. Both make a candidate unusable, named with the reason;
/// neither is ever unpacked without verification nor silently skipped.
@Suite struct SpecChangeTests {
    let tmp: TemporaryDirectory
    let b: LayoutBuilder
    static let amd64 = Platform(os: "linux", architecture: "amd64")
    static let blake3 = "blake3:" + String(repeating: "ab", count: 32)

    init() throws {
        tmp = try TemporaryDirectory()
        b = try LayoutBuilder(path: tmp.path + "/layout")
    }

    func usableImage() throws -> Descriptor {
        var t = TarBuilder()
        t.file("f", "f")
        return try b.image(layers: [try b.layer(t.bytes(), compression: .gzip)], platform: Self.amd64)
    }

    /// An index (tagged `latest`) whose `manifests` are the given raw JSON objects.
    func index(_ entries: [String]) throws {
        let json =
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#
            + entries.joined(separator: ",") + "]}"
        b.indexEntries = []
        b.tag(try b.blob(Array(json.utf8), mediaType: .ociIndex), "latest")
        try b.write()
    }

    func entry(_ d: Descriptor) throws -> String {
        String(decoding: try JSONEncoder().encode(d), as: UTF8.self)
    }

    static let blake3Entry =
        #"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(blake3)","size":10,"platform":{"os":"linux","architecture":"amd64"}}"#

    func resolve() throws(UnpackError) -> ResolvedImage {
        try Resolver(source: try OCILayout(path: b.path)).resolve(
            ImageReference(layoutPath: b.path, selector: .tag("latest")),
            request: ResolutionRequest(platform: Self.amd64))
    }

    @Test func digestGrammarSeparatesUnknownAlgorithmsFromGarbage() {
        #expect(Digest.unverifiableAlgorithm(in: Self.blake3) == "blake3")
        #expect(
            Digest.unverifiableAlgorithm(in: "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564") == "sha256+b64u"
        )
        #expect(Digest.unverifiableAlgorithm(in: "sha256:" + String(repeating: "0", count: 64)) == nil, "supported")
        #expect(
            Digest.unverifiableAlgorithm(in: "sha256:zz") == nil, "a supported algorithm with a bad value is invalid")
        #expect(Digest.unverifiableAlgorithm(in: "BLAKE3:ab") == nil)
        #expect(Digest.unverifiableAlgorithm(in: "blake3:") == nil)
        #expect(Digest.unverifiableAlgorithm(in: "blake3:../../etc") == nil)
        #expect(Digest.unverifiableAlgorithm(in: "-x:ab") == nil)
    }

    @Test func anIndexEntryWithAnUnverifiableDigestIsReportedNotUsed() throws {
        let good = try usableImage()
        try index([Self.blake3Entry, try entry(good)])
        let resolved = try resolve()
        #expect(resolved.manifestDescriptor.digest == good.digest)
        #expect(resolved.unverifiable.count == 1)
        #expect(resolved.unverifiable.first?.entry.position == 0)
        #expect(resolved.unverifiable.first?.entry.reason.contains("blake3, which oci-unpack cannot verify") == true)
        let json = String(decoding: try JSONEncoder().encode(resolved), as: UTF8.self)
        #expect(json.contains(#""unverifiable":[{"#))
    }

    @Test func onlyUnverifiableEntriesAreRefusedWithTheReason() throws {
        try index([Self.blake3Entry])
        let error = try #require(throws: UnpackError.self) { try resolve() }
        #expect(error.code == .unsupportedMediaType)
        #expect(error.message.contains(Self.blake3))
        #expect(error.message.contains("cannot verify"))
    }

    @Test func aManifestWithAnUnverifiableLayerDigestIsRefusedAsACandidate() throws {
        let good = try usableImage()
        let config = try b.json(
            ImageConfig(platform: Self.amd64, diffIDs: [Digest.of([1])]), mediaType: .ociConfig)
        let manifest =
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":\#(try entry(config)),"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"\#(Self.blake3)","size":3}]}"#
        let bad = try b.blob(Array(manifest.utf8), mediaType: .ociManifest, platform: Self.amd64)
        try index([try entry(bad), try entry(good)])
        let resolved = try resolve()
        #expect(resolved.manifestDescriptor.digest == good.digest)
        let refused = try #require(resolved.candidates.first { $0.digest == bad.digest })
        #expect(refused.status == .refused)
        #expect(refused.reason?.contains("algorithm blake3, which oci-unpack cannot verify") == true)
    }

    @Test func aManifestWithoutConfigIsAnArtifactAndRefused() throws {
        let good = try usableImage()
        let manifest =
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","layers":[]}"#
        let artifact = try b.blob(Array(manifest.utf8), mediaType: .ociManifest, platform: Self.amd64)
        try index([try entry(artifact), try entry(good)])
        let resolved = try resolve()
        #expect(resolved.manifestDescriptor.digest == good.digest)
        let refused = try #require(resolved.candidates.first { $0.digest == artifact.digest })
        #expect(refused.reason?.contains("has no config: an artifact of type application/vnd.example.sbom") == true)

        try index([try entry(artifact)])
        let error = try #require(throws: UnpackError.self) { try resolve() }
        #expect(error.code == .unsupportedMediaType)
        #expect(error.message.contains("no config"))
    }

    @Test func negativeSizesStayRefused() throws {
        let negative =
            #"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:\#(String(repeating: "0", count: 64))","size":-1}"#
        try index([negative])
        let error = try #require(throws: UnpackError.self) { try resolve() }
        #expect(error.code == .invalidImage)
        #expect(error.message.contains("negative size -1"))
    }
}
