import Foundation
import Glibc
import LayerStream
import LayoutSource
import OCIImage
import OCIUnpack
import Resolution
import RuntimeBundle
import Testing
import UnpackSystem
import UnpackTestSupport

@testable import LayerApply

/// A new file is created with its final mode, and chown/chmod are skipped when the kernel already
/// gave it the entry's owner and mode. These tests hold the cases where skipping would be wrong:
/// another umask, a setgid parent directory, a default ACL.
@Suite struct FreshMetadataTests {
    static let modes: [UInt32] = [0o644, 0o600, 0o755, 0o777, 0o664, 0o640, 0o444, 0o000, 0o4755, 0o2711, 0o1644]

    static func modesImage(_ f: UnpackFixture) throws {
        var t = TarBuilder()
        for mode in modes {
            t.add(.init(path: "m/" + String(mode, radix: 8), kind: .file(content: Array("x".utf8)), mode: mode))
        }
        t.symlink("m/link", to: "0644")
        try f.image(t)
    }

    static func expectModes(_ f: UnpackFixture, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let s = try f.snapshot()
        for mode in modes {
            #expect(
                s["m/" + String(mode, radix: 8)]?.mode == mode, "mode \(String(mode, radix: 8))",
                sourceLocation: sourceLocation)
        }
        #expect(s["m/link"]?.type == "l", sourceLocation: sourceLocation)
    }

    /// The CLI under umask 077, 022 and 000: every mode exactly as in the archive.
    @Test(arguments: ["077", "022", "000", "777"])
    func modesDoNotDependOnTheUmask(umask: String) throws {
        let f = try UnpackFixture()
        try Self.modesImage(f)
        let r = try Command.run(
            "/bin/sh",
            [
                "-c", "umask \(umask) && exec \"$0\" unpack -q \"$1\" \"$2\"", Command.ociUnpack, f.builder.path,
                f.bundle,
            ])
        #expect(r.status == 0, "\(r.stderr)")
        try Self.expectModes(f)
        // What the image does not list gets 0755 (the root, the parent `m`), config.json 0644.
        let s = try f.snapshot()
        #expect(s["."]?.mode == 0o755, "rootfs under umask \(umask)")
        #expect(s["m"]?.mode == 0o755, "unlisted parent under umask \(umask)")
        var st = stat()
        #expect(stat(f.bundle + "/config.json", &st) == 0 && st.st_mode & 0o777 == 0o644)
    }

    static func owner(_ node: TreeSnapshot.Node?) -> String { node.map { "\($0.uid):\($0.gid)" } ?? "missing" }

    /// A setgid directory gives new files its group: an entry with another group is chowned.
    @Test(.enabled(if: rootTestsRun, "restoring owners needs root"), arguments: [false, true])
    func setgidParentDoesNotDecideTheGroup(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "shared/", kind: .directory, mode: 0o2775, gid: 50))
        t.add(.init(path: "shared/root-file", kind: .file(content: []), mode: 0o644, uid: 0, gid: 0))
        t.add(.init(path: "shared/staff-file", kind: .file(content: []), mode: 0o644, uid: 0, gid: 50))
        t.add(.init(path: "shared/root-link", kind: .symlink(target: "root-file"), mode: 0o777, uid: 0, gid: 0))
        t.add(.init(path: "shared/user-file", kind: .file(content: []), mode: 0o644, uid: 1000, gid: 1000))
        t.add(.init(path: "plain/root-file", kind: .file(content: []), mode: 0o644, uid: 0, gid: 0))
        try f.image(t)
        try f.unpack(userspaceResolver: userspaceResolver)
        let s = try f.snapshot()
        #expect(s["shared"]?.mode == 0o2775 && s["shared"]?.gid == 50)
        #expect(Self.owner(s["shared/root-file"]) == "0:0")
        #expect(Self.owner(s["shared/staff-file"]) == "0:50")
        #expect(Self.owner(s["shared/root-link"]) == "0:0")
        #expect(Self.owner(s["shared/user-file"]) == "1000:1000")
        #expect(Self.owner(s["plain/root-file"]) == "0:0")
    }

    /// A root entry (`./`) that makes the root setgid: what follows at the top level gets the
    /// root's group from the kernel, so the cached prediction must be dropped with it.
    @Test(.enabled(if: rootTestsRun, "restoring owners needs root"))
    func rootEntryChangingSetgidIsSeen() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "before", kind: .file(content: []), mode: 0o644))
        t.add(.init(path: "./", kind: .directory, mode: 0o2755, gid: 50))
        t.add(.init(path: "after-root-group", kind: .file(content: []), mode: 0o644, gid: 0))
        t.add(.init(path: "after-staff-group", kind: .file(content: []), mode: 0o644, gid: 50))
        try f.image(t)
        try f.unpack()
        let s = try f.snapshot()
        #expect(Self.owner(s["after-root-group"]) == "0:0")
        #expect(Self.owner(s["after-staff-group"]) == "0:50")
    }

    /// The prediction is checked against the first file of each directory: a wrong one (here
    /// umask 0 assumed under the process's real one, standing for a filesystem that decides modes
    /// itself) would skip the chmod of 0777 and 0664 files; it turns the shortcut off instead, and
    /// every mode still comes out exact. (Needs a process umask that clears some bit.)
    @Test(.enabled(if: (Applier.readUmask() ?? 0) & 0o022 != 0, "needs a umask that clears group or other write"))
    func aWrongPredictionIsCaughtAndModesStayExact() throws {
        let f = try UnpackFixture()
        try Self.modesImage(f)
        var apply = ApplyOptions()
        apply.assumedUmask = 0
        _ = try Unpacker().unpack(
            "oci:\(f.builder.path):latest", into: f.bundle,
            request: ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64")),
            options: UnpackOptions(apply: apply))
        try Self.expectModes(f)
    }

    /// system.posix_acl_default with user::rwx group::--- other::---: files created under it
    /// would lose their group and other bits if the umask were trusted.
    static let restrictiveDefaultACL: [UInt8] = {
        var bytes: [UInt8] = [2, 0, 0, 0]  // version
        for (tag, perm): (UInt16, UInt16) in [(0x01, 7), (0x04, 0), (0x20, 0)] {
            bytes += [UInt8(tag & 0xff), UInt8(tag >> 8), UInt8(perm), 0, 0xff, 0xff, 0xff, 0xff]
        }
        return bytes
    }()

    /// Sets `restrictiveDefaultACL` on `path` (Glibc's module has no setxattr; python3 is in hack/setup).
    static func setDefaultACL(_ path: String) throws -> CommandResult {
        try Command.run(
            "python3",
            [
                "-c", "import os,sys; os.setxattr(sys.argv[1], 'system.posix_acl_default', bytes.fromhex(sys.argv[2]))",
                path, restrictiveDefaultACL.map { String(format: "%02x", $0) }.joined(),
            ])
    }

    static let aclsWork: Bool = {
        guard isRoot, let dir = try? TemporaryDirectory() else { return false }
        return (try? setDefaultACL(dir.path))?.status == 0
    }()

    @Test(.enabled(if: Required.gate("acl", available: aclsWork), "needs root and a file system with POSIX ACLs"))
    func defaultACLFromALayerDoesNotDecideModes() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(
            .init(
                path: "m/", kind: .directory, mode: 0o755,
                xattrs: ["system.posix_acl_default": Self.restrictiveDefaultACL]))
        for mode in Self.modes {
            t.add(.init(path: "m/" + String(mode, radix: 8), kind: .file(content: Array("x".utf8)), mode: mode))
        }
        t.symlink("m/link", to: "0644")
        try f.image(t)
        try f.unpack()
        try Self.expectModes(f)
    }

    @Test(.enabled(if: Required.gate("acl", available: aclsWork), "needs root and a file system with POSIX ACLs"))
    func defaultACLAboveTheBundleDoesNotDecideModes() throws {
        let f = try UnpackFixture()
        try Self.modesImage(f)
        let parent = f.tmp.path + "/acl"
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: false)
        let set = try Self.setDefaultACL(parent)
        #expect(set.status == 0, "\(set.stderr)")
        let r = try Command.run(Command.ociUnpack, ["unpack", "-q", f.builder.path, parent + "/bundle"])
        #expect(r.status == 0, "\(r.stderr)")
        let s = try TreeSnapshot(parent + "/bundle/rootfs")
        for mode in Self.modes {
            #expect(s["m/" + String(mode, radix: 8)]?.mode == mode, "mode \(String(mode, radix: 8))")
        }
    }
}
