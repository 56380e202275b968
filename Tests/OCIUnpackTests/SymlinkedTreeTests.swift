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

/// Trees around symlinks: "same layer" and saved directory times belong to the directory an
/// entry resolves to, not to its path as written; symlink resolution work is bounded per layer.
@Suite struct SymlinkedTreeTests {
    /// Lower `l -> real`; upper `real/f` then `l/.wh.f`: the whiteout names this layer's own file
    /// through the symlink, and whiteouts never touch their own layer.
    @Test(arguments: [false, true])
    func whiteoutThroughASymlinkedParentSparesTheLayersOwnEntry(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.directory("real/")
        lower.file("real/lower", "l")
        lower.symlink("l", to: "real")
        var upper = TarBuilder()
        upper.file("real/f", "mine")
        upper.whiteout("l/f")
        upper.whiteout("l/lower")
        try f.image(lower, upper)
        try f.unpack(userspaceResolver: userspaceResolver)
        #expect(try f.snapshot().paths == [".", "l", "real", "real/f"])
    }

    /// An opaque marker reached through a symlinked ancestor hides only the lower children.
    @Test(arguments: [false, true])
    func opaqueThroughASymlinkedAncestorSparesTheLayersOwnEntries(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.directory("real/d/")
        lower.file("real/d/old", "o")
        lower.symlink("l", to: "/real")
        var upper = TarBuilder()
        upper.file("real/d/new", "n")
        upper.opaque("l/d")
        try f.image(lower, upper)
        try f.unpack(userspaceResolver: userspaceResolver)
        #expect(try f.snapshot().paths == [".", "l", "real", "real/d", "real/d/new"])
    }

    /// usrmerge: `lib -> usr/lib`, and an upper layer adds `lib/x.so`. `usr/lib` keeps its own
    /// time (not the time of unpacking), and the `lib` symlink keeps its own.
    @Test(arguments: [false, true])
    func usrmergeDirectoryTimesStayWithTheirDirectories(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.add(.init(path: "usr/", kind: .directory, mtime: 1_000_000_000))
        lower.add(.init(path: "usr/lib/", kind: .directory, mtime: 1_100_000_000))
        lower.add(.init(path: "lib", kind: .symlink(target: "usr/lib"), mtime: 1_200_000_000))
        var upper = TarBuilder()
        upper.add(.init(path: "lib/x.so", kind: .file(content: Array("x".utf8)), mtime: 1_300_000_000))
        try f.image(lower, upper)
        try f.unpack(userspaceResolver: userspaceResolver)
        let s = try f.snapshot()
        #expect(s["usr/lib/x.so"]?.mtime == 1_300_000_000)
        #expect(s["usr/lib"]?.mtime == 1_100_000_000, "usr/lib got the time of unpacking")
        #expect(s["lib"]?.mtime == 1_200_000_000, "the symlink got another directory's time")
        #expect(s["usr"]?.mtime == 1_000_000_000)
    }

    /// `c/b/` then `c -> /c/c/b` in one layer: the listed directory is gone when times are set,
    /// and that is not an error (it failed with ELOOP).
    @Test(arguments: [false, true])
    func directoryReplacedByASymlinkLoopKeepsNoTime(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        var t = TarBuilder()
        t.directory("c/")
        t.directory("c/b/")
        t.symlink("c", to: "/c/c/b")
        try f.image(t)
        try f.unpack(userspaceResolver: userspaceResolver)
        #expect(try f.snapshot()["c"]?.type == "l")
    }

    /// An opaque marker and a plain whiteout under a file behave alike: nothing to hide.
    @Test(arguments: [false, true])
    func markersUnderAFileAreIgnoredAlike(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        var lower = TarBuilder()
        lower.file("f", "f")
        var upper = TarBuilder()
        upper.whiteout("f/x")
        upper.opaque("f")
        upper.file("g", "g")
        try f.image(lower, upper)
        try f.unpack(userspaceResolver: userspaceResolver)
        #expect(try f.snapshot().paths == [".", "f", "g"])
    }

    /// `s1 -> ./././…/s2`, …, `s40 -> ./././…/d`: 40 symlinks of 4,003 bytes each, ending at `d/`.
    static func longSymlinkChain() -> TarBuilder {
        var lower = TarBuilder()
        lower.directory("d/")
        let padding = String(repeating: "./", count: 2000)
        for i in 1...40 {
            lower.symlink("s\(i)", to: padding + (i == 40 ? "d" : "s\(i + 1)"))
        }
        return lower
    }

    /// A chain of 40 symlinks whose targets are ~4 KB of `./`: every parent resolution follows
    /// 160 KB of targets. Alternating parents defeat the one-entry cache, so without a budget a
    /// layer of millions of such entries takes hours. The budget stops it, naming the limit.
    @Test(arguments: [false, true])
    func symlinkResolutionWorkIsBounded(userspaceResolver: Bool) throws {
        let f = try UnpackFixture()
        let lower = Self.longSymlinkChain()
        var upper = TarBuilder()
        for i in 0..<20 {
            upper.file("s1/f\(i)", "x")
            upper.file("top\(i)", "x")
        }
        try f.image(lower, upper)
        // 40 targets of 4,003 bytes per resolution: 13 resolutions fit in 2 MiB, the 14th does not
        // (the default, 16 MiB, stops the 105th).
        var limits = UnpackLimits()
        limits.maxSymlinkBytesPerLayer = 2 << 20
        let error = try f.expectFailure(
            .limitExceeded, "limit symlink-bytes-per-layer", userspaceResolver: userspaceResolver, limits: limits)
        #expect(error?.context.layerIndex == 1)
        #expect(error?.context.path == "s1/f13", "\(String(describing: error))")
    }

    /// The same chain within the budget unpacks, through the userspace walk, to the right place.
    @Test func symlinkChainWithinTheBudgetResolves() throws {
        let f = try UnpackFixture()
        let lower = Self.longSymlinkChain()
        var upper = TarBuilder()
        upper.file("s1/f", "x")
        try f.image(lower, upper)
        try f.unpack()
        #expect(try f.read("d/f") == "x")
    }
}
