import Foundation
import Glibc
import LayerApply
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import OCIUnpackCLI
import Resolution
import RuntimeBundle
import Testing
import UnpackSystem
import UnpackTestSupport

/// What replacing, staging and cleaning up a bundle may and may not touch: mounts inside an old
/// bundle, live runs' staging directories, directories a layer made unwritable, odd targets.
@Suite struct BundleSafetyTests {
    static func oneFile(_ f: UnpackFixture, _ content: String = "new") throws {
        var t = TarBuilder()
        t.file("hello", content)
        try f.image(t)
    }

    // MARK: - The kernel refuses

    /// A disk that fills up halfway leaves no bundle and no staging directory, and the error
    /// names the file that did not fit (exit 74).
    @Test func aFullDiskLeavesNothingBehind() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        for i in 0..<50 { t.file("f\(i)", String(repeating: "x", count: 1000)) }
        try f.image(t)
        var options = UnpackOptions()
        options.apply.systemCalls = .failing(.write, errno: ENOSPC, after: 20)
        let error = #expect(throws: UnpackError.self) {
            try Unpacker().unpack(
                "oci:\(f.builder.path):latest", into: f.bundle,
                request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")), options: options)
        }
        #expect(error?.code == .io && error?.code.exitCode == 74)
        #expect(error?.context.path?.hasPrefix("f") == true, "\(String(describing: error))")
        #expect(try f.siblings().isEmpty)
    }

    // MARK: - Mounts inside an old bundle

    /// `--force` over a bundle with a bind mount inside is refused before anything is unpacked,
    /// naming the mount; the host directory, the old bundle and the parent stay as they were.
    @Test(.enabled(if: rootTestsRun, "bind mounts need root"))
    func forceRefusesABundleWithAMountInside() throws {
        let f = try UnpackFixture()
        try Self.oneFile(f, "old")
        try f.unpack()
        let host = try TemporaryDirectory()
        try "precious".write(toFile: host.path + "/data.txt", atomically: false, encoding: .utf8)
        let mountPoint = f.rootfs + "/data"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        let mounted = try Command.run("mount", ["--bind", host.path, mountPoint])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Command.run("umount", ["-l", mountPoint]) }
        try Self.oneFile(f, "new")
        let error = #expect(throws: UnpackError.self) { try f.unpack(force: true) }
        #expect(error?.code == .bundleExists)
        #expect(error?.message.contains("has mounts inside") == true, "\(String(describing: error))")
        #expect(error?.message.contains("/data") == true, "\(String(describing: error))")
        #expect(try String(contentsOfFile: host.path + "/data.txt", encoding: .utf8) == "precious")
        #expect(try f.read("hello") == "old")
        #expect(try f.siblings() == ["bundle"])
    }

    /// The tree removal itself never crosses into another mount: it stops with EXDEV naming the
    /// mount point, and what the mount holds is untouched.
    @Test(.enabled(if: rootTestsRun, "bind mounts need root"))
    func treeRemovalStopsAtAMount() throws {
        let tmp = try TemporaryDirectory()
        let host = try TemporaryDirectory()
        try "precious".write(toFile: host.path + "/data.txt", atomically: false, encoding: .utf8)
        let tree = tmp.path + "/tree"
        try FileManager.default.createDirectory(atPath: tree + "/a/m", withIntermediateDirectories: true)
        try "x".write(toFile: tree + "/a/file", atomically: false, encoding: .utf8)
        let mounted = try Command.run("mount", ["--bind", host.path, tree + "/a/m"])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Command.run("umount", ["-l", tree + "/a/m"]) }
        let error = #expect(throws: SystemError.self) { try removeDirectoryTree(tree) }
        #expect(error?.errno == EXDEV)
        #expect(error?.path == tree + "/a/m", "\(String(describing: error))")
        #expect(try String(contentsOfFile: host.path + "/data.txt", encoding: .utf8) == "precious")
    }

    /// A bundle that is itself a mount point cannot be renamed over: refused before unpacking.
    @Test(.enabled(if: rootTestsRun, "mounts need root"))
    func mountPointBundleIsRefusedFirst() throws {
        let f = try UnpackFixture()
        try Self.oneFile(f)
        try FileManager.default.createDirectory(atPath: f.bundle, withIntermediateDirectories: false)
        let mounted = try Command.run("mount", ["-t", "tmpfs", "none", f.bundle])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        defer { _ = try? Command.run("umount", ["-l", f.bundle]) }
        let error = #expect(throws: UnpackError.self) { try f.unpack(force: true) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("is a mount point") == true, "\(String(describing: error))")
        #expect(try f.siblings() == ["bundle"])
    }

    /// A bundle path that is a symlink is refused before unpacking (renaming onto it would replace
    /// the link); the layer blob is removed so that "before" is what the test sees.
    @Test func symlinkBundleIsRefusedFirst() throws {
        let f = try UnpackFixture()
        let layer = try f.oneFileImage()
        try f.builder.removeBlob(layer.descriptor.digest)
        try FileManager.default.createDirectory(atPath: f.tmp.path + "/real", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: f.bundle, withDestinationPath: f.tmp.path + "/real")
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .invalidArgument, "\(String(describing: error))")
        #expect(error?.message.contains("is a symlink") == true)
        #expect(try f.siblings() == ["bundle", "real"])
    }

    /// A bundle name near the 255-byte limit: the staging name is shortened, the bundle keeps its
    /// name.
    @Test func longBundleNamesWork() throws {
        let f = try UnpackFixture()
        try Self.oneFile(f)
        let name = String(repeating: "b", count: 250)
        let bundle = f.tmp.path + "/" + name
        var options = UnpackOptions()
        options.prefetch = true
        let result = try Unpacker().unpack(
            "oci:\(f.builder.path):latest", into: bundle,
            request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")), options: options)
        #expect(result.bundle == bundle)
        #expect(try String(contentsOfFile: bundle + "/rootfs/hello", encoding: .utf8) == "new")
        #expect(try f.siblings() == [name])
    }

    // MARK: - Stale staging directories

    /// Makes a staging directory as a run for `bundle` would, with its lock file for `target`,
    /// and returns the open lock file (locked when `lock`).
    static func fakeStaging(_ f: UnpackFixture, pid: Int32, target: String = "bundle", lock: Bool) throws -> (
        path: String, fd: Int32
    ) {
        let path = "\(f.tmp.path)/.\(target).oci-unpack-\(pid)-abc"
        try FileManager.default.createDirectory(atPath: path + "/rootfs/usr", withIntermediateDirectories: true)
        try "x".write(toFile: path + "/rootfs/usr/file", atomically: false, encoding: .utf8)
        let lockPath = path + "/.oci-unpack-lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        if lock { try #require(flock(fd, LOCK_EX) == 0) }
        let content = Array("oci-unpack staging directory, locked while its run lives\ntarget: \(target)\n".utf8)
        #expect(write(fd, content, content.count) == content.count)
        return (path, fd)
    }

    /// A live run's staging directory survives a sweep even when its pid looks dead (a run in
    /// another PID namespace, or on another host sharing the filesystem); once its lock is
    /// released, the next run removes it.
    @Test func liveStagingSurvivesTheSweepAndDeadOneDoesNot() throws {
        let f = try UnpackFixture()
        try Self.oneFile(f)
        // Pid 2^22+1 is beyond pid_max's default: kill(pid, 0) says it does not exist.
        let live = try Self.fakeStaging(f, pid: 4_194_305, lock: true)
        let otherTarget = try Self.fakeStaging(f, pid: 4_194_306, target: "bundle2", lock: false)
        close(otherTarget.fd)
        // Named like a staging directory, but not ours (no lock file): never touched.
        let unmarked = "\(f.tmp.path)/.bundle.oci-unpack-4194307-xyz"
        try FileManager.default.createDirectory(atPath: unmarked + "/keep", withIntermediateDirectories: true)
        try f.unpack()
        #expect(FileManager.default.fileExists(atPath: live.path + "/rootfs/usr/file"), "a live run lost its files")
        #expect(FileManager.default.fileExists(atPath: unmarked + "/keep"))
        #expect(FileManager.default.fileExists(atPath: otherTarget.path + "/rootfs/usr/file"))
        close(live.fd)  // The run ends.
        try f.unpack(force: true)
        #expect(!FileManager.default.fileExists(atPath: live.path), "an ended run's staging directory stays")
        #expect(FileManager.default.fileExists(atPath: unmarked + "/keep"))
    }

    /// A run whose staging directory lost its lock file (another process removed files of it)
    /// refuses to publish and reports it.
    @Test func stagingThatLostItsLockIsNotPublished() throws {
        let tmp = try TemporaryDirectory()
        let staging = try BundleStaging(target: tmp.path + "/bundle", force: false)
        #expect(unlink(staging.staging + "/.oci-unpack-lock") == 0)
        let error = #expect(throws: UnpackError.self) { try staging.publish() }
        #expect(error?.code == .io)
        #expect(error?.message.contains("lock file is gone") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: tmp.path + "/bundle"))
    }

    // MARK: - Cleanup as an ordinary user

    /// As an ordinary user, a failed unpack removes its staging directory even when a layer made
    /// directories unreadable (0000) or read-only (0555) with children.
    @Test(.enabled(if: rootTestsRun, "switches to an unprivileged user with setpriv"))
    func nonRootCleanupRemovesUnwritableDirectories() throws {
        let f = try UnpackFixture()
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: f.tmp.path)
        var t = TarBuilder()
        t.directory("locked/", mode: 0o755)
        t.file("locked/inner/file", "x")
        t.directory("locked/inner/", mode: 0o000)
        t.directory("readonly/", mode: 0o755)
        t.file("readonly/file", "x")
        t.directory("readonly/", mode: 0o555)
        let broken = try f.builder.layer(t.bytes(), compression: .gzip)
        var second = TarBuilder()
        second.file("b", "b")
        var bad = try f.builder.layer(second.bytes(), compression: .gzip)
        bad.diffID = Digest.of([1])
        try f.image([broken, bad])
        _ = chmod(f.tmp.path, 0o777)
        let r = try Command.run(
            "setpriv",
            [
                "--reuid=65534", "--regid=65534", "--clear-groups", Command.ociUnpack, "unpack", "-q", f.builder.path,
                f.bundle,
            ])
        #expect(r.status == UnpackError.Code.digestMismatch.exitCode, "\(r.stderr)")
        #expect(r.stderr.contains("[layer 1"), "\(r.stderr)")
        let left = try f.siblings()
        #expect(left.isEmpty, "left: \(left)")
    }
}
