import CCap
import Foundation
import Glibc
import LayerApply
import OCIImage
import OCIUnpack
import Testing
import UnpackSystem
import UnpackTestSupport

/// Rootless unpacks. hack/test runs this suite again as uid 65534, where the kernel enforces the
/// permissions that root's run only records.
@Suite struct RootlessTests {
    /// The mode bits of `path` in the rootfs (not following a symlink).
    static func mode(_ f: UnpackFixture, _ path: String) -> mode_t? {
        var st = stat()
        guard lstat(f.rootfs + "/" + path, &st) == 0 else { return nil }
        return st.st_mode & 0o7777
    }

    /// Opens every directory below the rootfs to its owner again, so that an unprivileged test
    /// can look inside and its temporary directory can be removed.
    static func reopen(_ f: UnpackFixture, _ paths: [String]) {
        for path in paths { chmod(f.rootfs + "/" + path, 0o755) }
    }

    /// Fedora's `/root` is 0550: a layer that makes a directory read-only (or unsearchable)
    /// before adding to it, and a later layer that adds more, both unpack; every directory gets
    /// the mode the image gave it, whatever the order of entries and layers.
    @Test func directoriesClosedToTheOwnerGetTheirModesAtTheEnd() throws {
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.directory("root/", mode: 0o550)
        lower.file("root/.bashrc", "# bash\n")
        lower.directory("ro/", mode: 0o555)
        lower.directory("ro/sub/", mode: 0o500)
        lower.file("ro/sub/f", "f", mode: 0o400)
        lower.directory("none/", mode: 0o000)
        lower.file("none/x", "x")
        lower.directory("sticky/", mode: 0o1555)
        var upper = TarBuilder()
        upper.file("root/.profile", "# profile\n")
        upper.file("ro/late", "late")
        upper.file("none/y", "y")
        upper.whiteout("ro/sub/f")
        try f.image(lower, upper)
        try f.unpack(ownership: .rootless)
        #expect(Self.mode(f, "root") == 0o550)
        #expect(Self.mode(f, "ro") == 0o555)
        #expect(Self.mode(f, "ro/sub") == 0o500)
        #expect(Self.mode(f, "none") == 0o000)
        #expect(Self.mode(f, "sticky") == 0o1555)
        Self.reopen(f, ["root", "ro", "ro/sub", "none", "sticky"])
        #expect(try f.read("root/.bashrc") == "# bash\n")
        #expect(try f.read("root/.profile") == "# profile\n")
        #expect(try f.read("ro/late") == "late")
        #expect(try f.read("none/x") == "x" && f.read("none/y") == "y")
        #expect(Self.mode(f, "ro/sub/f") == nil, "the whiteout reached into a directory closed to its owner")
    }

    /// A restricted directory that a later layer removes, replaces or moves a symlink onto keeps
    /// no claim on the path: the new directory keeps its own mode, and a symlink to a directory
    /// outside the root is never followed by the final chmod.
    @Test func aRemovedRestrictedDirectoryLeavesNothingToChmod() throws {
        let outside = try TemporaryDirectory()
        chmod(outside.path, 0o777)
        defer { chmod(outside.path, 0o700) }
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.directory("a/", mode: 0o555)
        lower.directory("b/", mode: 0o500)
        lower.directory("c/", mode: 0o555)
        lower.directory("d/", mode: 0o555)
        lower.directory("d/e/", mode: 0o500)
        lower.directory("o/", mode: 0o555)
        lower.directory("o/p/", mode: 0o500)
        var upper = TarBuilder()
        upper.whiteout("a")
        upper.directory("a/", mode: 0o755)
        upper.file("b", "now a file", mode: 0o600)
        upper.whiteout("c")
        upper.symlink("c", to: outside.path)
        upper.file("d", "a file over a tree")
        upper.opaque("o")
        upper.directory("o/p/", mode: 0o750)
        try f.image(lower, upper)
        try f.unpack(ownership: .rootless)
        #expect(Self.mode(f, "a") == 0o755)
        #expect(Self.mode(f, "b") == 0o600)
        #expect(try f.read("d") == "a file over a tree")
        #expect(Self.mode(f, "o") == 0o555)
        #expect(Self.mode(f, "o/p") == 0o750)
        var st = stat()
        #expect(
            stat(outside.path, &st) == 0 && st.st_mode & 0o7777 == 0o777, "chmod followed a symlink out of the root")
        Self.reopen(f, ["o"])
    }

    /// Owners are recorded as umoci records them (files and directories; root's own get none, an
    /// image's record is replaced); symlinks and FIFOs, which the kernel gives no `user.*` xattrs,
    /// unpack without one.
    @Test func ownersAreRecordedInTheRootlessXattr() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.directory("home/app/", mode: 0o750, uid: 1000, gid: 1000)
        t.file("home/app/notes", "n", mode: 0o440, uid: 1000, gid: 100)
        t.file("etc/shadow", "s", mode: 0o640, uid: 0, gid: 42)
        t.file("usr/bin/tool", "t", mode: 0o4755, uid: 7, gid: 0)
        t.file("mine", "root's own")
        t.add(
            .init(
                path: "forged", kind: .file(content: Array("f".utf8)),
                xattrs: [RootlessOwnerRecord.name: [0x08, 0x05, 0x10, 0x05]]))
        t.add(.init(path: "link", kind: .symlink(target: "mine"), uid: 1000, gid: 1000))
        t.add(.init(path: "fifo", kind: .fifo, mode: 0o600, uid: 1000, gid: 1000))
        try f.image(t)
        try f.unpack(ownership: .rootless)
        let record = RootlessOwnerRecord.name
        #expect(try f.xattr("home/app", record) == [0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07])
        #expect(try f.xattr("home/app/notes", record) == [0x08, 0xe8, 0x07, 0x10, 0x64])
        // Root's uid as NoopID (uint32 max), as umoci writes it.
        #expect(try f.xattr("etc/shadow", record) == [0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x10, 0x2a])
        #expect(try f.xattr("usr/bin/tool", record) == [0x08, 0x07, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f])
        #expect(try f.xattr("mine", record) == nil)
        #expect(try f.xattr("forged", record) == nil, "the image's own record is not kept")
        #expect(Self.mode(f, "home/app/notes") == 0o440, "the record went on before the mode took write away")
        #expect(Self.mode(f, "usr/bin/tool") == 0o4755)
        #expect(Self.mode(f, "fifo") == 0o600)
        let decoded = try #require(RootlessOwnerRecord.owner(from: f.xattr("etc/shadow", record) ?? []))
        #expect(decoded.uid == 0 && decoded.gid == 42)
        #expect(RootlessOwnerRecord.value(uid: 0, gid: 0) == nil)
    }

    /// What only root in the initial user namespace may set (devices, `trusted.*`, file
    /// capabilities) is skipped with one warning each, naming the first paths.
    @Test func privilegedNodesAndXattrsAreSummarised() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.add(.init(path: "dev/null", kind: .characterDevice(major: 1, minor: 3), mode: 0o666))
        t.add(.init(path: "dev/zero", kind: .characterDevice(major: 1, minor: 5), mode: 0o666))
        let capability: [UInt8] = [0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        t.add(.init(path: "ping", kind: .file(content: Array("p".utf8)), xattrs: [FileCapability.name: capability]))
        t.add(.init(path: "trusted", kind: .file(content: Array("t".utf8)), xattrs: ["trusted.x": [1]]))
        try f.image(t)
        let log = WarningLog()
        try f.unpack(warnings: log, ownership: .rootless)
        if IDMapping.fullyPrivileged {
            // Root asked for a rootless tree still sets what it can.
            #expect(Self.mode(f, "dev/null") == 0o666)
            #expect(try f.xattr("ping", FileCapability.name) == capability)
        } else {
            #expect(
                log.all.contains(
                    "skipped 2 device nodes (creating devices needs root in the initial user namespace): dev/null, dev/zero"
                ), "\(log.all)")
            #expect(
                log.all.contains(
                    "skipped trusted.* and security.capability xattrs of 2 entries (setting them needs root in the initial user namespace): ping, trusted"
                ), "\(log.all)")
            #expect(try f.read("ping") == "p")
        }
    }
}

/// The maps `--userns auto` asks newuidmap and newgidmap for.
@Suite struct SubordinateIDTests {
    @Test func theUsersRangesFollowItsOwnID() {
        let text = """
            alice:100000:65536
            # not a range
            1001:300000:10
            bob:200000:65536
            alice:500000:0
            alice:600000:5
            malformed
            """
        let alice = UserNamespace.subordinateRanges(in: text, name: "alice", id: 1001)
        #expect(alice.map { "\($0.start):\($0.count)" } == ["100000:65536", "300000:10", "600000:5"])
        #expect(UserNamespace.subordinateRanges(in: text, name: nil, id: 1002).isEmpty)
        let map = UserNamespace.layout(id: 1001, ranges: alice)
        #expect(
            map == [
                .init(containerID: 0, hostID: 1001, size: 1), .init(containerID: 1, hostID: 100_000, size: 65536),
                .init(containerID: 65537, hostID: 300_000, size: 10),
                .init(containerID: 65547, hostID: 600_000, size: 5),
            ])
    }
}

/// Id-mapped unpacks as root: owners shifted on disk, the maps in config.json.
@Suite(.enabled(if: rootTestsRun && IDMapping.fullyPrivileged, "chown to any host id needs root"))
struct IDMappedTests {
    static func maps() throws -> (uids: IDMap, gids: IDMap) {
        (
            try IDMap([.init(containerID: 0, hostID: 100_000, size: 65536)], name: "--uid-map"),
            try IDMap(
                [
                    .init(containerID: 0, hostID: 200_000, size: 1000),
                    .init(containerID: 1000, hostID: 300_000, size: 10),
                ],
                name: "--gid-map")
        )
    }

    @Test func ownersAreShiftedAndTheMapsWritten() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("usr/bin/tool", "t", mode: 0o4755, uid: 7, gid: 1005)
        t.directory("home/app/", mode: 0o750, uid: 1000, gid: 1000)
        t.add(.init(path: "link", kind: .symlink(target: "usr"), uid: 5, gid: 5))
        let capability: [UInt8] = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        t.add(.init(path: "ping", kind: .file(content: Array("p".utf8)), xattrs: [FileCapability.name: capability]))
        try f.image(t)
        let log = WarningLog()
        try f.unpack(
            warnings: log, ownership: .mapped(uids: try Self.maps().uids, gids: try Self.maps().gids, unmapped: .refuse)
        )
        // The fixture's directory is 0700: a runtime's init (host uid 100000) could not reach the bundle.
        #expect(
            log.all.contains {
                $0.hasPrefix("a runtime cannot start this bundle: its init runs as host uid 100000")
                    && $0.contains("may not pass through ") && $0.contains("oci-unpack-test.")
                    && $0.contains("(mode 700)")
            }, "\(log.all)")
        let s = try f.snapshot()
        func owner(_ path: String) -> String? { s[path].map { "\($0.uid):\($0.gid)" } }
        #expect(owner(".") == "100000:200000", "the unlisted root belongs to the container's root")
        #expect(owner("usr") == "100000:200000", "so do unlisted parents")
        #expect(owner("usr/bin/tool") == "100007:300005" && s["usr/bin/tool"]?.mode == 0o4755)
        #expect(owner("home/app") == "101000:300000")
        #expect(owner("link") == "100005:200005")
        // Revision 3 (0x03000000 | effective), the same sets, and the container root's host uid.
        let expected = [1, 0, 0, 3] + capability[4..<20] + [0xa0, 0x86, 0x01, 0x00]
        #expect(try f.xattr("ping", FileCapability.name) == Array(expected))
        // libcap reads it as capabilities of the namespace whose root is host uid 100000.
        let caps = cap_get_file(f.rootfs + "/ping")
        #expect(caps != nil && cap_get_nsowner(caps) == 100_000)
        if let caps { cap_free(UnsafeMutableRawPointer(caps)) }
        // The bundle directory: 0710 for the container root's group, which the runtime's init needs.
        var st = stat()
        #expect(stat(f.bundle, &st) == 0 && st.st_mode & 0o7777 == 0o710 && st.st_gid == 200_000)
        let config = try JSONValue(
            parsing: Array(try Data(contentsOf: URL(fileURLWithPath: f.bundle + "/config.json"))))
        #expect(
            config["linux"]?["uidMappings"]
                == .array([.object(["containerID": .int(0), "hostID": .int(100_000), "size": .int(65536)])]))
        #expect(config["linux"]?["gidMappings"]?.arrayValue?.count == 2)
        #expect(config["linux"]?["namespaces"]?.arrayValue?.contains(.object(["type": .string("user")])) == true)
    }

    @Test func idsOutsideTheMapsAreRefusedOrOverflow() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.file("ok", "1", uid: 1, gid: 1)
        t.file("far/away", "2", uid: 70000, gid: 1)
        try f.image(t)
        let maps = (uids: IDMap.single(containerID: 0, hostID: 100_000, size: 65536), gids: try Self.maps().gids)
        let error = try f.expectFailure(
            .invalidArgument, "tar entry far/away is owned by uid 70000, which --uid-map does not map",
            ownership: .mapped(uids: maps.uids, gids: maps.gids, unmapped: .refuse))
        #expect(error?.context.path == "far/away")
        try f.unpack(ownership: .mapped(uids: maps.uids, gids: maps.gids, unmapped: .overflow))
        #expect(try f.snapshot()["far/away"].map { "\($0.uid):\($0.gid)" } == "65534:200001")
    }

    @Test func mapsAreCheckedAsTheKernelChecksThem() throws {
        #expect(throws: UnpackError.self) { try IDMap.Range(parsing: "0:100000") }
        #expect(throws: UnpackError.self) { try IDMap.Range(parsing: "0:100000:0") }
        #expect(throws: UnpackError.self) { try IDMap.Range(parsing: "-1:100000:1") }
        let overlapping = #expect(throws: UnpackError.self) {
            try IDMap([.init(parsing: "0:100000:100"), .init(parsing: "50:200000:10")], name: "--uid-map")
        }
        #expect(overlapping?.message == "--uid-map ranges 0:100000:100 and 50:200000:10 overlap inside the container")
        #expect(throws: UnpackError.self) {
            try IDMap([.init(containerID: 0, hostID: UInt32.max, size: 2)], name: "--uid-map")
        }
        let map = try IDMap([.init(parsing: "0:100000:10"), .init(parsing: "10:5:1")], name: "--uid-map")
        #expect(map.hostID(for: 9) == 100_009 && map.hostID(for: 10) == 5 && map.hostID(for: 11) == nil)
    }
}
