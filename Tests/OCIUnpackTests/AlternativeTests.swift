import Foundation
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Resolution
import Testing
import UnpackTestSupport

import struct OCIImage.MediaType

/// Alternative descriptors (`--alternatives`): an index entry naming an equivalent zstd manifest,
/// a gzip layer naming its zstd blob. Each form resolves to the same tree as its original, each
/// unusable alternative is refused with its exit code, a differing one is refused with nothing left,
/// and a missing one falls back with a warning.
@Suite struct AlternativeTests {
    static let amd64 = Platform(os: "linux", architecture: "amd64")
    static let key = Alternatives.defaultAnnotation

    /// A layout with both forms over the same two layers.
    final class Fixture {
        let tmp: TemporaryDirectory
        let b: LayoutBuilder
        let tars: [[UInt8]]
        let gzip: Descriptor
        let zstd: Descriptor
        /// The layer form's manifest, and its gzip and zstd layers.
        let layered: Descriptor
        let gzipLayers: [LayoutBuilder.Layer]
        let zstdLayers: [LayoutBuilder.Layer]
        var path: String { b.path }

        init() throws {
            let tmp = try TemporaryDirectory()
            let b = try LayoutBuilder(path: tmp.path + "/img")
            var lower = TarBuilder()
            lower.directory("etc")
            lower.file("etc/hostname", "alternative")
            lower.file("bin/tool", String(repeating: "binary ", count: 400), mode: 0o755)
            var upper = TarBuilder()
            upper.file("etc/motd", "hello")
            upper.file("bin/.wh.tool", "")
            let tars = [lower.bytes(), upper.bytes()]
            let gzipLayers = try tars.map { try b.layer($0, compression: .gzip) }
            let zstdLayers = try tars.map { try b.layer($0, compression: .zstd) }
            let gzip = try b.image(layers: gzipLayers)
            let zstd = try b.image(layers: zstdLayers)
            var named = gzipLayers
            for i in named.indices {
                named[i].descriptor = try LayoutBuilder.naming(zstdLayers[i].descriptor, on: gzipLayers[i].descriptor)
            }
            let layered = try b.image(layers: named)
            var unlisted = zstd
            unlisted.platform = Platform(os: "unknown", architecture: "unknown")
            b.tag(try b.index([try LayoutBuilder.naming(zstd, on: gzip), unlisted]), "manifest-form")
            b.tag(layered, "layer-form")
            b.tag(gzip, "gzip")
            try b.write()
            (self.tmp, self.b, self.tars, self.gzip, self.zstd) = (tmp, b, tars, gzip, zstd)
            (self.layered, self.gzipLayers, self.zstdLayers) = (layered, gzipLayers, zstdLayers)
        }

        func request(_ preference: String = "zstd,gzip,none", alternatives: Bool = true) throws -> ResolutionRequest {
            try ResolutionRequest(
                platform: AlternativeTests.amd64, preferCompression: preference,
                alternativeAnnotation: alternatives ? AlternativeTests.key : nil)
        }

        func resolve(_ tag: String, _ request: ResolutionRequest) throws -> ResolvedImage {
            try Unpacker().resolve("oci:\(path):\(tag)", request: request)
        }

        func tree(_ tag: String, _ request: ResolutionRequest) throws -> Digest {
            try Unpacker().treeListing("oci:\(path):\(tag)", request: request).digest()
        }

        /// Tags `impostor`: the gzip image whose layer `index` names, as its zstd alternative, a
        /// layer of other content. Returns that layer.
        @discardableResult
        func tagImpostor(at index: Int) throws -> LayoutBuilder.Layer {
            var other = TarBuilder()
            other.file("etc/hostname", "someone else")
            let impostor = try b.layer(other.bytes(), compression: .zstd)
            var named = gzipLayers
            named[index].descriptor = try LayoutBuilder.naming(impostor.descriptor, on: gzipLayers[index].descriptor)
            b.tag(try b.image(layers: named), "impostor")
            try b.write()
            return impostor
        }

        func cli(_ args: [String]) throws -> CommandResult {
            try Command.run(Command.ociUnpack, args)
        }

        /// A layout of its own whose one image's first layer (or index entry) carries `value` in the
        /// annotation, for the refusals.
        static func annotated(_ value: String, manifestForm: Bool) throws -> (TemporaryDirectory, String) {
            let tmp = try TemporaryDirectory()
            let b = try LayoutBuilder(path: tmp.path + "/img")
            var t = TarBuilder()
            t.file("etc/hostname", "x")
            var layer = try b.layer(t.bytes(), compression: .gzip)
            if manifestForm {
                let image = try b.image(layers: [layer])
                var entry = image
                entry.annotations = [AlternativeTests.key: value]
                b.tag(try b.index([entry]), "v1")
            } else {
                layer.descriptor.annotations = [AlternativeTests.key: value]
                b.tag(try b.image(layers: [layer]), "v1")
            }
            try b.write()
            return (tmp, b.path)
        }
    }

    @Test func theManifestFormIsChosenAndYieldsTheOriginalsTree() throws {
        let f = try Fixture()
        let image = try f.resolve("manifest-form", try f.request())
        #expect(image.manifestDescriptor.digest == f.zstd.digest)
        #expect(image.layers.map(\.compression) == [.zstd, .zstd])
        let chosen = try #require(image.candidates.first { $0.status == .chosen })
        #expect(chosen.alternativeOf == f.gzip.digest)
        #expect(image.alternatives.map(\.status) == [.chosen])
        #expect(image.alternatives.first?.form == .manifest)
        #expect(image.alternatives.first?.original == f.gzip.digest)
        // Off by default: the annotation is not read, the gzip entry is the only candidate for amd64.
        let plain = try f.resolve("manifest-form", try f.request(alternatives: false))
        #expect(plain.manifestDescriptor.digest == f.gzip.digest)
        #expect(plain.alternatives.isEmpty)
        #expect(try f.tree("manifest-form", try f.request()) == f.tree("gzip", try f.request(alternatives: false)))
    }

    @Test func theLayerFormReadsEachLayerFromItsAlternative() throws {
        let f = try Fixture()
        let image = try f.resolve("layer-form", try f.request())
        #expect(image.manifestDescriptor.digest == f.layered.digest)
        #expect(image.layers.map(\.descriptor.digest) == f.zstdLayers.map(\.descriptor.digest))
        #expect(image.layers.map(\.alternativeOf?.digest) == f.gzipLayers.map(\.descriptor.digest))
        #expect(image.layers.map(\.diffID) == f.tars.map { Digest.of($0) }, "diff_ids are the config's")
        #expect(image.alternatives.map(\.status) == [.chosen, .chosen])
        #expect(image.alternatives.map(\.layer) == [0, 1])
        let plain = try f.resolve("layer-form", try f.request(alternatives: false))
        #expect(plain.layers.map(\.compression) == [.gzip, .gzip])
        #expect(try f.tree("layer-form", try f.request()) == f.tree("gzip", try f.request(alternatives: false)))
    }

    /// Unpacked on disk with --alternatives, both forms give the original's tree.
    @Test(arguments: ["manifest-form", "layer-form"])
    func bothFormsUnpackToTheOriginalsTree(tag: String) throws {
        let f = try Fixture()
        let bundle = f.tmp.path + "/bundle-\(tag)"
        let unpack = try f.cli([
            "unpack", "--quiet", "--alternatives", "--platform", "linux/amd64", "oci:\(f.path):\(tag)", bundle,
        ])
        try #require(unpack.status == 0, "\(unpack.stderr)")
        let original = try f.cli(["tree-digest", "--ignore-mtime", "--platform", "linux/amd64", "oci:\(f.path):gzip"])
        let unpacked = try f.cli(["tree-digest", "--ignore-mtime", "--rootfs", bundle + "/rootfs"])
        #expect(original.status == 0 && unpacked.status == 0, "\(original.stderr) \(unpacked.stderr)")
        // "DIGEST  WHAT": the digests agree.
        #expect(unpacked.stdout.split(separator: " ").first == original.stdout.split(separator: " ").first)
        #expect(unpacked.stdout.hasPrefix("sha256:"), "\(unpacked.stdout)")
    }

    @Test func gzipPreferenceAndFirstKeepTheOriginals() throws {
        let f = try Fixture()
        for preference in ["gzip,zstd", "first"] {
            let manifest = try f.resolve("manifest-form", try f.request(preference))
            #expect(manifest.manifestDescriptor.digest == f.gzip.digest, "\(preference)")
            #expect(manifest.alternatives.map(\.status) == [.passedOver], "\(preference)")
            let layers = try f.resolve("layer-form", try f.request(preference))
            #expect(layers.layers.map(\.compression) == [.gzip, .gzip], "\(preference)")
            #expect(layers.layers.allSatisfy { $0.alternativeOf == nil })
            #expect(layers.alternatives.map(\.status) == [.passedOver, .passedOver], "\(preference)")
            #expect(layers.alternatives.allSatisfy { $0.reason != nil })
        }
    }

    /// inspect --json says which descriptor named each alternative and what became of it.
    @Test func inspectJSONExplainsTheAlternatives() throws {
        let f = try Fixture()
        let r = try f.cli([
            "inspect", "--json", "--alternatives", "--platform", "linux/amd64", "oci:\(f.path):layer-form",
        ])
        try #require(r.status == 0, "\(r.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let alternatives = try #require(object["alternatives"] as? [[String: Any]])
        #expect(alternatives.count == 2)
        #expect(alternatives.first?["status"] as? String == "chosen")
        #expect(alternatives.first?["form"] as? String == "layer")
        #expect(alternatives.first?["original"] as? String == f.gzipLayers[0].descriptor.digest.description)
        #expect(alternatives.first?["annotation"] as? String == AlternativeTests.key)
        let layers = try #require(object["layers"] as? [[String: Any]])
        #expect(layers.first?["alternativeOf"] as? String == f.gzipLayers[0].descriptor.digest.description)
        #expect((object["warnings"] as? [Any])?.isEmpty == true)
        // Text: the same facts.
        let text = try f.cli(["inspect", "--alternatives", "--platform", "linux/amd64", "oci:\(f.path):layer-form"])
        #expect(text.stdout.contains("alternative of \(f.gzipLayers[1].descriptor.digest)"))
        #expect(text.stdout.contains("named by \(f.gzipLayers[0].descriptor.digest)"))
        // Without --alternatives the JSON object keeps its keys.
        let plain = try f.cli(["inspect", "--json", "--platform", "linux/amd64", "oci:\(f.path):layer-form"])
        let plainObject = try #require(
            try JSONSerialization.jsonObject(with: Data(plain.stdout.utf8)) as? [String: Any])
        #expect(plainObject["alternatives"] == nil)
    }

    /// Each unusable alternative: refused with its code, in either form; ignored without --alternatives.
    @Test(arguments: [
        ("{not json", UnpackError.Code.invalidImage, "is not a valid descriptor"),
        (#"{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","size":3}"#, .invalidImage, "digest"),
        (
            #"{"mediaType":"application/vnd.oci.image.layer.v1.tar+lz4","digest":"sha256:\#(String(repeating: "a", count: 64))","size":3}"#,
            .unsupportedMediaType, "media type"
        ),
        (
            #"{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"blake3:\#(String(repeating: "a", count: 64))","size":3}"#,
            .unsupportedMediaType, "cannot be verified"
        ),
        (
            #"{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:\#(String(repeating: "a", count: 64))","size":3,"annotations":{"zstd-compressed-alternative":"{}"}}"#,
            .invalidImage, "names another alternative"
        ),
    ])
    func unusableLayerAlternativesAreRefused(value: String, code: UnpackError.Code, message: String) throws {
        let (tmp, path) = try Fixture.annotated(value, manifestForm: false)
        let bundle = tmp.path + "/bundle"
        let r = try Command.run(
            Command.ociUnpack, ["unpack", "--alternatives", "--platform", "linux/amd64", "oci:\(path):v1", bundle])
        ExitCodeTests.expectOneErrorLine(r, code, message)
        #expect(r.stderr.contains("layer 0"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bundle))
        let plain = try Command.run(Command.ociUnpack, ["inspect", "--platform", "linux/amd64", "oci:\(path):v1"])
        #expect(plain.status == 0, "off by default: \(plain.stderr)")
    }

    @Test(arguments: [
        ("[1,2", UnpackError.Code.invalidImage, "is not a valid descriptor"),
        (
            #"{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:\#(String(repeating: "a", count: 64))","size":3}"#,
            .unsupportedMediaType, "is not an image manifest"
        ),
        (
            #"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:\#(String(repeating: "a", count: 64))","size":3,"annotations":{"zstd-compressed-alternative":"{}"}}"#,
            .invalidImage, "names another alternative"
        ),
    ])
    func unusableManifestAlternativesAreRefused(value: String, code: UnpackError.Code, message: String) throws {
        let (tmp, path) = try Fixture.annotated(value, manifestForm: true)
        let r = try Command.run(
            Command.ociUnpack, ["inspect", "--alternatives", "--platform", "linux/amd64", "oci:\(path):v1"])
        ExitCodeTests.expectOneErrorLine(r, code, message)
        withExtendedLifetime(tmp) {}
    }

    /// A layer alternative whose stream is not the config's diff_id: refused naming both descriptors,
    /// never replaced by the original, nothing left behind.
    @Test func aLayerAlternativeWithAnotherDiffIDIsRefused() throws {
        let f = try Fixture()
        let impostor = try f.tagImpostor(at: 1)
        let bundle = f.tmp.path + "/bundle"
        let r = try f.cli([
            "unpack", "--alternatives", "--platform", "linux/amd64", "oci:\(f.path):impostor", bundle,
        ])
        ExitCodeTests.expectOneErrorLine(r, .digestMismatch, "diff_id")
        #expect(r.stderr.contains(impostor.descriptor.digest.description), "\(r.stderr)")
        #expect(r.stderr.contains(f.gzipLayers[1].descriptor.digest.description), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bundle))
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.tmp.path).sorted() == ["img"])
    }

    /// A manifest alternative whose config lists other diff_ids is not the same image.
    @Test func aManifestAlternativeOfAnotherImageIsRefused() throws {
        let f = try Fixture()
        var other = TarBuilder()
        other.file("etc/hostname", "someone else")
        let impostor = try f.b.image(layers: [try f.b.layer(other.bytes(), compression: .zstd)])
        f.b.tag(try f.b.index([try LayoutBuilder.naming(impostor, on: f.gzip)]), "impostor")
        try f.b.write()
        let r = try f.cli(["inspect", "--alternatives", "--platform", "linux/amd64", "oci:\(f.path):impostor"])
        ExitCodeTests.expectOneErrorLine(r, .invalidImage, "diff_ids differ")
        #expect(r.stderr.contains(impostor.digest.description) && r.stderr.contains(f.gzip.digest.description))
        // Asked for gzip, the check still stands: the index claims something false.
        let gzip = try f.cli([
            "inspect", "--alternatives", "--prefer-compression", "gzip", "--platform", "linux/amd64",
            "oci:\(f.path):impostor",
        ])
        #expect(gzip.status == UnpackError.Code.invalidImage.exitCode, "\(gzip.stderr)")
    }

    /// Same diff_ids but another execution config: it would run another container.
    @Test func aManifestAlternativeWithAnotherCommandIsRefused() throws {
        let f = try Fixture()
        let other = try f.b.image(
            layers: f.zstdLayers, execution: ImageConfig.Execution(user: "root", cmd: ["/bin/sh", "-c", "evil"]))
        f.b.tag(try f.b.index([try LayoutBuilder.naming(other, on: f.gzip)]), "other-command")
        try f.b.write()
        let r = try f.cli(["inspect", "--alternatives", "--platform", "linux/amd64", "oci:\(f.path):other-command"])
        ExitCodeTests.expectOneErrorLine(r, .invalidImage, "execution settings or platform differ")
    }

    /// A missing alternative blob: the original is used, with a warning.
    @Test func aMissingAlternativeFallsBackWithAWarning() throws {
        let f = try Fixture()
        try f.b.removeBlob(f.zstdLayers[0].descriptor.digest)
        try f.b.removeBlob(f.zstd.digest)
        let layers = try f.resolve("layer-form", try f.request())
        #expect(layers.layers.map(\.compression) == [.gzip, .zstd])
        #expect(layers.alternatives.map(\.status) == [.missing, .chosen])
        #expect(layers.warnings.count == 1)
        #expect(layers.warnings.first?.contains(f.zstdLayers[0].descriptor.digest.description) == true)
        let manifest = try f.resolve("manifest-form", try f.request())
        #expect(manifest.manifestDescriptor.digest == f.gzip.digest)
        #expect(manifest.alternatives.map(\.status) == [.missing])
        let bundle = f.tmp.path + "/bundle"
        let r = try f.cli([
            "unpack", "--alternatives", "--platform", "linux/amd64", "oci:\(f.path):manifest-form", bundle,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning") && r.stderr.contains("is missing"), "\(r.stderr)")
    }

    /// skopeo keeps the annotations but copies only the blobs the manifests list: the layer form
    /// falls back with a warning; with --all, the manifest form's unlisted-platform entry is carried
    /// and its alternative still chosen.
    @Test func aLayoutCopiedBySkopeo() throws {
        let f = try Fixture()
        // A layout per copy: the manifest form's zstd manifest lists the layer form's alternatives.
        for (tag, all) in [("layer-form", false), ("manifest-form", true)] {
            let r = try Command.run(
                "skopeo",
                ["copy", "--quiet"] + (all ? ["--all"] : []) + [
                    "oci:\(f.path):\(tag)", "oci:\(f.tmp.path)/\(tag):\(tag)",
                ])
            try #require(r.status == 0, "skopeo copy \(tag): \(r.stderr)")
        }
        let copy = f.tmp.path + "/layer-form"
        let layers = try Unpacker().resolve("oci:\(copy):layer-form", request: try f.request())
        #expect(layers.manifestDescriptor.digest == f.layered.digest, "skopeo kept the manifest's bytes")
        #expect(layers.alternatives.map(\.status) == [.missing, .missing])
        #expect(layers.layers.map(\.compression) == [.gzip, .gzip])
        let bundle = f.tmp.path + "/bundle"
        let r = try f.cli(["unpack", "--alternatives", "--platform", "linux/amd64", "oci:\(copy):layer-form", bundle])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.components(separatedBy: "is missing").count == 3, "one warning per layer: \(r.stderr)")
        let manifest = try Unpacker().resolve(
            "oci:\(f.tmp.path)/manifest-form:manifest-form", request: try f.request())
        #expect(manifest.manifestDescriptor.digest == f.zstd.digest)
    }

    /// verify-variants checks each alternative against its original.
    @Test func verifyVariantsCoversAlternatives() throws {
        let f = try Fixture()
        for tag in ["manifest-form", "layer-form"] {
            let r = try f.cli(["verify-variants", "--json", "--alternatives", "oci:\(f.path):\(tag)"])
            #expect(r.status == 0, "\(tag): \(r.stdout) \(r.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let groups = try #require(object["groups"] as? [[String: Any]])
            let amd64 = try #require(groups.first { $0["platform"] as? String == "linux/amd64" })
            let variants = try #require(amd64["variants"] as? [[String: Any]])
            #expect(variants.count == 2, "\(tag): \(variants)")
            #expect(variants.map { $0["status"] as? String } == ["reference", "same"], "\(tag)")
            let alternative = try #require(variants.last)
            let original = tag == "layer-form" ? f.layered.digest : f.gzip.digest
            #expect(alternative["alternativeOf"] as? String == original.description)
            if tag == "layer-form" {
                #expect(alternative["alternativeLayers"] as? [Int] == [0, 1])
            }
        }
        // An impostor layer alternative fails verification.
        try f.tagImpostor(at: 0)
        let r = try f.cli(["verify-variants", "--alternatives", "oci:\(f.path):impostor"])
        #expect(r.status == UnpackError.Code.digestMismatch.exitCode, "\(r.stdout) \(r.stderr)")
    }
}
