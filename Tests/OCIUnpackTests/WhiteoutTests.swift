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

/// layer.md's whiteout rules, each on a tree built by lower layers.
@Suite struct WhiteoutTests {
    /// A lower layer with files, a directory tree, and a symlink to a directory.
    static func base() -> TarBuilder {
        var t = TarBuilder()
        t.file("file", "f")
        t.directory("dir/")
        t.file("dir/a", "a")
        t.directory("dir/sub/")
        t.file("dir/sub/b", "b")
        t.directory("target/")
        t.file("target/keep", "kept")
        t.symlink("link", to: "target")
        return t
    }

    @Test(arguments: [false, true])
    func fileDirectoryAndSymlinkWhiteouts(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        var upper = TarBuilder()
        upper.whiteout("file")
        upper.whiteout("dir")
        upper.whiteout("link")
        upper.whiteout("never-existed")
        try f.image(Self.base(), upper)
        try f.unpack(userspaceResolver: userspaceResolver)
        let s = try f.snapshot()
        #expect(s.paths == [".", "target", "target/keep"], "the symlink goes, not its target; no .wh. files remain")
    }

    @Test func opaqueBeforeAndAfterSameLayerEntries() throws {
        let f = try UnpackFixture()
        var before = TarBuilder()
        before.opaque("dir")
        before.file("dir/new-after-marker", "n")
        var after = TarBuilder()
        after.file("dir/new-before-marker", "n")
        after.directory("dir/sub/")
        after.file("dir/sub/new", "n")
        after.opaque("dir")
        try f.image(Self.base(), before)
        try f.unpack()
        #expect(try f.snapshot().paths.filter { $0.hasPrefix("dir") } == ["dir", "dir/new-after-marker"])
        let g = try UnpackFixture()
        try g.image(Self.base(), after)
        try g.unpack()
        // The marker applies regardless of its position: same-layer entries survive, lower ones go,
        // including the lower children of a directory this layer also lists.
        #expect(
            try g.snapshot().paths.filter { $0.hasPrefix("dir") } == [
                "dir", "dir/new-before-marker", "dir/sub", "dir/sub/new",
            ])
    }

    @Test func nestedOpaque() throws {
        let f = try UnpackFixture()
        var upper = TarBuilder()
        upper.directory("dir/")
        upper.file("dir/c", "c")
        upper.opaque("dir/sub")
        upper.file("dir/sub/fresh", "fresh")
        try f.image(Self.base(), upper)
        try f.unpack()
        #expect(
            try f.snapshot().paths.filter { $0.hasPrefix("dir") } == [
                "dir", "dir/a", "dir/c", "dir/sub", "dir/sub/fresh",
            ])
    }

    @Test func whiteoutSparesSameLayerEntries() throws {
        let f = try UnpackFixture()
        var upper = TarBuilder()
        upper.file("file", "recreated in this layer")
        upper.whiteout("file")
        upper.directory("dir/")
        upper.file("dir/added", "added")
        upper.whiteout("dir")
        try f.image(Self.base(), upper)
        try f.unpack()
        #expect(try f.read("file") == "recreated in this layer")
        #expect(try f.snapshot().paths.filter { $0.hasPrefix("dir") } == ["dir", "dir/added"])
    }

    @Test func recreateAfterWhiteoutAndTypeChangesAcrossLayers() throws {
        let f = try UnpackFixture()
        var l2 = TarBuilder()
        l2.whiteout("dir")
        l2.whiteout("file")
        var l3 = TarBuilder()
        l3.file("dir", "dir is a file now")
        l3.directory("file/")
        l3.file("file/inside", "file is a directory now")
        var l4 = TarBuilder()
        l4.whiteout("dir")
        l4.symlink("dir", to: "file/inside")
        try f.image(Self.base(), l2, l3, l4)
        try f.unpack()
        let s = try f.snapshot()
        #expect(s["dir"]?.type == "l")
        #expect(s["dir"]?.content == "file/inside")
        #expect(s["file"]?.type == "d")
        #expect(try f.read("file/inside") == "file is a directory now")
        #expect(s["dir/a"] == nil)
    }

    @Test func whiteoutThroughSymlinkedParentStaysInside() throws {
        let f = try UnpackFixture()
        var upper = TarBuilder()
        upper.whiteout("link/keep")
        try f.image(Self.base(), upper)
        try f.unpack()
        // The parent resolves inside the root: target/keep goes, nothing outside is touched.
        #expect(try f.snapshot()["target/keep"] == nil)
        #expect(try f.siblings() == ["bundle"])
    }

    /// An opaque marker for a path that is a symlink in the lower layer does not reach through
    /// it, whether the marker comes before or after the directory that replaces the symlink.
    @Test(arguments: [true, false])
    func opaqueOverALowerSymlinkDoesNotFollowIt(markerFirst: Bool) throws {
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.directory("etcx/")
        lower.file("etcx/keep", "kept")
        lower.symlink("d", to: "/etcx")
        var upper = TarBuilder()
        if markerFirst { upper.opaque("d") }
        upper.directory("d/")
        if !markerFirst { upper.opaque("d") }
        upper.file("d/new", "new")
        try f.image(lower, upper)
        try f.unpack()
        let s = try f.snapshot()
        #expect(try f.read("etcx/keep") == "kept")
        #expect(s["d"]?.type == "d")
        #expect(s.paths.filter { $0.hasPrefix("d") } == ["d", "d/new"])
    }

    @Test(arguments: [".wh.", ".wh..", ".wh..."])
    func invalidWhiteoutNamesAreRefused(name: String) throws {
        let f = try UnpackFixture()
        var upper = TarBuilder()
        upper.add(.init(path: "dir/" + name, kind: .file(content: [])))
        try f.image(Self.base(), upper)
        let error = #expect(throws: UnpackError.self) { try f.unpack() }
        #expect(error?.code == .unsafePath)
        #expect(error?.message == "invalid whiteout dir/\(name)")
        #expect(error?.context.layerIndex == 1)
        #expect(try f.siblings().isEmpty, "nothing is left behind")
    }
}
