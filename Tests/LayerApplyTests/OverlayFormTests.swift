import Foundation
import Glibc
import LayerApply
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import Testing
import UnpackSystem
import UnpackTestSupport

/// The whiteout policy's overlay form: a layer written alone into a directory, for mounting as one
/// lower directory of an overlay.
@Suite struct OverlayFormTests {
    static let namespace: WhiteoutPolicy.OverlayXattrs = geteuid() == 0 ? .trusted : .user

    static func apply(_ layers: [TarBuilder], onto root: String, whiteouts: WhiteoutPolicy, warn: WarningLog? = nil)
        throws
    {
        var options = ApplyOptions(ownership: geteuid() == 0 ? .preserve : .rootless, limits: .init())
        options.whiteouts = whiteouts
        if let warn { options.warn = { warn.append($0) } }
        let applier = try Applier(rootPath: root, options: options)
        for layer in layers {
            try applier.apply(try TarReader(upstream: MemoryStream(layer.bytes())))
        }
        try applier.finish()
    }

    /// A layer with every kind of whiteout: of a lower file, of a lower directory re-made in the
    /// same layer (before and after its entries), of a path this layer made, and an opaque marker.
    static func upper() -> TarBuilder {
        var t = TarBuilder()
        t.whiteout("gone")
        t.directory("kept/")
        t.opaque("kept")
        t.file("kept/new", "n")
        t.whiteout("remade")
        t.directory("remade/")
        t.file("remade/only", "o")
        t.directory("own/")
        t.file("own/mine", "m")
        t.whiteout("own")
        t.file("made", "x")
        t.whiteout("made")
        return t
    }

    static func lower() -> TarBuilder {
        var t = TarBuilder()
        t.file("gone", "g")
        t.directory("kept/")
        t.file("kept/old", "o")
        t.directory("remade/")
        t.file("remade/lower", "l")
        t.directory("own/")
        t.file("own/lower", "l")
        return t
    }

    @Test func whiteoutsBecomeDevicesAndOpaqueXattrs() throws {
        let tmp = try TemporaryDirectory()
        let opaque = Self.namespace.opaqueName
        try Self.apply([Self.upper()], onto: tmp.path, whiteouts: .overlay(Self.namespace))
        let s = try TreeSnapshot(tmp.path, xattrs: [opaque])
        #expect(s["gone"]?.type == "c" && s["gone"]?.rdev == 0, "a whiteout is a 0:0 character device")
        #expect(s["kept"]?.xattrs[opaque] == Array("y".utf8), "an opaque marker is the opaque xattr")
        #expect(s["kept/.wh..wh..opq"] == nil && s[".wh.gone"] == nil, "no marker file is written")
        #expect(s["remade"]?.type == "d" && s["remade"]?.xattrs[opaque] == Array("y".utf8))
        #expect(s["own"]?.xattrs[opaque] == Array("y".utf8), "a whiteout of this layer's directory hides the lower one")
        #expect(s["own/mine"]?.type == "f" && s["made"]?.type == "f", "this layer's own paths are spared")
    }

    @Test func whatOverlayfsReadsAsItsOwnIsNotTheImagesToGive() throws {
        let tmp = try TemporaryDirectory()
        let warnings = WarningLog()
        var t = TarBuilder()
        t.add(
            .init(
                path: "f", kind: .file(content: [1]), xattrs: [Self.namespace.prefix + "redirect": Array("/etc".utf8)]))
        try Self.apply([t], onto: tmp.path, whiteouts: .overlay(Self.namespace), warn: warnings)
        let s = try TreeSnapshot(tmp.path, xattrs: [Self.namespace.prefix + "redirect"])
        #expect(s["f"]?.xattrs.isEmpty == true)
        #expect(warnings.all.contains { $0.contains("overlayfs keeps them for itself") })

        var device = TarBuilder()
        device.add(.init(path: "dev", kind: .characterDevice(major: 0, minor: 0)))
        let other = try TemporaryDirectory()
        #expect {
            try Self.apply([device], onto: other.path, whiteouts: .overlay(Self.namespace))
        } throws: { ($0 as? UnpackError)?.code == .unsupportedMediaType }
    }

    /// The same layers, applied in one root and written in overlay form then mounted, give the
    /// same tree (root: mounting an overlay of `trusted.` layers).
    @Test(.enabled(if: rootTestsRun, "mounting an overlay needs root"))
    func mountedOverlayFormEqualsTheAppliedRoot() throws {
        let tmp = try TemporaryDirectory()
        var top = TarBuilder()
        top.whiteout("kept/new")
        top.file("kept/top", "t")
        top.directory("gone/")
        let layers = [Self.lower(), Self.upper(), top]
        let applied = tmp.path + "/applied"
        #expect(mkdir(applied, 0o755) == 0)
        try Self.apply(layers, onto: applied, whiteouts: .apply)
        var lowers: [String] = []
        for (i, layer) in layers.enumerated() {
            let dir = tmp.path + "/layer\(i)"
            #expect(mkdir(dir, 0o755) == 0)
            try Self.apply([layer], onto: dir, whiteouts: .overlay(.trusted))
            lowers.insert(dir, at: 0)
        }
        let merged = tmp.path + "/merged"
        #expect(mkdir(merged, 0o755) == 0)
        let mounted = try Command.run(
            "mount", ["-t", "overlay", "overlay", "-o", "ro,lowerdir=" + lowers.joined(separator: ":"), merged])
        try #require(mounted.status == 0, "mount: \(mounted.stderr)")
        defer { _ = try? Command.run("umount", [merged]) }
        let differences = try TreeSnapshot(merged).differences(from: TreeSnapshot(applied))
        #expect(differences.isEmpty, "\(differences)")
    }
}
