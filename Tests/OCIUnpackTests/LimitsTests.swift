import Foundation
import Glibc
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import Resolution
import RuntimeBundle
import TarArchive
import Testing
import UnpackSystem
import UnpackTestSupport

/// Resource limits: each exceeded one is a clear `limitExceeded` that names it, and leaves nothing.
@Suite struct LimitsTests {
    func unpack(_ f: UnpackFixture, _ configure: (inout UnpackLimits) -> Void) throws(UnpackError) {
        var limits = UnpackLimits()
        configure(&limits)
        _ = try Unpacker().unpack(
            "oci:\(f.builder.path):latest", into: f.bundle,
            request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")),
            options: UnpackOptions(limits: limits))
    }

    func expectLimit(
        _ f: UnpackFixture, _ name: String, _ configure: (inout UnpackLimits) -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let error = #expect(throws: UnpackError.self, sourceLocation: sourceLocation) { try unpack(f, configure) }
        #expect(error?.code == .limitExceeded, "\(String(describing: error))", sourceLocation: sourceLocation)
        #expect(
            error?.message.contains("(limit \(name)") == true, "\(String(describing: error?.message))",
            sourceLocation: sourceLocation)
        #expect(try f.siblings().isEmpty, sourceLocation: sourceLocation)
    }

    @Test func decompressionBomb() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "zeros", kind: .file(content: [UInt8](repeating: 0, count: 4 << 20))))
        try f.image([(t, .zstd)])
        try expectLimit(f, "expansion-ratio") {
            $0.expansionRatioFloorBytes = 1 << 20; $0.maxExpansionRatio = 100
        }
        // The same layer is fine under the default floor.
        try unpack(f) { _ in }
    }

    @Test func totalUncompressedBytes() throws {
        let f = try UnpackFixture()
        var a = TarBuilder()
        a.file("a", String(repeating: "a", count: 60_000))
        var b = TarBuilder()
        b.file("b", String(repeating: "b", count: 60_000))
        try f.image([(a, .gzip), (b, .gzip)])
        try expectLimit(f, "uncompressed-bytes") { $0.maxUncompressedBytes = 100_000 }
    }

    @Test func entriesPathsAndXattrs() throws {
        let f = try UnpackFixture()
        var many = TarBuilder()
        for i in 0..<11 { many.file("f\(i)", "") }
        try f.image(many)
        try expectLimit(f, "entries-per-layer") { $0.maxEntriesPerLayer = 10 }

        var long = TarBuilder()
        long.file(String(repeating: "n", count: 300), "")
        try f.image(long)
        try expectLimit(f, "path-bytes") { $0.maxPathBytes = 255 }

        var longLink = TarBuilder()
        longLink.symlink("l", to: String(repeating: "t/", count: 200))
        try f.image(longLink)
        try expectLimit(f, "path-bytes") { $0.maxPathBytes = 255 }

        var deep = TarBuilder()
        deep.file(Array(repeating: "d", count: 40).joined(separator: "/"), "")
        try f.image(deep)
        try expectLimit(f, "path-depth") { $0.maxPathDepth = 32 }

        var xattrs = TarBuilder()
        xattrs.add(.init(path: "x", kind: .file(content: []), xattrs: ["user.big": [UInt8](repeating: 1, count: 5000)]))
        try f.image(xattrs)
        try expectLimit(f, "xattr-bytes-per-entry") { $0.maxXattrBytesPerEntry = 4096 }
    }

    @Test func userDatabaseSize() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("etc/passwd", String(repeating: "#\n", count: 1000))
        try f.image(t)
        let error = #expect(throws: UnpackError.self) { try unpack(f) { $0.maxUserDatabaseBytes = 100 } }
        #expect(error?.code == .limitExceeded)
        #expect(
            error?.message.contains("/etc/passwd in the root filesystem is 2000 bytes, over the 100-byte limit") == true
        )
        #expect(try f.siblings().isEmpty)
    }

    @Test func hugePaxHeaderIsRefusedNotBuffered() throws {
        // CVE-2022-2879: a PAX header of many megabytes.
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(
            .init(
                path: "a", kind: .file(content: Array("a".utf8)),
                xattrs: ["user.comment": [UInt8](repeating: 0x41, count: 8 << 20)]))
        try f.image(t)
        let error = #expect(throws: UnpackError.self) { try unpack(f) { _ in } }
        // libarchive refuses special headers over 1 MiB before buffering more of them.
        #expect(error?.code == .corruptLayer, "\(String(describing: error))")
        #expect(error?.message.contains("Special header too large") == true)
        #expect(try f.siblings().isEmpty)
    }

    @Test func limitAssignments() throws {
        var limits = UnpackLimits()
        try limits.set("uncompressed-bytes=2G")
        try limits.set("entries-per-layer=5000")
        #expect(limits.maxUncompressedBytes == 2 << 30)
        #expect(limits.maxEntriesPerLayer == 5000)
        for bad in ["nope=1", "path-depth=0", "path-depth", "path-depth=-3", "uncompressed-bytes=99999999999T"] {
            let error = #expect(throws: UnpackError.self) { try limits.set(bad) }
            #expect(error?.code == .invalidArgument)
        }
        let r = try Command.run(Command.ociUnpack, ["unpack", "--limit", "bogus=1", "/nonexistent", "/tmp/x"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("unknown limit \"bogus\""))
    }

    /// Crafted layers cannot make the work superlinear: thousands of opaque markers and
    /// whiteouts for one directory list it once, however many there are.
    @Test(arguments: [200, 2000])
    func repeatedMarkersListTheDirectoryOnce(count: Int) throws {
        let tmp = try TemporaryDirectory()
        let root = tmp.path + "/rootfs"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var lower = TarBuilder()
        lower.directory("d/")
        lower.directory("d/held/")
        for i in 0..<count { lower.file("d/lower\(i)", "") }
        var upper = TarBuilder()
        upper.file("d/held/new", "")
        for i in 0..<count {
            upper.file("d/upper\(i)", "")
            upper.opaque("d")
            upper.whiteout("d/held")
        }
        let applier = try Applier(rootPath: root)
        for layer in [lower, upper] {
            try applier.apply(try TarReader(upstream: MemoryStream(layer.bytes())))
        }
        #expect(applier.statistics.directoryListings == 2, "one listing for d, one for d/held")
        let names = try FileManager.default.contentsOfDirectory(atPath: root + "/d")
        #expect(names.count == count + 1)
        #expect(!names.contains("lower0"))
    }
}

/// A full disk: a small tmpfs as the bundle's parent.
@Suite(.enabled(if: rootTestsRun, "mounting a tmpfs needs root"))
struct FullDiskTests {
    /// One big file fills the disk on the applier's thread; many small ones fill it on the
    /// finisher thread (or on the applier's, with that off). The error names the file either way.
    @Test(arguments: [("big", true), ("small", true), ("small", false)])
    func fullDiskIsAnIOErrorThatLeavesNothing(files: String, finishInParallel: Bool) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("small", "fits")
        if files == "big" {
            t.add(.init(path: "big", kind: .file(content: [UInt8](repeating: 7, count: 3 << 20))))
        } else {
            for i in 0..<60 {
                t.add(.init(path: "many/\(i)", kind: .file(content: [UInt8](repeating: 7, count: 60 << 10))))
            }
        }
        try f.image([(t, .zstd)])
        let mountPoint = f.tmp.path + "/small-disk"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = try Command.run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountPoint])
        try #require(mount.status == 0, "\(mount.stderr)")
        defer { _ = try? Command.run("umount", [mountPoint]) }
        let error = #expect(throws: UnpackError.self) {
            try Unpacker().unpack(
                "oci:\(f.builder.path):latest", into: mountPoint + "/bundle",
                request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")),
                options: UnpackOptions(
                    apply: ApplyOptions(finishFilesInParallel: finishInParallel)))
        }
        #expect(error?.code == .io)
        #expect(error?.message.contains("No space left on device") == true, "\(String(describing: error))")
        if files == "big" {
            #expect(error?.context.path == "big")
        } else {
            #expect(error?.context.path?.hasPrefix("many/") == true, "\(String(describing: error))")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountPoint).isEmpty)
    }
}
