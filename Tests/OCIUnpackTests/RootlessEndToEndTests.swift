import Foundation
import Glibc
import LayerApply
import OCIImage
import OCIUnpack
import Testing
import UnpackSystem
import UnpackTestSupport

/// Rootless and id-mapped bundles against the real tools: runc in rootless mode, runc with a
/// user namespace, and `umoci unpack --rootless`, all as an ordinary user (uid 65534) where the
/// issue is privilege.
@Suite(.enabled(if: rootTestsRun, "switches to an ordinary user with setpriv"), .serialized)
struct RootlessEndToEndTests {
    /// A directory uid 65534 may work in, with a copy of the binary it may run (the checkout may
    /// sit where that user cannot reach).
    struct Workspace {
        let tmp: TemporaryDirectory
        let binary: String

        init() throws {
            tmp = try TemporaryDirectory()
            _ = chmod(tmp.path, 0o777)
            binary = tmp.path + "/oci-unpack"
            let copy = try Command.run("cp", [Command.ociUnpack, binary])
            try #require(copy.status == 0, "\(copy.stderr)")
            _ = chmod(binary, 0o755)
            _ = mkdir(tmp.path + "/run", 0o700)
            _ = chown(tmp.path + "/run", 65534, 65534)
        }

        /// The example image, written where uid 65534 can read it.
        func exampleLayout() throws -> String {
            let layout = tmp.path + "/layout"
            try ExampleImage.write(to: layout, busybox: try ExampleImage.hostBusybox())
            _ = try Command.run("chmod", ["-R", "a+rX", layout])
            return layout
        }

        /// `tool arguments` as uid/gid 65534, with a runtime directory of its own.
        func asNobody(_ tool: String, _ arguments: [String]) throws -> CommandResult {
            try Command.run(
                "setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=\(tmp.path)",
                    "XDG_RUNTIME_DIR=\(tmp.path)/run", tool,
                ] + arguments)
        }
    }

    /// A layer store populated by an ordinary user as root in a user namespace of its own
    /// (`unshare -r -m`): its layers carry `user.overlay.*` xattrs (overlayfs's `userxattr`), and
    /// the bundle's overlay, mounted inside that namespace, gives the flattened tree. (A host mount
    /// is not possible there: such a user writes the bundle with --no-mount and mounts
    /// rootfs.mount.json inside its own namespace.)
    @Test func aStoreInAUserNamespaceMountsTheFlattenedTree() throws {
        let w = try Workspace()
        let layout = try w.exampleLayout()
        let t = w.tmp.path
        let script = """
            set -e
            "$0" unpack -q --platform linux/amd64 --store \(t)/store oci:\(layout):latest \(t)/stored
            "$0" unpack -q --platform linux/amd64 oci:\(layout):latest \(t)/flat
            "$0" tree-digest --ignore-mtime --rootfs \(t)/stored/rootfs
            "$0" tree-digest --ignore-mtime --rootfs \(t)/flat/rootfs
            grep -h overlayXattrs \(t)/store/layers/*/layer.json | head -1
            "$0" unpack -q --platform linux/amd64 --store \(t)/store --no-mount oci:\(layout):latest \(t)/described
            """
        let run = try w.asNobody("unshare", ["-r", "-m", "sh", "-c", script, w.binary])
        try #require(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count == 3, "\(run.stdout)")
        #expect(lines[0].split(separator: " ").first == lines[1].split(separator: " ").first, "\(lines)")
        #expect(lines[2].contains("\"overlayXattrs\":\"user\""), "\(lines[2])")
        #expect(FileManager.default.fileExists(atPath: t + "/described/rootfs.mount.json"))
    }

    /// The example image unpacked by an ordinary user (rootless by default) starts under
    /// rootless runc, with `runc --root` in that user's own directory: the user is root inside,
    /// and the files the image gave uid 1000 carry that owner in their record.
    @Test func aRootlessBundleStartsUnderRootlessRunc() throws {
        let w = try Workspace()
        let layout = try w.exampleLayout()
        let bundle = w.tmp.path + "/bundle"
        let unpack = try w.asNobody(
            w.binary,
            ["unpack", "-q", "--platform", "linux/amd64", "--user", "root", "oci:\(layout):latest", bundle, "--"]
                + ["id; cat /app/message.txt; cat /proc/self/uid_map"])
        try #require(unpack.status == 0, "\(unpack.stderr)")
        let validation = try RuncEndToEndTests.validate(bundle + "/config.json")
        #expect(validation.status == 0, "\(validation.stdout)\(validation.stderr)")
        var st = stat()
        #expect(stat(bundle + "/rootfs/app/message.txt", &st) == 0 && st.st_uid == 65534)
        let record = try CSys.lgetxattr(bundle + "/rootfs/app/message.txt", RootlessOwnerRecord.name)
        #expect(record.flatMap(RootlessOwnerRecord.owner(from:)).map { "\($0.uid):\($0.gid)" } == "1000:1000")
        let run = try w.asNobody(
            "runc", ["--root", w.tmp.path + "/run/runc", "run", "--bundle", bundle, "rootless-\(getpid())"])
        #expect(run.status == 0, "rootless runc: \(run.stderr)")
        #expect(run.stdout.hasPrefix("uid=0(root) gid=0(root)"), "\(run.stdout)")
        #expect(run.stdout.contains("unpacked by oci-unpack\n"), "\(run.stdout)")
        #expect(run.stdout.contains("0      65534          1"), "one id mapped, the user's own: \(run.stdout)")
    }

    /// Issue: an image whose user is not root (the example's named user `app`, uid 1000, from its
    /// /etc/passwd; or `1000:1000`), unpacked rootless, gave a bundle rootless runc refused
    /// ("cannot set uid to unmapped user in user namespace"). Only the user's own id is mapped, so
    /// the process runs as the container's root, with a warning that names the image's user.
    @Test(arguments: [[], ["--user", "1000:1000"]])
    func aRootlessBundleOfANonRootImageStarts(user: [String]) throws {
        let w = try Workspace()
        let layout = try w.exampleLayout()
        let bundle = w.tmp.path + "/bundle"
        let unpack = try w.asNobody(
            w.binary,
            ["unpack", "-q", "--platform", "linux/amd64"] + user + ["oci:\(layout):latest", bundle, "--"]
                + ["id; cat /app/message.txt"])
        try #require(unpack.status == 0, "\(unpack.stderr)")
        let named = user.isEmpty ? "the image's User app (uid 1000, gid 1000)" : "--user 1000:1000 (uid 1000, gid 1000)"
        #expect(unpack.stderr.contains("\(named) is not mapped in the bundle's user namespace"), "\(unpack.stderr)")
        #expect(unpack.stderr.contains("runs as root (0:0) inside the container"), "\(unpack.stderr)")
        let config = try JSONValue(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))))
        #expect(config["process"]?["user"]?["uid"] == .int(0))
        #expect(config["process"]?["user"]?["gid"] == .int(0))
        let run = try w.asNobody(
            "runc", ["--root", w.tmp.path + "/run/runc", "run", "--bundle", bundle, "nonroot-\(getpid())"])
        #expect(run.status == 0, "rootless runc: \(run.stderr)")
        #expect(run.stdout.hasPrefix("uid=0(root) gid=0(root)"), "\(run.stdout)")
        #expect(run.stdout.contains("unpacked by oci-unpack\n"), "\(run.stdout)")
    }

    /// `--uid-map`/`--gid-map` as root: the owners are shifted on disk and runc starts the bundle
    /// in a user namespace with those maps, where the image's owners and its user are as built.
    @Test func anIDMappedBundleStartsInItsUserNamespace() throws {
        let c = try RuncEndToEndTests.Container()
        // The runtime's init runs as host uid 100000: it must be able to pass through the
        // bundle's parents (the bundle itself is 0710 for its group).
        _ = chmod(c.tmp.path, 0o755)
        let (unpack, bundle) = try c.unpack(
            "amd64-zstd", ["--uid-map", "0:100000:65536", "--gid-map", "0:100000:65536"],
            command: ["id; stat -c '%u %g' /app/message.txt /bin/busybox; cat /proc/self/uid_map"], into: "mapped")
        try #require(unpack.status == 0, "\(unpack.stderr)")
        #expect(try RuncEndToEndTests.validate(bundle + "/config.json").status == 0)
        let s = try TreeSnapshot(bundle + "/rootfs")
        #expect(s["app/message.txt"].map { "\($0.uid):\($0.gid)" } == "101000:101000")
        #expect(s["bin/busybox"].map { "\($0.uid):\($0.gid)" } == "100000:100000")
        let run = try c.run(bundle, id: "oci-unpack-\(getpid())-mapped")
        #expect(run.status == 0, "runc: \(run.stderr)")
        #expect(run.stdout.hasPrefix("uid=1000(app) gid=1000(app) groups=50(staff)\n1000 1000\n0 0\n"), "\(run.stdout)")
        #expect(run.stdout.contains("0     100000      65536"), "\(run.stdout)")
    }

    /// The umoci-built image (owners, setuid, devices, FIFO, hardlinks, whiteouts) unpacked
    /// rootless by oci-unpack and by `umoci unpack --rootless`, both as uid 65534: the same tree
    /// and the same owner records, but for devices (umoci leaves empty files, oci-unpack none).
    /// With the records read back as owners, the tree is root's unpack of the same image.
    @Test func rootlessTreesMatchUmociAndRoot() throws {
        let w = try Workspace()
        let build = try Command.run("bash", ["-c", UmociEndToEndTests.buildScript, "build", w.tmp.path])
        try #require(build.status == 0, "building the image with umoci/skopeo failed: \(build.stderr)")
        _ = try Command.run("chmod", ["-R", "a+rX", w.tmp.path + "/img"])
        let ours = try w.asNobody(
            w.binary, ["unpack", "-q", "--platform", "linux/amd64", "oci:\(w.tmp.path)/img:t", w.tmp.path + "/ours"])
        try #require(ours.status == 0, "\(ours.stderr)")
        #expect(ours.stderr.contains("skipped 1 device node"), "\(ours.stderr)")
        let umoci = try w.asNobody(
            "umoci", ["unpack", "--rootless", "--image", w.tmp.path + "/img:t", w.tmp.path + "/umoci"])
        try #require(umoci.status == 0, "\(umoci.stderr)")
        let root = try Command.run(
            Command.ociUnpack,
            ["unpack", "-q", "--platform", "linux/amd64", "oci:\(w.tmp.path)/img:t", w.tmp.path + "/root"])
        try #require(root.status == 0, "\(root.stderr)")

        let record = RootlessOwnerRecord.name
        let mine = try TreeSnapshot(w.tmp.path + "/ours/rootfs", xattrs: [record])
        var theirs = try TreeSnapshot(w.tmp.path + "/umoci/rootfs", xattrs: [record])
        let rootTree = try TreeSnapshot(w.tmp.path + "/root/rootfs")
        let devices = rootTree.nodes.filter { $0.value.type == "c" || $0.value.type == "b" }.map(\.key)
        #expect(devices == ["null"])
        for device in devices {
            #expect(theirs[device]?.type == "f", "umoci leaves an empty file for a device")
            theirs.nodes[device] = nil
        }
        let differences = mine.differences(from: theirs, ignoreDirectoryTimes: false)
        #expect(differences.isEmpty, "differs from umoci --rootless:\n\(differences.joined(separator: "\n"))")
        #expect(mine["data/random"]?.xattrs[record] == [0x08, 0xe8, 0x07, 0x10, 0xe8, 0x07])

        // The records read back as owners (the user's own files as root's) give root's tree.
        var asOwners = mine
        for (path, var node) in mine.nodes {
            let owner = node.xattrs[record].flatMap(RootlessOwnerRecord.owner(from:)) ?? (0, 0)
            (node.uid, node.gid) = (owner.uid, owner.gid)
            node.xattrs = [:]
            asOwners.nodes[path] = node
        }
        var rootWithoutDevices = rootTree
        for device in devices { rootWithoutDevices.nodes[device] = nil }
        let fromRoot = asOwners.differences(from: rootWithoutDevices, ignoreDirectoryTimes: false)
        #expect(fromRoot.isEmpty, "differs from root's unpack:\n\(fromRoot.joined(separator: "\n"))")
    }

    /// `--userns auto` as an ordinary user with subordinate ids (set up here for uid 65534): the
    /// unpacker runs as root in a namespace mapping the user to root and the subordinate ids from
    /// 1, so owners are real on disk (shifted), and rootless runc, given the maps in config.json,
    /// starts the bundle as the image's own user.
    @Test func userNamespaceAutoShiftsOwnersAndStartsUnderRootlessRunc() throws {
        let w = try Workspace()
        let layout = try w.exampleLayout()
        let bundle = w.tmp.path + "/bundle"
        let arguments = [
            "unpack", "-q", "--platform", "linux/amd64", "--userns", "auto", "oci:\(layout):latest", bundle,
        ]

        let files = ["/etc/subuid", "/etc/subgid"]
        let saved = files.map { try? Data(contentsOf: URL(fileURLWithPath: $0)) }
        defer {
            for (file, content) in zip(files, saved) {
                if let content { try? content.write(to: URL(fileURLWithPath: file)) } else { unlink(file) }
            }
        }
        for (file, content) in zip(files, saved) {
            let others = String(decoding: content ?? Data(), as: UTF8.self).split(separator: "\n")
                .filter { !$0.hasPrefix("nobody:") && !$0.hasPrefix("65534:") }
            try (others.joined(separator: "\n") + (others.isEmpty ? "" : "\n")).write(
                toFile: file, atomically: false, encoding: .utf8)
        }
        let none = try w.asNobody(w.binary, arguments)
        ExitCodeTests.expectOneErrorLine(
            none, .permissionDenied, "--userns auto needs subordinate ids for user nobody in /etc/subuid")
        #expect(!FileManager.default.fileExists(atPath: bundle))

        for file in files {
            let content = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            try (content + "nobody:300000:65536\n").write(toFile: file, atomically: false, encoding: .utf8)
        }
        let unpack = try w.asNobody(w.binary, arguments)
        try #require(unpack.status == 0, "\(unpack.stderr)")
        let s = try TreeSnapshot(bundle + "/rootfs")
        #expect(
            s["app/message.txt"].map { "\($0.uid):\($0.gid)" } == "300999:300999", "container 1000 is host 300000 + 999"
        )
        #expect(s["bin/busybox"].map { "\($0.uid):\($0.gid)" } == "65534:65534", "root's files are the user's")
        let config = try JSONValue(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))))
        #expect(
            config["linux"]?["uidMappings"]
                == .array([
                    .object(["containerID": .int(0), "hostID": .int(65534), "size": .int(1)]),
                    .object(["containerID": .int(1), "hostID": .int(300_000), "size": .int(65536)]),
                ]))
        #expect(try RuncEndToEndTests.validate(bundle + "/config.json").status == 0)
        let run = try w.asNobody(
            "runc", ["--root", w.tmp.path + "/run/runc", "run", "--bundle", bundle, "userns-\(getpid())"])
        #expect(run.status == 0, "rootless runc: \(run.stderr)")
        #expect(
            unpack.stderr.contains(
                "the container's user belongs to supplementary groups 50, which a runtime run without privileges cannot set"
            ), "\(unpack.stderr)")
        #expect(
            run.stdout == """
                hello from the oci-unpack example
                uid=1000(app) gid=1000(app)
                /app
                unpacked by oci-unpack

                """)
        let asRoot = try Command.run(Command.ociUnpack, arguments)
        ExitCodeTests.expectOneErrorLine(asRoot, .invalidArgument, "--userns auto is for ordinary users")
    }
}
