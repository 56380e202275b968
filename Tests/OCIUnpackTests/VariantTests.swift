import Foundation
import Glibc
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import Testing
import TreeCompare
import UnpackTestSupport

import enum OCIImage.LayerCompression
import struct OCIImage.Platform

/// A layout whose tag `multi` is an index of variants of one image for linux/amd64.
final class VariantFixture {
    let tmp: TemporaryDirectory
    let builder: LayoutBuilder
    var reference: String { "oci:\(builder.path):multi" }
    static let amd64 = Platform(os: "linux", architecture: "amd64")

    init() throws {
        tmp = try TemporaryDirectory()
        builder = try LayoutBuilder(path: tmp.path + "/layout")
    }

    /// One variant: its layers (tar, compression), with an optional config `created` and execution.
    struct Variant {
        var layers: [(TarBuilder, LayerCompression)]
        var created = "2026-01-01T00:00:00Z"
        var execution: ImageConfig.Execution? = nil
        var platform = VariantFixture.amd64
        var mediaTypes: [MediaType?] = []
        var annotations: [[String: String]?] = []
    }

    /// Writes the variants into one index tagged `multi`; returns the manifest descriptors.
    @discardableResult
    func write(_ variants: [Variant]) throws -> [Descriptor] {
        var manifests: [Descriptor] = []
        for variant in variants {
            var layers: [LayoutBuilder.Layer] = []
            for (i, (tar, compression)) in variant.layers.enumerated() {
                var layer = try builder.layer(
                    tar.bytes(), compression: compression,
                    mediaType: i < variant.mediaTypes.count ? variant.mediaTypes[i] : nil)
                if i < variant.annotations.count, let annotations = variant.annotations[i] {
                    layer.descriptor.annotations = annotations
                }
                layers.append(layer)
            }
            manifests.append(
                try builder.image(
                    layers: layers, platform: variant.platform, execution: variant.execution,
                    created: variant.created))
        }
        builder.indexEntries = []
        builder.tag(try builder.index(manifests), "multi")
        try builder.write()
        return manifests
    }

    func verify(ignoreMtime: Bool = false, platform: Platform? = VariantFixture.amd64) throws(UnpackError)
        -> VariantReport
    {
        try Unpacker().verifyVariants(reference, platform: platform, options: VerifyOptions(ignoreMtime: ignoreMtime))
    }
}

@Suite struct VariantTests {
    /// Two layers: a tree with nested directories, a symlink and a hardlink; then changes.
    static func lower() -> TarBuilder {
        var t = TarBuilder()
        t.directory("etc/")
        t.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
        t.directory("dir/")
        t.file("dir/a", "a")
        t.directory("dir/sub/")
        t.file("dir/sub/b", "b")
        t.symlink("link", to: "dir")
        t.hardlink("dir/a-hard", to: "dir/a")
        return t
    }

    static func upper() -> TarBuilder {
        var t = TarBuilder()
        t.directory("etc/")
        t.file("etc/added", "added", mode: 0o600, uid: 1000, gid: 1000)
        return t
    }

    static func same(_ compression: LayerCompression) -> VariantFixture.Variant {
        .init(layers: [(lower(), compression), (upper(), compression)])
    }

    @Test func identicalVariantsInThreeCompressionsAgree() throws {
        let f = try VariantFixture()
        try f.write([Self.same(.gzip), Self.same(.zstd), Self.same(.none)])
        let report = try f.verify()
        #expect(report.verdict == .agree)
        #expect(report.outcome == nil)
        let group = try #require(report.groups.first)
        #expect(report.groups.count == 1)
        #expect(group.platform == "linux/amd64")
        #expect(group.variants.map(\.status) == [.reference, .same, .same])
        #expect(group.variants.map(\.sameBy) == [nil, "config", "config"])
        #expect(
            group.variants.map { $0.layers.map(\.compression) } == [[.gzip, .gzip], [.zstd, .zstd], [.none, .none]])
    }

    @Test func sameDiffIDsUnderAnotherConfigAgreeWithoutATree() throws {
        let f = try VariantFixture()
        var other = Self.same(.zstd)
        other.created = "2026-02-02T00:00:00Z"
        try f.write([Self.same(.gzip), other])
        let group = try #require(try f.verify().groups.first)
        #expect(group.verdict == .agree)
        #expect(group.variants[1].sameBy == "diff_ids")
        #expect(group.variants.allSatisfy { $0.treeDigest == nil }, "equal diff_ids need no tree")
    }

    @Test func oneChangedFileDisagreesAndIsNamed() throws {
        let f = try VariantFixture()
        var changed = TarBuilder()
        for entry in Self.lower().entries {
            var e = entry
            if e.path == "dir/sub/b" { e.kind = .file(content: Array("B".utf8)) }
            changed.add(e)
        }
        try f.write([Self.same(.gzip), .init(layers: [(changed, .zstd), (Self.upper(), .zstd)])])
        let report = try f.verify()
        #expect(report.verdict == .differ)
        #expect(report.outcome == .variantsDiffer)
        let variant = try #require(report.groups.first?.variants.last)
        #expect(variant.status == .differs)
        #expect(variant.differenceCount == 1)
        let difference = try #require(variant.differences.first)
        #expect(difference.path == "/dir/sub/b")
        #expect(difference.kind == "changed")
        #expect(difference.fields.count == 1)
        #expect(difference.fields.first?.hasPrefix("content: ") == true)
        #expect(variant.treeDigest != report.groups.first?.variants.first?.treeDigest)
    }

    @Test func aRetarredVariantAgreesByItsTree() throws {
        let f = try VariantFixture()
        // The same entries, files in reverse order after the directories: other diff_ids.
        let entries = Self.lower().entries
        var retarred = TarBuilder()
        for entry in entries where entry.kind == .directory { retarred.add(entry) }
        for entry in entries.reversed() where entry.kind != .directory && entry.path != "dir/a-hard" {
            retarred.add(entry)
        }
        retarred.hardlink("dir/a-hard", to: "dir/a")
        #expect(retarred.bytes() != Self.lower().bytes())
        try f.write([Self.same(.gzip), .init(layers: [(retarred, .zstd), (Self.upper(), .zstd)])])
        let report = try f.verify()
        let group = try #require(report.groups.first)
        #expect(group.verdict == .agree)
        #expect(group.variants[1].sameBy == "tree")
        #expect(group.variants[1].treeDigest != nil)
        #expect(group.variants[0].treeDigest == group.variants[1].treeDigest)
    }

    @Test func anExtraWhiteoutDisagrees() throws {
        let f = try VariantFixture()
        var whiteout = Self.upper()
        whiteout.whiteout("dir/sub")
        try f.write([Self.same(.gzip), .init(layers: [(Self.lower(), .gzip), (whiteout, .gzip)])])
        let variant = try #require(try f.verify().groups.first?.variants.last)
        #expect(variant.status == .differs)
        #expect(variant.differences.map(\.path) == ["/dir/sub", "/dir/sub/b"])
        #expect(variant.differences.map(\.kind) == ["only-in-reference", "only-in-reference"])
    }

    @Test func differentXattrsDisagree() throws {
        let f = try VariantFixture()
        var tagged = TarBuilder()
        for entry in Self.lower().entries {
            var e = entry
            if e.path == "etc/passwd" { e.xattrs = ["user.origin": Array("variant".utf8)] }
            tagged.add(e)
        }
        try f.write([Self.same(.gzip), .init(layers: [(tagged, .zstd), (Self.upper(), .zstd)])])
        let variant = try #require(try f.verify().groups.first?.variants.last)
        #expect(variant.differences.map(\.path) == ["/etc/passwd"])
        #expect(variant.differences.first?.fields == ["xattrs:  → xattr.user.origin=76617269616e74"])
    }

    @Test func mtimesDisagreeUnlessIgnored() throws {
        let f = try VariantFixture()
        var touched = TarBuilder()
        for entry in Self.lower().entries {
            var e = entry
            if e.path == "dir/a" { e.mtime += 60 }
            touched.add(e)
        }
        try f.write([Self.same(.gzip), .init(layers: [(touched, .zstd), (Self.upper(), .zstd)])])
        let strict = try #require(try f.verify().groups.first?.variants.last)
        #expect(strict.status == .differs)
        #expect(strict.differences.first?.fields == ["mtime: 1700000000.000000000 → 1700000060.000000000"])
        let lenient = try f.verify(ignoreMtime: true)
        #expect(lenient.verdict == .agree)
        #expect(lenient.groups.first?.variants.last?.sameBy == "tree")
    }

    @Test func anExecutionConfigDifferenceDisagrees() throws {
        let f = try VariantFixture()
        var other = Self.same(.zstd)
        other.execution = ImageConfig.Execution(env: ["A=1"])
        try f.write([Self.same(.gzip), other])
        let variant = try #require(try f.verify().groups.first?.variants.last)
        #expect(variant.status == .differs)
        #expect(variant.configDifferences == ["Env"])
        #expect(variant.differenceCount == 0)
    }

    @Test func aCorruptVariantFailsWithItsOwnCode() throws {
        let f = try VariantFixture()
        let manifests = try f.write([Self.same(.zstd), Self.same(.gzip)])
        let manifest = try OCILayoutReader.manifest(f.builder.path, manifests[1])
        let blob = manifest.layers[0]
        // Another gzip MTIME in the header: a valid stream of the same tar and size, other bytes.
        var bytes = try Array(
            Data(contentsOf: URL(fileURLWithPath: "\(f.builder.path)/blobs/sha256/\(blob.digest.encoded)")))
        bytes[4] ^= 0xff
        try f.builder.overwriteBlob(blob.digest, with: bytes)
        let report = try f.verify()
        #expect(report.verdict == .failed)
        #expect(report.outcome == .digestMismatch)
        let variant = try #require(report.groups.first?.variants.last)
        #expect(variant.status == .failed)
        #expect(variant.errorCode == "digestMismatch")
        #expect(variant.reason?.contains(blob.digest.description) == true)
        #expect(report.groups.first?.variants.first?.status == .reference)

        // Bytes that are not zstd at all fail as a corrupt layer, before any digest is known.
        let zstdBlob = try OCILayoutReader.manifest(f.builder.path, manifests[0]).layers[1]
        try f.builder.overwriteBlob(zstdBlob.digest, with: [UInt8](repeating: 0x28, count: Int(zstdBlob.size)))
        let both = try f.verify()
        #expect(both.groups.first?.variants.map(\.errorCode) == ["corruptLayer", "digestMismatch"])
        #expect(both.outcome == .corruptLayer, "the first failed variant's code")
    }

    @Test func aVariantThatCannotBeUnpackedMakesTheGroupIncomplete() throws {
        let f = try VariantFixture()
        var encrypted = Self.same(.gzip)
        encrypted.mediaTypes = ["application/vnd.oci.image.layer.v1.tar+gzip+encrypted"]
        try f.write([Self.same(.gzip), encrypted])
        let report = try f.verify()
        #expect(report.verdict == .incomplete)
        #expect(report.outcome == .unsupportedMediaType)
        let variant = try #require(report.groups.first?.variants.last)
        #expect(variant.status == .refused)
        #expect(variant.reason?.contains("+encrypted") == true)
    }

    @Test func anUnverifiableEntryLeavesItsPlatformUnproven() throws {
        let f = try VariantFixture()
        let manifests = try f.write([Self.same(.gzip), Self.same(.zstd)])
        let entries = try manifests.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        let blake3 =
            #"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"blake3:\#(String(repeating: "cd", count: 32))","size":10,"platform":{"os":"linux","architecture":"amd64"}}"#
        let json =
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["#
            + (entries + [blake3]).joined(separator: ",") + "]}"
        f.builder.indexEntries = []
        f.builder.tag(try f.builder.blob(Array(json.utf8), mediaType: .ociIndex), "multi")
        try f.builder.write()
        let report = try f.verify()
        let group = try #require(report.groups.first)
        #expect(group.variants.map(\.status) == [.reference, .same], "the verifiable variants agree")
        #expect(group.unverifiable.map(\.entry.algorithm) == ["blake3"])
        #expect(group.verdict == .incomplete)
        #expect(report.outcome == .unsupportedMediaType)
    }

    @Test func platformsAreGroupedAndSelected() throws {
        let f = try VariantFixture()
        var arm = Self.same(.gzip)
        arm.platform = Platform(os: "linux", architecture: "arm64")
        var armChanged = Self.same(.zstd)
        armChanged.platform = arm.platform
        armChanged.layers[1].0.file("extra", "x")
        try f.write([Self.same(.gzip), arm, Self.same(.zstd), armChanged])
        let all = try f.verify(platform: nil)
        #expect(all.groups.map(\.platform) == ["linux/amd64", "linux/arm64"])
        #expect(all.groups.map(\.verdict) == [.agree, .differ])
        #expect(all.groups[1].variants.last?.differences.map(\.path) == ["/extra"])
        let amd64 = try f.verify()
        #expect(amd64.groups.map(\.platform) == ["linux/amd64"])
        #expect(amd64.verdict == .agree)
        #expect(throws: UnpackError.self) { try f.verify(platform: Platform(os: "linux", architecture: "s390x")) }
    }

    /// The lower layer as eStargz writes it (a landmark first, the table of contents last), and a
    /// variant of it and the upper layer whose first descriptor carries the eStargz annotation.
    static func estargz() -> (TarBuilder, VariantFixture.Variant) {
        var stargz = TarBuilder()
        stargz.add(.init(path: ".prefetch.landmark", kind: .file(content: [0xf])))
        for entry in lower().entries { stargz.add(entry) }
        stargz.file("stargz.index.json", #"{"version":1,"entries":[]}"#)
        var annotated = VariantFixture.Variant(layers: [(stargz, .gzip), (upper(), .gzip)])
        annotated.annotations = [[AnnotationKey.estargzTOCDigest: Digest.of(Array("toc".utf8)).description]]
        return (stargz, annotated)
    }

    /// eStargz: the TOC (`stargz.index.json`) and landmark files are the format's own entries: an
    /// annotated layer unpacks without them and agrees with the tar.gz it came from; a layer
    /// without the annotation keeps them (nothing is dropped on a guess).
    @Test func estargzMetadataEntriesAreLeftOut() throws {
        let f = try VariantFixture()
        let (stargz, annotated) = Self.estargz()
        try f.write([Self.same(.gzip), annotated])
        let report = try f.verify()
        #expect(report.verdict == .agree)
        #expect(report.groups.first?.variants.last?.sameBy == "tree")
        #expect(report.groups.first?.variants.last?.layers.first?.format == "estargz")

        let g = try VariantFixture()
        try g.write([Self.same(.gzip), .init(layers: [(stargz, .gzip), (Self.upper(), .gzip)])])
        let plain = try #require(try g.verify().groups.first?.variants.last)
        #expect(plain.differences.map(\.path).sorted() == ["/.prefetch.landmark", "/stargz.index.json"])

        // The unpack leaves them out too.
        let bundle = f.tmp.path + "/bundle"
        let manifests = try OCILayoutReader.index(f.builder.path, tag: "multi")
        _ = try Unpacker().unpack(
            "oci:\(f.builder.path)@\(manifests[1].digest)", into: bundle,
            request: ResolutionRequest(platform: VariantFixture.amd64))
        #expect(access(bundle + "/rootfs/etc/passwd", F_OK) == 0)
        #expect(access(bundle + "/rootfs/stargz.index.json", F_OK) != 0)
        #expect(access(bundle + "/rootfs/.prefetch.landmark", F_OK) != 0)
    }

    /// Issue: two variants with the same config and the same layer blob, only one descriptor
    /// carrying the eStargz annotation, "agreed by config" although one unpacks with
    /// `stargz.index.json` and `.prefetch.landmark` and the other without. A rule that changes
    /// what is written is part of what "same" compares.
    @Test func theSameConfigUnderAnotherLayerRuleIsComparedByItsTree() throws {
        let f = try VariantFixture()
        let (stargz, annotated) = Self.estargz()
        let manifests = try f.write([.init(layers: [(stargz, .gzip), (Self.upper(), .gzip)]), annotated])
        let configs = try manifests.map { try OCILayoutReader.manifest(f.builder.path, $0).config.digest }
        #expect(configs[0] == configs[1], "the fixture must share the config")
        let report = try f.verify()
        #expect(report.verdict == .differ)
        let variant = try #require(report.groups.first?.variants.last)
        #expect(variant.status == .differs)
        #expect(variant.sameBy == nil)
        #expect(variant.differences.map(\.path).sorted() == ["/.prefetch.landmark", "/stargz.index.json"])
    }

    /// The tree built in memory is the tree an unpack writes, over the layer stacks of the whiteout
    /// and symlink suites: the virtual apply cannot drift from the real one unnoticed.
    @Test(.enabled(if: rootTestsRun, "the image's owners are restored only as root"), arguments: Self.stacks.indices)
    func virtualTreeEqualsTheUnpackedTree(stack: Int) throws {
        let f = try UnpackFixture()
        try f.image(Self.stacks[stack].map { ($0, LayerCompression.gzip) })
        try f.unpack()
        let image = try Unpacker().treeListing(
            "oci:\(f.builder.path):latest", request: ResolutionRequest(platform: VariantFixture.amd64))
        let disk = try TreeListing(directory: f.rootfs)
        let (differences, count) = image.differences(to: disk, ignoringMtime: false, limit: 20)
        #expect(count == 0, "stack \(stack): \(differences)")
        #expect(image.entries.count > 1)
    }

    static let stacks: [[TarBuilder]] = {
        var out: [[TarBuilder]] = []
        let base = lower()
        // Whiteouts of a file, a directory and a symlink; an opaque directory before and after
        // same-layer entries.
        var w = TarBuilder()
        w.whiteout("etc/passwd")
        w.whiteout("dir/sub")
        w.whiteout("link")
        out.append([base, w])
        var opaqueFirst = TarBuilder()
        opaqueFirst.opaque("dir")
        opaqueFirst.file("dir/new", "n")
        opaqueFirst.directory("dir/sub/")
        opaqueFirst.file("dir/sub/c", "c")
        out.append([base, opaqueFirst])
        var opaqueLast = TarBuilder()
        opaqueLast.file("dir/new", "n")
        opaqueLast.opaque("dir")
        out.append([base, opaqueLast])
        // Entries and whiteouts through a symlinked parent; a whiteout sparing this layer's file.
        var through = TarBuilder()
        through.file("link/via-link", "v")
        through.whiteout("link/a")
        through.file("dir/same-layer", "s")
        through.whiteout("dir/same-layer")
        out.append([base, through])
        // Type changes across layers; a hardlink to a lower file, then its target replaced.
        var types = TarBuilder()
        types.directory("dir/sub/b/")
        types.file("dir/sub", "now a file")
        types.symlink("dir/a", to: "/etc")
        types.hardlink("hard-to-lower", to: "dir/a-hard")
        out.append([base, types])
        // Directory metadata replaced by a later entry, parents created implicitly, xattrs.
        var meta = TarBuilder()
        meta.directory("dir/", mode: 0o700, uid: 5, gid: 6)
        meta.file("new/deep/file", "d")
        meta.add(.init(path: "etc/tagged", kind: .file(content: [1, 2]), xattrs: ["trusted.k": [0, 255]]))
        meta.add(.init(path: "fifo", kind: .fifo))
        out.append([base, meta])
        // Issue: a directory described twice in one layer with different times kept the first
        // entry's on disk and the second's in memory. The last entry's attributes win in both.
        var twice = TarBuilder()
        twice.add(.init(path: "x/", kind: .directory, mtime: 1_600_000_000))
        twice.file("x/f", "f")
        twice.add(.init(path: "x/", kind: .directory, mode: 0o700, mtime: 1_700_000_000))
        // A new directory made implicitly below an existing one changes that one's time, which
        // the layer puts back.
        twice.file("dir/implicit/deep/file", "d")
        out.append([base, twice])
        return out
    }()
}

/// Reads documents of a layout the tests wrote.
enum OCILayoutReader {
    static func manifest(_ path: String, _ descriptor: Descriptor) throws -> Manifest {
        try LayoutSource.OCILayout(path: path).manifest(descriptor)
    }

    /// The manifests of the index tagged `tag`.
    static func index(_ path: String, tag: String) throws -> [Descriptor] {
        let layout = try LayoutSource.OCILayout(path: path)
        let entry = try #require(layout.index.manifests.first { $0.refName == tag })
        return try layout.index(entry).manifests
    }
}

/// The commands as a user runs them: output, JSON and exit codes.
@Suite struct VariantCLITests {
    @Test func verifyVariantsReportsADifferenceWithItsExitCode() throws {
        let f = try VariantFixture()
        var changed = VariantTests.same(.zstd)
        changed.layers[1].0.file("etc/added", "other")
        try f.write([VariantTests.same(.gzip), changed])
        let text = try Command.run(Command.ociUnpack, ["verify-variants", "--platform", "linux/amd64", f.reference])
        #expect(text.status == 89)
        #expect(text.stdout.contains("platform linux/amd64: differ (2 variants)"))
        #expect(text.stdout.contains("/etc/added: mode: 600 → 644; uid: 1000 → 0; gid: 1000 → 0; content: 279b8a60"))
        #expect(text.stdout.hasSuffix("verdict: differ\n"))
        let json = try Command.run(
            Command.ociUnpack, ["verify-variants", "--platform", "linux/amd64", "--json", f.reference])
        #expect(json.status == 89)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["verdict"] as? String == "differ")
        #expect(object["exitCode"] as? Int == 89)
        let groups = try #require(object["groups"] as? [[String: Any]])
        let variants = try #require(groups.first?["variants"] as? [[String: Any]])
        #expect(variants.map { $0["status"] as? String } == ["reference", "differs"])
        let differences = try #require(variants.last?["differences"] as? [[String: Any]])
        #expect(differences.first?["path"] as? String == "/etc/added")
        #expect(variants.last?["differenceCount"] as? Int == 1)

        let agree = try Command.run(
            Command.ociUnpack, ["verify-variants", "--all-platforms", "--max-differences", "0", f.reference])
        #expect(agree.status == 89, "the same difference on every platform")
        let bad = try Command.run(
            Command.ociUnpack, ["verify-variants", "--all-platforms", "--platform", "linux/amd64", f.reference])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("exclude each other"))
    }

    @Test(.enabled(if: rootTestsRun, "the image's owners are restored only as root"))
    func treeDigestOfAnUnpackedBundleEqualsTheImage() throws {
        let f = try VariantFixture()
        try f.write([VariantTests.same(.zstd)])
        let bundle = f.tmp.path + "/bundle"
        let unpack = try Command.run(Command.ociUnpack, ["unpack", "-q", f.reference, bundle])
        try #require(unpack.status == 0, "\(unpack.stderr)")
        let same = try Command.run(Command.ociUnpack, ["tree-digest", f.reference, "--rootfs", bundle + "/rootfs"])
        #expect(same.status == 0, "\(same.stderr)")
        let digests = same.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(digests.count == 2)
        #expect(digests.first?.hasPrefix("sha256:") == true)
        #expect(digests.first == digests.last)

        try Data("changed".utf8).write(to: URL(fileURLWithPath: bundle + "/rootfs/dir/sub/b"))
        let differ = try Command.run(Command.ociUnpack, ["tree-digest", f.reference, "--rootfs", bundle + "/rootfs"])
        #expect(differ.status == 89)
        #expect(differ.stderr.contains("differ at 1 path:"))
        #expect(differ.stderr.contains("/dir/sub/b: size: 1 → 7"))

        let listing = try Command.run(Command.ociUnpack, ["tree-digest", "--listing", f.reference])
        #expect(listing.status == 0)
        let lines = listing.stdout.split(separator: "\n")
        #expect(lines.first == "oci-unpack tree listing v1")
        #expect(
            lines.contains(
                "/dir/a-hard file mode=644 uid=0 gid=0 size=1 sha256=ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb link=/dir/a mtime=1700000000.000000000"
            ))
        #expect(lines.contains("/link symlink mode=777 uid=0 gid=0 target=dir mtime=1700000000.000000000"))
        let none = try Command.run(Command.ociUnpack, ["tree-digest"])
        #expect(none.status == 64)
    }
}

/// What Debian's skopeo writes as zstd:chunked: the tar stream re-serialised without the record
/// padding a tar writer may leave after the end-of-archive marker (Python's tarfile and GNU tar
/// pad to 10 KiB), under the same diff_ids. verify-variants says so instead of agreeing.
@Suite struct SkopeoChunkedTests {
    @Test func aChunkedCopyOfAPaddedLayerFailsItsDiffID() throws {
        let f = try VariantFixture()
        var padded = VariantTests.lower().bytes()
        padded += [UInt8](repeating: 0, count: 10240 - padded.count % 10240)
        let layer = try f.builder.layer(tar: padded, blob: GzipCompressor.compress(padded), mediaType: .ociLayerGzip)
        let image = try f.builder.image(layers: [layer], platform: VariantFixture.amd64)
        f.builder.indexEntries = []
        f.builder.tag(image, "padded")
        try f.builder.write()
        let copy = try Command.run(
            "skopeo",
            [
                "copy", "--quiet", "--dest-compress", "--dest-compress-format", "zstd:chunked",
                "oci:\(f.builder.path):padded", "oci:\(f.tmp.path)/chunked:padded",
            ])
        try #require(copy.status == 0, "\(copy.stderr)")
        let chunked = try #require(try LayoutSource.OCILayout(path: f.tmp.path + "/chunked").index.manifests.first)
        let merge = try Command.run(
            "sh", ["-c", "cp -n \"$0\"/blobs/sha256/* \"$1\"/blobs/sha256/", f.tmp.path + "/chunked", f.builder.path])
        try #require(merge.status == 0, "\(merge.stderr)")
        var entry = chunked
        entry.platform = VariantFixture.amd64
        entry.annotations = nil
        f.builder.tag(try f.builder.index([image, entry]), "multi")
        try f.builder.write()
        let report = try f.verify()
        let variants = try #require(report.groups.first?.variants)
        #expect(variants.map(\.status) == [.reference, .failed])
        #expect(variants[1].layers.first?.format == "zstd:chunked")
        #expect(variants[1].errorCode == "digestMismatch")
        #expect(variants[1].reason?.contains("diff_id") == true)
        #expect(report.outcome == .digestMismatch)
    }
}
