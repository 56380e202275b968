import Foundation
import Glibc
import LayoutSource
import OCIImage
import OCIUnpack
import Testing
import TreeCompare
import UnpackTestSupport

import struct OCIImage.Platform

/// `oci-archive:` and `docker-archive:` inputs as skopeo writes them, read in place: the same tree
/// as the layout they were copied from, every digest checked, and a clear error for what cannot be
/// read.
@Suite struct ArchiveTests {
    static let amd64 = Platform(os: "linux", architecture: "amd64")

    /// The example image copied by skopeo into both kinds of archive.
    final class Archives {
        let tmp: TemporaryDirectory
        var layout: String { tmp.path + "/layout" }
        var ociArchive: String { tmp.path + "/image.tar" }
        var dockerArchive: String { tmp.path + "/docker.tar" }

        init() throws {
            tmp = try TemporaryDirectory()
            try ExampleImage.write(to: tmp.path + "/layout", busybox: try ExampleImage.hostBusybox())
            // docker images cannot carry zstd layers: the docker-archive is made from the gzip tag
            // (the same image), the oci-archive from the mixed one.
            for (tag, destination) in [
                ("amd64-mixed", "oci-archive:\(ociArchive):amd64"),
                ("amd64-gzip", "docker-archive:\(dockerArchive):example/app:v1"),
            ] {
                let copy = try Command.run("skopeo", ["copy", "--quiet", "oci:\(layout):\(tag)", destination])
                try #require(copy.status == 0, "skopeo copy to \(destination): \(copy.stderr)")
            }
        }

        func digest(_ reference: String) throws -> Digest {
            try Unpacker().treeListing(reference, request: ResolutionRequest(platform: ArchiveTests.amd64)).digest()
        }
    }

    @Test func bothArchivesHoldTheLayoutsTree() throws {
        let a = try Archives()
        let expected = try a.digest("oci:\(a.layout):amd64-mixed")
        #expect(try a.digest("oci-archive:\(a.ociArchive):amd64") == expected)
        #expect(try a.digest("oci-archive:\(a.ociArchive)") == expected, "the only image")
        #expect(try a.digest("docker-archive:\(a.dockerArchive):example/app:v1") == expected)
        #expect(try a.digest("docker-archive:\(a.dockerArchive):docker.io/example/app:v1") == expected)
        #expect(try a.digest("docker-archive:\(a.dockerArchive)") == expected)
        #expect(try a.digest("docker-archive:\(a.dockerArchive):@0") == expected, "skopeo's @N: the first image")
        let beyond = #expect(throws: UnpackError.self) { try a.digest("docker-archive:\(a.dockerArchive):@1") }
        #expect(beyond?.code == .notFound)
    }

    /// A tar given as a layout path is named for what it is, with the prefix that reads it.
    @Test func anArchiveGivenAsALayoutPathGetsItsPrefixInTheError() throws {
        let a = try Archives()
        for (archive, prefix) in [(a.ociArchive, "oci-archive:"), (a.dockerArchive, "docker-archive:")] {
            let target = a.tmp.path + "/bundle"
            let r = try Command.run(Command.ociUnpack, ["unpack", archive, target])
            ExitCodeTests.expectOneErrorLine(r, .notFound, "\(archive) is not an OCI image layout directory")
            #expect(r.stderr.contains("use \(prefix)\(archive)"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: target))
        }
        // And inspect says where a docker archive's tags live.
        let inspect = try Command.run(
            Command.ociUnpack, ["inspect", "docker-archive:\(a.dockerArchive):example/app:v1"])
        #expect(inspect.stdout.contains("(tag \"example/app:v1\" in manifest.json)"), "\(inspect.stdout)")
    }

    @Test func theCommandsTakeArchives() throws {
        let a = try Archives()
        let inspect = try Command.run(
            Command.ociUnpack, ["inspect", "--platform", "linux/amd64", "--json", "docker-archive:\(a.dockerArchive)"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
        #expect(object["reference"] as? String == "docker-archive:\(a.dockerArchive)")
        let layers = try #require(object["layers"] as? [[String: Any]])
        #expect(layers.map { $0["mediaType"] as? String } == Array(repeating: MediaType.dockerLayer.rawValue, count: 3))
        let bundle = a.tmp.path + "/bundle"
        let unpack = try Command.run(
            Command.ociUnpack,
            ["unpack", "-q", "--platform", "linux/amd64", "oci-archive:\(a.ociArchive):amd64", bundle])
        #expect(unpack.status == 0, "\(unpack.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/app/message.txt"))
        let wrongTag = try Command.run(Command.ociUnpack, ["inspect", "docker-archive:\(a.dockerArchive):nope"])
        #expect(wrongTag.status == 66)
        #expect(
            wrongTag.stderr.contains("available tags: @0, docker.io/example/app:v1, example/app:v1"),
            "\(wrongTag.stderr)")
    }

    @Test func aCorruptMemberIsRefusedByItsDigest() throws {
        let a = try Archives()
        // Flip one byte inside busybox's layer: the member keeps its place and size.
        let layout = try LayoutSource.OCILayout(path: a.layout)
        let entry = try #require(layout.index.manifests.first { $0.refName == "amd64-mixed" })
        let busyboxLayer = try layout.manifest(entry).layers[0]
        let archive = try ArchiveSourceProbe.offset(of: "blobs/sha256/\(busyboxLayer.digest.encoded)", in: a.ociArchive)
        let fd = open(a.ociArchive, O_RDWR)
        defer { close(fd) }
        var byte: UInt8 = 0
        _ = pread(fd, &byte, 1, off_t(archive + 1000))
        byte ^= 0xff
        _ = pwrite(fd, &byte, 1, off_t(archive + 1000))
        let error = #expect(throws: UnpackError.self) { try a.digest("oci-archive:\(a.ociArchive):amd64") }
        #expect(error?.code == .digestMismatch || error?.code == .corruptLayer)
        #expect(error?.context.digest == busyboxLayer.digest)
    }

    @Test func whatCannotBeReadIsNamed() throws {
        let a = try Archives()
        let gzip = try Command.run("gzip", ["-k", a.ociArchive])
        try #require(gzip.status == 0)
        let compressed = #expect(throws: UnpackError.self) { try a.digest("oci-archive:\(a.ociArchive).gz") }
        #expect(compressed?.code == .invalidImage)
        #expect(compressed?.message.contains("gzip-compressed") == true)
        let notAnArchive = #expect(throws: UnpackError.self) { try a.digest("docker-archive:\(a.ociArchive)") }
        #expect(notAnArchive?.code == .notFound)
        #expect(notAnArchive?.message.contains("no manifest.json") == true)
        let missing = #expect(throws: UnpackError.self) { try a.digest("oci-archive:\(a.tmp.path)/none.tar") }
        #expect(missing?.code == .notFound)
        // A name listed twice: tar keeps the last copy, other readers the first; neither is guessed.
        let twice = a.tmp.path + "/twice.tar"
        let make = try Command.run(
            "sh",
            [
                "-c", "cd \"$0\"/layout && tar --hard-dereference -cf \"$1\" oci-layout index.json oci-layout",
                a.tmp.path, twice,
            ])
        try #require(make.status == 0, "\(make.stderr)")
        let duplicate = #expect(throws: UnpackError.self) { try a.digest("oci-archive:\(twice)") }
        #expect(duplicate?.code == .invalidImage)
        #expect(duplicate?.message.contains("holds oci-layout twice") == true)
    }

    /// Issue: one blob under two spellings of its name (`blobs/sha256/X`, `blobs//sha256/X`) was
    /// taken from either copy, by the order of a hash table: a different outcome from run to run.
    /// Names are made canonical before the duplicate check, so such an archive is always refused.
    @Test(arguments: ["blobs//sha256/", "./blobs/sha256/", "blobs/./sha256/", "blobs/sha256/../sha256/"])
    func oneBlobUnderTwoSpellingsIsRefusedEveryTime(alias: String) throws {
        let a = try Archives()
        let blobs = try FileManager.default.contentsOfDirectory(atPath: a.tmp.path + "/layout/blobs/sha256").sorted()
        let hex = try #require(blobs.first)
        let tar = a.tmp.path + "/aliased.tar"
        let script = """
            import io, os, sys, tarfile
            layout, out, name, alias = sys.argv[1:5]
            with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
                for entry in ["oci-layout", "index.json"] + ["blobs/sha256/" + n for n in sorted(os.listdir(layout + "/blobs/sha256"))]:
                    t.add(os.path.join(layout, entry), arcname=entry, recursive=False)
                data = b"not the blob"
                info = tarfile.TarInfo(alias + name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            """
        let made = try Command.run("python3", ["-c", script, a.tmp.path + "/layout", tar, hex, alias])
        try #require(made.status == 0, "\(made.stderr)")
        for _ in 0..<3 {
            let refused = #expect(throws: UnpackError.self) { try a.digest("oci-archive:\(tar)") }
            #expect(refused?.code == .invalidImage)
            #expect(refused?.message.contains("holds blobs/sha256/\(hex) twice") == true, "\(refused?.message ?? "")")
        }
    }

    @Test func referencesNameTheirTransport() throws {
        let a = try Archives()
        let docker = try ImageReference(parsing: "docker-archive:\(a.dockerArchive):example/app:v1")
        #expect(docker.transport == .dockerArchive)
        #expect(docker.layoutPath == a.dockerArchive)
        #expect(docker.selector == .tag("example/app:v1"))
        #expect(docker.description == "docker-archive:\(a.dockerArchive):example/app:v1")
        let second = try ImageReference(parsing: "docker-archive:\(a.dockerArchive):@1")
        #expect(second.layoutPath == a.dockerArchive)
        #expect(second.selector == .tag("@1"))
        let oci = try ImageReference(parsing: "oci-archive:\(a.ociArchive):amd64")
        #expect(oci.transport == .ociArchive)
        #expect(oci.selector == .tag("amd64"))
        let bare = try ImageReference(parsing: "oci-archive:\(a.ociArchive)")
        #expect(bare.selector == .only)
        #expect(try ImageReference(parsing: a.layout).transport == .layout)
    }
}

/// Where a member's data starts in an archive, found independently of oci-unpack (GNU tar's
/// block numbers).
enum ArchiveSourceProbe {
    static func offset(of member: String, in archive: String) throws -> Int64 {
        let listing = try Command.run("tar", ["-tvRf", archive])
        for line in listing.stdout.split(separator: "\n") where line.hasSuffix(" " + member) {
            // "block N: -r--r--r-- ..." : the header is block N, the data follows it.
            let block = line.split(separator: " ")[1].dropLast()
            if let n = Int64(block) { return (n + 1) * 512 }
        }
        throw UnpackError(.notFound, "\(member) not in \(archive)")
    }
}
