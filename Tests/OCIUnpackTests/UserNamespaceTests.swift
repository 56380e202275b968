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

/// Root in a user namespace that maps only itself (`unshare -r`): owners it cannot give and
/// devices it cannot make are warnings, as for an ordinary user, not failures.
@Suite struct UserNamespaceTests {
    static let unshareWorks: Bool = {
        (try? Command.run("unshare", ["-r", "true"]).status) == 0
    }()

    @Test(
        .enabled(
            if: Required.gate("userns", available: unshareWorks), "needs unprivileged user namespaces (unshare -r)"))
    func unmappedOwnersAndDevicesAreWarnings() throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.directory("home/app/", uid: 1000, gid: 1000)
        t.file("home/app/file", "mine", uid: 1000, gid: 1000)
        t.file("rootfile", "root")
        t.add(.init(path: "dev/null", kind: .characterDevice(major: 1, minor: 3), mode: 0o666))
        t.add(.init(path: "fifo", kind: .fifo, mode: 0o600, uid: 1000))
        try f.image(t)
        let r = try Command.run("unshare", ["-r", Command.ociUnpack, "unpack", "-q", f.builder.path, f.bundle])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("owner 1000:1000 of home/app/ is not mapped in this user namespace"), "\(r.stderr)")
        #expect(
            r.stderr.contains(
                "skipped 1 device node (creating devices needs root in the initial user namespace): dev/null"),
            "\(r.stderr)")
        let s = try f.snapshot()
        #expect(s["home/app/file"]?.content == Digest.of(Array("mine".utf8)).short)
        #expect(s["fifo"]?.type == "p")
        #expect(s["dev/null"] == nil)
    }
}
