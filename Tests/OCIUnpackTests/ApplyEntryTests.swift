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

/// Entry types and metadata, applied through the whole pipeline.
@Suite struct ApplyEntryTests {
    /// Both resolvers, with small files finished on the second thread or on the applier's.
    @Test(arguments: [false, true], [true, false])
    func entryTypesAndMetadata(userspaceResolver: Bool, finishInParallel: Bool) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "etc/", kind: .directory, mode: 0o750, uid: 7, gid: 8, mtime: 1_600_000_000))
        t.add(
            .init(
                path: "etc/conf", kind: .file(content: Array("x=1\n".utf8)), mode: 0o640, uid: 1000, gid: 1001,
                mtime: 1_500_000_000))
        t.add(.init(path: "usr/bin/su", kind: .file(content: Array("#!su".utf8)), mode: 0o4755))
        t.add(.init(path: "usr/bin/wall", kind: .file(content: Array("#!wall".utf8)), mode: 0o2755, gid: 5))
        t.add(.init(path: "tmp/", kind: .directory, mode: 0o1777))
        t.symlink("abs-link", to: "/etc/conf")
        t.symlink("rel-link", to: "../../nowhere")
        t.hardlink("etc/conf-hard", to: "etc/conf")
        t.hardlink("link-to-symlink", to: "abs-link")
        t.add(.init(path: "fifo", kind: .fifo, mode: 0o600))
        try f.image(t)
        let result = try f.unpack(userspaceResolver: userspaceResolver, finishInParallel: finishInParallel)
        #expect(result.entries == [10])
        let s = try f.snapshot()
        let etc = try #require(s["etc"])
        #expect((etc.type, etc.mode, etc.mtime) == ("d", 0o750, 1_600_000_000))
        let conf = try #require(s["etc/conf"])
        #expect((conf.type, conf.mode, conf.size, conf.mtime) == ("f", 0o640, 4, 1_500_000_000))
        #expect(try f.read("etc/conf") == "x=1\n")
        #expect(s["usr/bin/su"]?.mode == 0o4755)
        #expect(s["usr/bin/wall"]?.mode == 0o2755)
        #expect(s["tmp"]?.mode == 0o1777)
        #expect(s["usr"]?.mode == 0o755, "implicit parent directories are 0755")
        #expect(s["abs-link"]?.type == "l")
        #expect(s["abs-link"]?.content == "/etc/conf")
        #expect(s["rel-link"]?.content == "../../nowhere")
        #expect(s["etc/conf-hard"]?.inode == conf.inode)
        #expect(conf.links == 2)
        #expect(s["link-to-symlink"]?.type == "l")
        #expect(s["link-to-symlink"]?.inode == s["abs-link"]?.inode)
        #expect(s["fifo"]?.type == "p")
        #expect(s["fifo"]?.mode == 0o600)
        if isRoot {
            #expect((etc.uid, etc.gid) == (7, 8))
            #expect((conf.uid, conf.gid) == (1000, 1001))
            #expect(s["usr/bin/wall"]?.gid == 5)
        }
    }

    @Test(.enabled(if: rootTestsRun, "creating devices and restoring owners needs root"))
    func devicesOwnersAndCapabilities() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "dev/null", kind: .characterDevice(major: 1, minor: 3), mode: 0o666))
        t.add(.init(path: "dev/loop9", kind: .blockDevice(major: 7, minor: 9), mode: 0o660, gid: 6))
        // security.capability: cap_net_bind_service+ep, VFS_CAP_REVISION_2.
        let capability: [UInt8] = [0x01, 0, 0, 0x02, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        t.add(
            .init(
                path: "bin/ping", kind: .file(content: Array("ping".utf8)), mode: 0o755, uid: 0, gid: 0,
                xattrs: ["security.capability": capability, "user.origin": Array("test".utf8)]))
        t.add(
            .init(
                path: "bin/owned", kind: .file(content: []), mode: 0o4750, uid: 123, gid: 456,
                xattrs: ["security.capability": capability]))
        try f.image(t)
        try f.unpack()
        let s = try f.snapshot()
        #expect(s["dev/null"]?.type == "c")
        #expect(s["dev/null"]?.rdev == 0x103, "makedev(1, 3)")
        #expect(s["dev/null"]?.mode == 0o666)
        #expect(s["dev/loop9"]?.type == "b")
        #expect(s["dev/loop9"]?.gid == 6)
        #expect(extendedAttribute(f.rootfs + "/bin/ping", "security.capability") == capability)
        #expect(extendedAttribute(f.rootfs + "/bin/ping", "user.origin") == Array("test".utf8))
        // chown clears setuid and capabilities: both must survive because they are set after it.
        #expect(s["bin/owned"]?.mode == 0o4750)
        #expect((s["bin/owned"]?.uid, s["bin/owned"]?.gid) == (123, 456))
        #expect(extendedAttribute(f.rootfs + "/bin/owned", "security.capability") == capability)
    }

    @Test func longNamesAndNonUTF8Bytes() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        let long = String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 150)
        t.file(long, "long")
        t.symlink("long-link", to: "/" + String(repeating: "t", count: 200))
        // Names are bytes: Latin-1 é (0xe9, not UTF-8) and an invalid 0xff, kept as they are.
        var latin1 = TarBuilder.Entry(path: "x", kind: .file(content: Array("latin1".utf8)))
        latin1.pathBytes = Array("caf".utf8) + [0xe9, 0xff]
        t.add(latin1)
        try f.image(t)
        try f.unpack()
        #expect(try f.read(long) == "long")
        // (TreeSnapshot lists names through Foundation, which cannot hold the non-UTF-8 one.)
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: f.rootfs + "/long-link")
                == "/" + String(repeating: "t", count: 200))
        var st = stat()
        let name = (Array((f.rootfs + "/caf").utf8) + [0xe9, 0xff, 0]).map { CChar(bitPattern: $0) }
        let rc = name.withUnsafeBufferPointer { buffer in buffer.baseAddress.map { lstat($0, &st) } ?? -1 }
        #expect(rc == 0, "the name's bytes on disk are the entry's")
        #expect(st.st_size == 6)
    }

    @Test func sparseFileFromGNUTarKeepsHoles() throws {
        let f = try UnpackFixture()
        let work = f.tmp.path + "/sparse-src"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let fd = open(work + "/big", O_WRONLY | O_CREAT, 0o644)
        #expect(fd >= 0)
        _ = "head".withCString { pwrite(fd, $0, 4, 0) }
        _ = "tail".withCString { pwrite(fd, $0, 4, 64 << 20) }
        ftruncate(fd, (64 << 20) + (8 << 20))
        close(fd)
        let tarPath = f.tmp.path + "/sparse.tar"
        let r = try Command.run("tar", ["--sparse", "--format=pax", "-C", work, "-cf", tarPath, "big"])
        #expect(r.status == 0, "\(r.stderr)")
        let tar = Array(try Data(contentsOf: URL(fileURLWithPath: tarPath)))
        try f.image([try f.builder.layer(tar, compression: .zstd)])
        try f.unpack()
        var st = stat()
        #expect(stat(f.rootfs + "/big", &st) == 0)
        #expect(st.st_size == (64 << 20) + (8 << 20))
        #expect(st.st_blocks * 512 < 1 << 20, "holes stay holes")
        let data = try Data(contentsOf: URL(fileURLWithPath: f.rootfs + "/big"))
        #expect(Array(data.prefix(4)) == Array("head".utf8))
        #expect(Array(data[(64 << 20)..<((64 << 20) + 4)]) == Array("tail".utf8))
    }

    /// Small sparse files (the finisher thread writes their blocks; the applier's thread when
    /// that is off): data where the archive has it, holes elsewhere, including a leading and a
    /// trailing hole.
    @Test(arguments: [true, false])
    func smallSparseFilesKeepHoles(finishInParallel: Bool) throws {
        let f = try UnpackFixture()
        let work = f.tmp.path + "/sparse-src"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        // name: (offset, text) pairs; every file is 60 KiB long.
        let layouts: [String: [(Int, String)]] = [
            "inner-hole": [(0, "head"), (40 << 10, "mid")],
            "leading-hole": [(16 << 10, "data"), (44 << 10, "more")],
        ]
        for (name, pieces) in layouts {
            let fd = open(work + "/" + name, O_WRONLY | O_CREAT, 0o644)
            #expect(fd >= 0)
            for (offset, text) in pieces { _ = text.withCString { pwrite(fd, $0, strlen($0), off_t(offset)) } }
            ftruncate(fd, 60 << 10)
            close(fd)
        }
        let tarPath = f.tmp.path + "/sparse.tar"
        let r = try Command.run(
            "tar", ["--sparse", "--format=pax", "-C", work, "-cf", tarPath, "inner-hole", "leading-hole"])
        #expect(r.status == 0, "\(r.stderr)")
        let tar = Array(try Data(contentsOf: URL(fileURLWithPath: tarPath)))
        try f.image([try f.builder.layer(tar, compression: .gzip)])
        try f.unpack(finishInParallel: finishInParallel)
        for (name, pieces) in layouts {
            let data = Array(try Data(contentsOf: URL(fileURLWithPath: f.rootfs + "/" + name)))
            var expected = [UInt8](repeating: 0, count: 60 << 10)
            for (offset, text) in pieces {
                expected.replaceSubrange(offset..<(offset + text.utf8.count), with: text.utf8)
            }
            #expect(data == expected, "\(name)")
            var st = stat()
            #expect(stat(f.rootfs + "/" + name, &st) == 0)
            #expect(st.st_blocks * 512 < 60 << 10, "\(name): holes stay holes")
        }
    }

    /// A sparse map (pax GNU.sparse, format 0.1) that puts more data in an entry than its size:
    /// refused, naming the entry, on both the buffered (small file) and the streaming path.
    @Test(arguments: [("0,1000", 100, 1000), ("0,800,100,800", 1000, 1600), ("0,100000", 100, 100_000)])
    func sparseMapBeyondTheSizeIsRefused(map: String, size: Int, stored: Int) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        var entry = TarBuilder.Entry(path: "crafted", kind: .file(content: [UInt8](repeating: 0x78, count: stored)))
        entry.pax = [
            ("GNU.sparse.size", String(size)), ("GNU.sparse.numblocks", String(map.split(separator: ",").count / 2)),
            ("GNU.sparse.map", map),
        ]
        t.add(entry)
        try f.image(t)
        try f.expectFailure(.corruptLayer, "tar entry crafted has data beyond its size")
    }

    @Test func collisionsReplaceAndDirectoriesMerge() throws {
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.add(.init(path: "d/", kind: .directory, mode: 0o700, uid: 1))
        lower.file("d/keep", "lower child")
        lower.directory("was-dir/")
        lower.file("was-dir/child", "x")
        lower.file("was-file", "x")
        lower.symlink("was-link", to: "d")
        lower.file("target", "hardlinked")
        lower.hardlink("was-hardlink", to: "target")
        var upper = TarBuilder()
        upper.add(.init(path: "d/", kind: .directory, mode: 0o755, uid: 2, mtime: 1_234_567_890))
        upper.file("was-dir", "now a file")
        upper.directory("was-file/")
        upper.file("was-link", "file replaces the symlink, not its target")
        upper.file("was-hardlink", "new content, old inode untouched")
        try f.image(lower, upper)
        try f.unpack()
        let s = try f.snapshot()
        #expect(s["d"]?.mode == 0o755, "directory attributes are replaced")
        #expect(s["d"]?.mtime == 1_234_567_890)
        #expect(try f.read("d/keep") == "lower child", "directory children are kept")
        #expect(s["was-dir"]?.type == "f")
        #expect(s["was-dir/child"] == nil)
        #expect(s["was-file"]?.type == "d")
        #expect(s["was-link"]?.type == "f")
        #expect(s["d"]?.type == "d")
        #expect(try f.read("target") == "hardlinked", "writing a replaced hardlink must not change the other name")
        #expect(s["target"]?.links == 1)
        if isRoot { #expect(s["d"]?.uid == 2) }
    }

    @Test func dotAndRootEntries() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "./", kind: .directory, mode: 0o751, mtime: 1_111_111_111))
        t.file("./a/./b", "b")
        try f.image(t)
        try f.unpack()
        let s = try f.snapshot()
        #expect(s["."]?.mode == 0o751)
        #expect(s["."]?.mtime == 1_111_111_111)
        #expect(try f.read("a/b") == "b")
    }

    @Test func fileAtRootPathIsRefused() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file(".", "not a directory")
        try f.image(t)
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .unsafePath, "\(String(describing: error))")
        #expect(try f.siblings().isEmpty)
    }

    /// Names are bytes: UTF-8 in ustar and in pax records arrives unchanged, and a ustar name that
    /// is not UTF-8 is created with exactly its bytes, as GNU tar and umoci do.
    @Test(arguments: [false, true])
    func namesAreTheArchiveBytes(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        let long = "d/" + String(repeating: "é", count: 60) + "/ünïcödé-файл"
        #expect(long.utf8.count > 100, "the long name goes through a pax record")
        let raw: [UInt8] = Array("d/latin1-".utf8) + [0xE9, 0xFF] + Array(".txt".utf8)
        var t = TarBuilder()
        t.file("d/café naïve.txt", "short")
        t.file(long, "long")
        var latin1 = TarBuilder.Entry(path: "", kind: .file(content: Array("raw".utf8)))
        latin1.pathBytes = raw
        t.add(latin1)
        try f.image(t)
        try f.unpack(userspaceResolver: userspaceResolver)
        #expect(try f.read("d/café naïve.txt") == "short")
        #expect(try f.read(long) == "long")
        let names = try FileManager.default.contentsOfDirectory(atPath: f.rootfs + "/d").sorted()
        #expect(names.count == 3, "\(names)")
        let rawPath = Array((f.rootfs + "/").utf8) + raw + [0]
        let fd = rawPath.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_CLOEXEC) }
        }
        #expect(fd >= 0, "the name with bytes E9 FF exists as those bytes")
        if fd >= 0 {
            var buffer = [UInt8](repeating: 0, count: 8)
            let n = read(fd, &buffer, 8)
            close(fd)
            #expect(Array(buffer.prefix(max(n, 0))) == Array("raw".utf8))
        }
    }

    @Test func namesAreConfinedToTheRoot() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("../../escape-dotdot", "confined")
        t.file("/abs/escape-absolute", "confined")
        t.symlink("rootlink", to: "/")
        t.file("rootlink/through-root-symlink", "confined")
        t.symlink("up", to: "../../../../..")
        t.file("up/through-up-symlink", "confined")
        try f.image(t)
        try f.unpack()
        #expect(try f.read("escape-dotdot") == "confined")
        #expect(try f.read("abs/escape-absolute") == "confined")
        #expect(try f.read("through-root-symlink") == "confined")
        #expect(try f.read("through-up-symlink") == "confined")
        #expect(try f.siblings() == ["bundle"])
        #expect(!FileManager.default.fileExists(atPath: f.tmp.path + "/escape-dotdot"))
    }

    @Test func hardlinkToMissingTargetFails() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.hardlink("link", to: "nope")
        try f.image(t)
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .corruptLayer)
        #expect(error?.message == "hardlink link points at nope, which does not exist")
        #expect(error?.context.layerIndex == 0)
        #expect(error?.context.path == "link")
    }
}

/// What is skipped is said: each warning is asserted, not only the tree.
@Suite struct WarningTests {
    @Test func rootlessOwnersAreRecordedAndUnsupportedXattrsAreWarnings() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("owned", "x", uid: 1000, gid: 1000)
        t.file("other", "y", uid: 1001, gid: 1001)
        t.add(.init(path: "tagged", kind: .file(content: []), xattrs: ["nosuchnamespace.x": Array("1".utf8)]))
        t.add(.init(path: "d/.wh..wh.plnk", kind: .file(content: [])))
        try f.image(t)
        let log = WarningLog()
        var options = UnpackOptions(
            apply: ApplyOptions(ownership: .rootless, warn: { log.append($0) }))
        options.prefetch = true
        _ = try Unpacker().unpack(
            "oci:\(f.builder.path):latest", into: f.bundle,
            request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")), options: options)
        let warnings = log.all
        #expect(!warnings.contains { $0.contains("owner") }, "rootless records owners without a warning: \(warnings)")
        // umoci's encoding: uid 1000 = e8 07, gid 1000 = e8 07.
        #expect(try f.xattr("owned", "user.rootlesscontainers") == [0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07])
        #expect(try f.xattr("other", "user.rootlesscontainers") == [0x08, 0xe9, 0x07, 0x10, 0xe9, 0x07])
        #expect(try f.xattr("tagged", "user.rootlesscontainers") == nil, "root's own files need no record")
        #expect(warnings.contains { $0.hasPrefix("xattr nosuchnamespace.x on tagged not restored: ") }, "\(warnings)")
        #expect(warnings.contains("ignoring aufs metadata entry d/.wh..wh.plnk"), "\(warnings)")
        #expect(try f.snapshot().paths == [".", "other", "owned", "tagged"])
    }
}
