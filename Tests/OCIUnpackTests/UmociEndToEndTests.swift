import Foundation
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

/// A real multi-layer image built by umoci (whiteouts, hardlinks, devices, setuid, non-ASCII names),
/// recompressed to zstd by skopeo, unpacked by `umoci unpack` and by oci-unpack: the trees must be
/// identical, metadata and times included.
@Suite(.enabled(if: rootTestsRun, "umoci builds and unpacks images with devices and owners as root"))
struct UmociEndToEndTests {
    static let buildScript = #"""
        set -euo pipefail
        cd "$1"
        L=img
        umoci init --layout $L
        umoci new --image $L:t
        umoci unpack --image $L:t b1 >/dev/null
        R=b1/rootfs
        mkdir -p $R/etc $R/usr/bin $R/data/deep/a/b/c $R/old/sub $R/empty $R/replace
        echo hello > $R/etc/hello
        echo 'root:x:0:0::/root:/bin/sh' > $R/etc/passwd
        printf 'su' > $R/usr/bin/su; chmod 4755 $R/usr/bin/su
        chmod 2711 $R/data
        ln -s /etc/hello $R/abs-link
        ln -s ../etc/hello $R/usr/rel-link
        ln $R/etc/hello $R/etc/hello-hard
        mkfifo $R/fifo
        mknod $R/null c 1 3
        echo x > $R/old/sub/file; echo y > $R/old/top
        echo "uni" > "$R/data/ünïcödé name"
        echo r1 > $R/replace/r1
        head -c 300000 /dev/urandom > $R/data/random
        truncate -s 5M $R/data/sparse
        chown -R 1000:1000 $R/data
        touch -d '2001-02-03 04:05:06' $R/etc/hello
        umoci repack --image $L:t b1
        umoci unpack --image $L:t b2 >/dev/null
        R=b2/rootfs
        rm -f $R/etc/hello-hard
        rm -rf $R/old
        rm -rf $R/replace; mkdir $R/replace; echo r2 > $R/replace/r2
        chmod 700 $R/empty
        rm $R/abs-link; echo notalink > $R/abs-link
        echo changed > $R/etc/passwd
        umoci repack --image $L:t b2
        umoci unpack --image $L:t b3 >/dev/null
        R=b3/rootfs
        rm -rf $R/data/deep; echo deep > $R/data/deep
        ln -s /etc $R/etc-link
        ln $R/usr/bin/su $R/usr/bin/su-hard
        umoci repack --image $L:t b3
        umoci config --image $L:t --config.cmd /bin/sh
        umoci unpack --image $L:t reference >/dev/null
        skopeo copy --quiet --dest-compress --dest-compress-format zstd oci:$L:t oci:zstd-layout:t
        cp -n zstd-layout/blobs/sha256/* $L/blobs/sha256/
        """#

    @Test func treesMatchUmociForGzipZstdAndMixedVariants() throws {
        let tmp = try TemporaryDirectory()
        let build = try Command.run("bash", ["-c", Self.buildScript, "build", tmp.path])
        try #require(build.status == 0, "building the image with umoci/skopeo failed: \(build.stderr)")
        let layout = try OCILayout(path: tmp.path + "/img")
        let zstdLayout = try OCILayout(path: tmp.path + "/zstd-layout")
        let gzipManifest = try layout.manifest(try #require(layout.index.manifests.first))
        let zstdDescriptor = try #require(zstdLayout.index.manifests.first)
        let zstdManifest = try zstdLayout.manifest(zstdDescriptor)
        #expect(gzipManifest.layers.count == 3)
        #expect(zstdManifest.layers.map(\.mediaType) == Array(repeating: .ociLayerZstd, count: 3))

        // A mixed manifest (gzip, zstd, gzip) and an index offering the gzip and zstd variants.
        let builder = try LayoutBuilder(path: tmp.path + "/img")
        builder.indexEntries = layout.index.manifests
        let mixed = Manifest(
            config: gzipManifest.config,
            layers: [gzipManifest.layers[0], zstdManifest.layers[1], gzipManifest.layers[2]])
        let platform = Platform(os: "linux", architecture: "amd64")
        builder.tag(try builder.json(mixed, mediaType: .ociManifest), "mixed")
        var gzipEntry = try #require(layout.index.manifests.first)
        gzipEntry.annotations = nil
        gzipEntry.platform = platform
        var zstdEntry = zstdDescriptor
        zstdEntry.annotations = [AnnotationKey.zstdCompression: "true"]
        zstdEntry.platform = platform
        builder.tag(try builder.index([gzipEntry, zstdEntry]), "variants")
        try builder.write()

        let reference = try TreeSnapshot(tmp.path + "/reference/rootfs")
        #expect(reference["data/ünïcödé name"] != nil)
        #expect(reference["null"]?.type == "c")
        for (tag, expected) in [
            ("t", [LayerCompression.gzip, .gzip, .gzip]), ("mixed", [.gzip, .zstd, .gzip]),
            ("variants", [.zstd, .zstd, .zstd]),
        ] {
            let out = tmp.path + "/ours-\(tag)"
            let run = try Command.run(
                Command.ociUnpack, ["unpack", "--platform", "linux/amd64", "-q", "oci:\(tmp.path)/img:\(tag)", out])
            #expect(run.status == 0, "\(tag): \(run.stderr)")
            #expect(run.stderr.isEmpty, "no warnings expected: \(run.stderr)")
            let inspect = try Command.run(
                Command.ociUnpack, ["inspect", "--platform", "linux/amd64", "--json", "oci:\(tmp.path)/img:\(tag)"])
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
            let layers = try #require(object["layers"] as? [[String: Any]])
            #expect(layers.compactMap { $0["compression"] as? String } == expected.map(\.rawValue), "\(tag)")
            let ours = try TreeSnapshot(out + "/rootfs")
            let differences = ours.differences(from: reference, ignoreDirectoryTimes: false)
            #expect(differences.isEmpty, "\(tag) differs from umoci unpack:\n\(differences.joined(separator: "\n"))")
        }
    }

    /// The same image as published in three compressions (umoci's gzip, skopeo's zstd and
    /// zstd:chunked) in one index: `verify-variants` proves they agree, inspect names zstd:chunked,
    /// and the image's tree digest equals that of the rootfs `umoci unpack` wrote.
    @Test func skopeoVariantsAgreeAndTheTreeDigestMatchesUmocisRootfs() throws {
        let tmp = try TemporaryDirectory()
        let script =
            Self.buildScript + """

                skopeo copy --quiet --dest-compress --dest-compress-format zstd:chunked oci:$L:t oci:chunked-layout:t
                cp -n chunked-layout/blobs/sha256/* $L/blobs/sha256/
                """
        let build = try Command.run("bash", ["-c", script, "build", tmp.path])
        try #require(build.status == 0, "building the image with umoci/skopeo failed: \(build.stderr)")
        let layout = try OCILayout(path: tmp.path + "/img")
        let platform = Platform(os: "linux", architecture: "amd64")
        var entries: [Descriptor] = []
        for path in ["img", "zstd-layout", "chunked-layout"] {
            var entry = try #require(try OCILayout(path: tmp.path + "/" + path).index.manifests.first)
            entry.annotations = nil
            entry.platform = platform
            entries.append(entry)
        }
        let chunked = try layout.manifest(entries[2])
        #expect(chunked.layers.allSatisfy { $0.layerFormat == .zstdChunked })
        let builder = try LayoutBuilder(path: tmp.path + "/img")
        builder.indexEntries = layout.index.manifests
        builder.tag(try builder.index(entries), "variants")
        try builder.write()

        let image = "oci:\(tmp.path)/img:variants"
        let verify = try Command.run(
            Command.ociUnpack, ["verify-variants", "--platform", "linux/amd64", "--json", image])
        #expect(verify.status == 0, "\(verify.stdout)\n\(verify.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any])
        let groups = try #require(object["groups"] as? [[String: Any]])
        let variants = try #require(groups.first?["variants"] as? [[String: Any]])
        #expect(variants.map { $0["status"] as? String } == ["reference", "same", "same"])
        let formats = (variants.last?["layers"] as? [[String: Any]])?.compactMap { $0["format"] as? String }
        #expect(formats == ["zstd:chunked", "zstd:chunked", "zstd:chunked"])

        let inspect = try Command.run(
            Command.ociUnpack,
            ["inspect", "--platform", "linux/amd64", "oci:\(tmp.path)/img@\(entries[2].digest)"])
        #expect(inspect.stdout.contains("compression zstd (zstd:chunked)"), "\(inspect.stdout)")

        for variant in entries {
            let digest = try Command.run(
                Command.ociUnpack,
                [
                    "tree-digest", "--platform", "linux/amd64", "oci:\(tmp.path)/img@\(variant.digest)", "--rootfs",
                    tmp.path + "/reference/rootfs",
                ])
            #expect(digest.status == 0, "\(variant.digest): \(digest.stderr)")
        }
    }
}
