import Foundation
import Glibc
import LayerStore
import OCIImage
import OCIUnpack
import Synchronization
import Testing
import TreeCompare
import UnpackSystem
import UnpackTestSupport

enum LayerStoreTestSupport {
    static func json(_ record: LayerStore.LayerRecord) throws -> [UInt8] {
        Array(try JSONEncoder().encode(record))
    }
}

/// The layer store (`--store`): layers unpacked once, bundles mounted from them; the tree seen
/// through a store bundle's mount is the flattened unpack's.
@Suite(.enabled(if: rootTestsRun, "overlay mounts need root"))
struct StoreTests {
    static let request = ResolutionRequest(platform: Platform(os: "linux", architecture: "amd64"))

    /// A fixture, its store, and bundles made from it (unmounted and removed at the end).
    final class StoreFixture {
        let f: UnpackFixture
        var store: String { f.tmp.path + "/store" }
        private var made: [String] = []

        init() throws { f = try UnpackFixture() }

        deinit {
            for bundle in made { try? Unpacker().removeBundle(bundle) }
        }

        @discardableResult
        func unpack(
            _ name: String, tag: String = "latest", options: UnpackOptions = .init(), mount: StoreMount = .mount
        )
            throws(UnpackError) -> String
        {
            let bundle = f.tmp.path + "/" + name
            made.append(bundle)
            _ = try Unpacker().unpack(
                "oci:\(f.builder.path):\(tag)", into: bundle, store: store, mount: mount, request: StoreTests.request,
                options: options)
            return bundle
        }

        func layerCount() -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: store + "/layers").count) ?? 0
        }
    }

    /// The store bundle's tree against the flattened unpack's (files' mtimes included; a
    /// directory no entry describes gets the time it was made, in either), or both refuse with the
    /// same code.
    static func compare(_ layers: [TarBuilder], label: String) throws -> String? {
        let s = try StoreFixture()
        try s.f.image(layers.map { ($0, LayerCompression.none) })
        let flat = Result { () throws(UnpackError) in _ = try s.f.unpack() }
        let stored = Result { () throws(UnpackError) in try s.unpack("stored") }
        switch (flat, stored) {
        case (.success, .success(let bundle)):
            let differences = try TreeSnapshot(bundle + "/rootfs").differences(from: try TreeSnapshot(s.f.rootfs))
            return differences.isEmpty ? nil : "\(label): \(differences)"
        case (.failure(let a), .failure(let b)):
            return a.code == b.code ? nil : "\(label): flat \(a) / store \(b)"
        case (.failure(let a), .success):
            return "\(label): only the flat unpack refused: \(a)"
        case (.success, .failure(let b)):
            return "\(label): only the store refused: \(b)"
        }
    }

    /// The cases the issue names, and the whiteout and symlink catalogue's shapes.
    @Test func theMountedTreeIsTheFlattenedTreeForEveryLayerRule() throws {
        var cases: [(String, [TarBuilder])] = []
        func add(_ name: String, _ build: (inout TarBuilder, inout TarBuilder) -> Void) {
            var lower = TarBuilder()
            var upper = TarBuilder()
            build(&lower, &upper)
            cases.append((name, [lower, upper]))
        }
        add("hardlink to a lower file") { l, u in
            l.directory("d/")
            l.file("d/target", "t")
            u.hardlink("link", to: "d/target")
        }
        add("whiteout of a lower directory") { l, u in
            l.directory("d/")
            l.file("d/a", "a")
            u.whiteout("d")
        }
        add("opaque directory over a lower one") { l, u in
            l.directory("d/")
            l.file("d/old", "o")
            u.directory("d/")
            u.opaque("d")
            u.file("d/new", "n")
        }
        add("file replaced by a directory") { l, u in
            l.file("p", "file")
            u.directory("p/", mode: 0o700)
            u.file("p/inside", "i")
        }
        add("directory replaced by a file") { l, u in
            l.directory("p/")
            l.file("p/inside", "i")
            u.file("p", "file")
        }
        add("entry through a lower symlink") { l, u in
            l.directory("real/", mode: 0o750)
            l.symlink("link", to: "real")
            u.file("link/through", "t")
        }
        add("implicit parent keeps the lower directory's metadata") { l, u in
            l.directory("etc/", mode: 0o700, uid: 5, gid: 6)
            u.file("etc/passwd", "root:x:0:0::/:/bin/sh\n")
        }
        add("root metadata") { l, u in
            l.directory("./", mode: 0o750)
            u.file("f", "f")
        }
        add("whiteout and re-creation in one layer") { l, u in
            l.directory("d/")
            l.file("d/old", "o")
            u.whiteout("d")
            u.directory("d/")
            u.file("d/new", "n")
        }
        var failures: [String] = []
        for (name, layers) in cases {
            if let failure = try Self.compare(layers, label: name) { failures.append(failure) }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    /// The breakout catalogue through the store: the same outcome as a flattened unpack, with
    /// everything confined to the bundle (read through its mount) and the store.
    @Test(arguments: HostileLayerTests.cases)
    func hostileLayersStayContainedThroughTheStore(_ c: HostileLayerTests.Case) throws {
        let h = try HostileLayerTests.Harness()
        let storeDirectory = try TemporaryDirectory()
        try h.f.image(c.layers(h.canary).map { ($0, LayerCompression.gzip) })
        let outcome = Result { () throws(UnpackError) in
            try Unpacker().unpack(
                "oci:\(h.f.builder.path):latest", into: h.f.bundle, store: storeDirectory.path + "/store",
                request: Self.request)
        }
        defer { try? Unpacker().removeBundle(h.f.bundle) }
        switch (outcome, c.expected) {
        case (.success, nil):
            h.verifyInRoot(c.inRoot)
        case (.failure(let error), let code?):
            #expect(error.code == code, "\(error)")
            #expect(!FileManager.default.fileExists(atPath: h.f.bundle), "a failed unpack leaves no bundle")
            let staging = try FileManager.default.contentsOfDirectory(atPath: storeDirectory.path + "/store/staging")
            #expect(staging.isEmpty, "a failed layer leaves nothing in the store's staging: \(staging)")
        case (.success, let code?):
            Issue.record("expected \(code), but the unpack succeeded")
        case (.failure(let error), nil):
            Issue.record("expected success, got \(error)")
        }
        try h.verifyUntouched()
    }

    /// An image's own overlayfs xattrs never reach a store layer (overlayfs refuses to set its
    /// private xattrs through a mount): a lower directory of the image cannot be made opaque or
    /// redirected by the image.
    @Test func anImagesOverlayXattrsDoNotReachTheStore() throws {
        let s = try StoreFixture()
        var lower = TarBuilder()
        lower.directory("d/")
        lower.file("d/kept", "k")
        var upper = TarBuilder()
        upper.add(.init(path: "d/", kind: .directory, xattrs: ["trusted.overlay.opaque": Array("y".utf8)]))
        upper.add(
            .init(
                path: "f", kind: .file(content: [1]),
                xattrs: ["trusted.overlay.redirect": Array("/d".utf8), "user.ok": Array("1".utf8)]))
        try s.f.image([(lower, .gzip), (upper, .gzip)])
        let bundle = try s.unpack("b")
        #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/d/kept"), "d is not opaque")
        for layer in try FileManager.default.contentsOfDirectory(atPath: s.store + "/layers") {
            let diff = s.store + "/layers/\(layer)/diff"
            #expect(extendedAttribute(diff + "/d", "trusted.overlay.opaque") == nil)
            #expect(extendedAttribute(diff + "/f", "trusted.overlay.redirect") == nil)
        }
        #expect(extendedAttribute(bundle + "/rootfs/f", "user.ok") == Array("1".utf8))
    }

    /// The example image (busybox, mixed compression) through the store: the flattened tree.
    @Test(arguments: ["amd64-gzip", "amd64-mixed"])
    func theExampleImageThroughTheStoreIsTheFlattenedTree(tag: String) throws {
        let s = try StoreFixture()
        try ExampleImage.write(to: s.f.builder.path, busybox: try ExampleImage.hostBusybox())
        _ = try Unpacker().unpack(
            "oci:\(s.f.builder.path):\(tag)", into: s.f.bundle, request: Self.request)
        let bundle = try s.unpack("stored", tag: tag)
        let differences = try TreeSnapshot(bundle + "/rootfs").differences(from: try TreeSnapshot(s.f.rootfs))
        #expect(differences.isEmpty, "\(differences)")
    }

    /// Durability: a layer is published unsynced, made durable by a later store operation once it
    /// is old enough, and a layer from another boot that never was (a crash may have lost data) is
    /// unpacked again rather than mounted.
    @Test func anUnsyncedLayerFromAnotherBootIsUnpackedAgain() throws {
        let s = try StoreFixture()
        try s.f.oneFileImage()
        let image = try Unpacker().resolve("oci:\(s.f.builder.path):latest", request: Self.request)
        let chain = LayerStore.chainIDs(image.layers.map(\.diffID))[0]
        try s.unpack("first")
        let store = try LayerStore(path: s.store)
        var record = try #require(store.record(chain))
        #expect(record.durable == false && record.bootID == LayerStore.bootID)
        #expect(store.makeDurable() == 0, "too young to sync")

        // Written a while ago: the next store operation syncs it and marks it durable.
        record.committedAt = Double(time(nil)) - LayerStore.durableAfter - 1
        try Data(LayerStoreTestSupport.json(record)).write(
            to: URL(fileURLWithPath: store.layerDirectory(chain) + "/layer.json"))
        #expect(store.makeDurable() == 1)
        #expect(store.record(chain)?.durable == true)

        // Never synced, and from another boot: unpacked again.
        record.durable = false
        record.bootID = "another-boot"
        try Data(LayerStoreTestSupport.json(record)).write(
            to: URL(fileURLWithPath: store.layerDirectory(chain) + "/layer.json"))
        let again = try Unpacker().unpack(
            "oci:\(s.f.builder.path):latest", into: s.f.tmp.path + "/again", store: s.store, request: Self.request)
        defer { try? Unpacker().removeBundle(again.bundle) }
        #expect(again.entries == [1], "the layer was applied again")
        #expect(store.record(chain)?.bootID == LayerStore.bootID)
    }

    /// An image without layers gets an empty root filesystem from the store too.
    @Test func anImageWithoutLayersMountsAnEmptyRoot() throws {
        let s = try StoreFixture()
        try s.f.image([LayoutBuilder.Layer]())
        let bundle = try s.unpack("empty")
        #expect(isMountPoint(bundle + "/rootfs"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: bundle + "/rootfs").isEmpty)
    }

    /// The tree differential's random images, through the store.
    @Test func randomImagesGiveTheSameTreeThroughTheStore() throws {
        var failures: [String] = []
        for seed in TreeDifferentialTests.seeds.prefix(120) {
            if let failure = try Self.compare(TreeDifferentialTests.layers(seed: seed), label: "seed \(seed)") {
                failures.append(failure)
            }
            if failures.count >= 5 { break }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func theZstdVariantAddsNoLayerAndBundlesAreIsolated() throws {
        let s = try StoreFixture()
        var base = TarBuilder()
        base.directory("etc/")
        base.file("etc/shared", "s")
        var top = TarBuilder()
        top.file("app", "a")
        let gzip = try [base, top].map { try s.f.builder.layer($0.bytes(), compression: .gzip) }
        let zstd = try [base, top].map { try s.f.builder.layer($0.bytes(), compression: .zstd) }
        s.f.builder.tag(try s.f.builder.image(layers: gzip), "gzip")
        s.f.builder.tag(try s.f.builder.image(layers: zstd), "zstd")
        try s.f.builder.write()
        let one = try s.unpack("one", tag: "gzip")
        #expect(s.layerCount() == 2)
        let two = try s.unpack("two", tag: "zstd")
        #expect(s.layerCount() == 2, "the zstd variant's layers are the gzip variant's")
        #expect(isMountPoint(one + "/rootfs") && isMountPoint(two + "/rootfs"))

        // Writes and deletions in one bundle reach neither the other nor the store.
        #expect(FileManager.default.createFile(atPath: one + "/rootfs/written", contents: Data("w".utf8)))
        try FileManager.default.removeItem(atPath: one + "/rootfs/etc/shared")
        #expect(!FileManager.default.fileExists(atPath: two + "/rootfs/written"))
        #expect(try String(contentsOfFile: two + "/rootfs/etc/shared", encoding: .utf8) == "s")
        let layers = try FileManager.default.contentsOfDirectory(atPath: s.store + "/layers")
        for layer in layers {
            #expect(!FileManager.default.fileExists(atPath: s.store + "/layers/\(layer)/diff/written"))
        }
        let base0 = s.store + "/layers/" + LayerStore.name(LayerStore.chainIDs([gzip[0].diffID])[0])
        #expect(FileManager.default.fileExists(atPath: base0 + "/diff/etc/shared"))
        // A second bundle costs no layer: its own directory holds config.json and an empty upper.
        #expect(LayerStore.diskUsage(two + "/upper") <= 4096)
    }

    @Test func removeAndPrune() throws {
        let s = try StoreFixture()
        try s.f.oneFileImage()
        let kept = try s.unpack("kept")
        let removed = try s.unpack("removed")
        let byHand = try s.unpack("byhand")
        try Unpacker().removeBundle(removed)
        #expect(!FileManager.default.fileExists(atPath: removed))
        // Deleted by hand: unmounted and removed without oci-unpack.
        try unmount(byHand + "/rootfs")
        try removeDirectoryTree(byHand)
        var pruned = try Unpacker().pruneStore(at: s.store)
        #expect(pruned.forgottenBundles == [byHand])
        #expect(pruned.removedLayers.isEmpty, "a live bundle still uses the layer")
        #expect(try Unpacker().storeLayers(at: s.store).map(\.bundles) == [[kept]])
        try Unpacker().removeBundle(kept)
        pruned = try Unpacker().pruneStore(at: s.store)
        #expect(pruned.removedLayers.count == 1)
        #expect(s.layerCount() == 0)
        // A directory that is not a bundle is not removed.
        let other = s.f.tmp.path + "/not-a-bundle"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        #expect(throws: UnpackError.self) { try Unpacker().removeBundle(other) }
        #expect(FileManager.default.fileExists(atPath: other))
    }

    /// Prune in a loop while bundles of the same image are made: every unpack succeeds with the
    /// right tree, and no layer a bundle mounts disappears.
    @Test func pruneRacingAnUnpackNeverTakesALayerInUse() throws {
        let s = try StoreFixture()
        var t = TarBuilder()
        for i in 0..<200 { t.file("f\(i)", "\(i)") }
        var top = TarBuilder()
        top.file("top", "t")
        try s.f.image(t, top)
        let store = s.store
        let done = Mutex(false)
        let pruner = try startThread(name: "pruner") {
            while !done.withLock({ $0 }) { _ = try? Unpacker().pruneStore(at: store) }
        }
        var failures: [String] = []
        for i in 0..<8 {
            do throws(UnpackError) {
                let bundle = try s.unpack("b\(i)")
                if !FileManager.default.fileExists(atPath: bundle + "/rootfs/f199")
                    || !FileManager.default.fileExists(atPath: bundle + "/rootfs/top")
                {
                    failures.append("bundle \(i) misses files")
                }
                if i % 2 == 0 { try Unpacker().removeBundle(bundle) }
            } catch {
                failures.append("unpack \(i): \(error)")
            }
        }
        done.withLock { $0 = true }
        pruner.join()
        #expect(failures.isEmpty, "\(failures)")
        // The bundles kept (odd ones) still see their layers; a last prune keeps what they use.
        _ = try Unpacker().pruneStore(at: s.store)
        for i in stride(from: 1, to: 8, by: 2) {
            #expect(FileManager.default.fileExists(atPath: s.f.tmp.path + "/b\(i)/rootfs/f0"), "bundle \(i)")
        }
        let layers = try Unpacker().storeLayers(at: s.store)
        #expect(layers.count == 2 && layers.allSatisfy { $0.bundles.count == 4 }, "\(layers)")
    }

    /// SIGKILL at random moments of a store unpack; then a fresh unpack is right and used no
    /// partial layer.
    @Test func aKilledStoreUnpackLeavesTheStoreUsable() throws {
        let s = try StoreFixture()
        var layers: [TarBuilder] = []
        for l in 0..<4 {
            var t = TarBuilder()
            for i in 0..<1500 { t.file("l\(l)/f\(i)", String(repeating: "x", count: 100 + i % 50)) }
            layers.append(t)
        }
        try s.f.image(layers.map { ($0, LayerCompression.gzip) })
        _ = try s.f.unpack()
        let flat = try TreeSnapshot(s.f.rootfs)
        var random = TreeDifferentialTests.Random(state: UInt64(getpid()))
        for trial in 0..<5 {
            let bundle = s.f.tmp.path + "/killed\(trial)"
            let delay = 5 + random.below(120)
            let run = try Command.run(
                "sh",
                [
                    "-c",
                    "\"$0\" unpack -q --store \"$1\" \"$2\" \"$3\" & pid=$!; sleep 0.$(printf %03d $4); kill -9 $pid; wait $pid; true",
                    Command.ociUnpack, s.store, s.f.builder.path, bundle, String(delay),
                ])
            #expect(run.status == 0, "\(run.stderr)")
            if isMountPoint(bundle + "/rootfs") { try? Unpacker().removeBundle(bundle) }
        }
        // Every run may have been killed before it made the store's first layer (a busy machine).
        for layer in (try? FileManager.default.contentsOfDirectory(atPath: s.store + "/layers")) ?? [] {
            #expect(
                FileManager.default.fileExists(atPath: s.store + "/layers/\(layer)/layer.json"),
                "a published layer is complete")
        }
        let fresh = try s.unpack("fresh")
        let differences = try TreeSnapshot(fresh + "/rootfs").differences(from: flat)
        #expect(differences.isEmpty, "\(differences)")
        _ = try Unpacker().pruneStore(at: s.store)
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.store + "/staging").isEmpty)
    }

    @Test func withoutMountingTheBundleDescribesItsMount() throws {
        let s = try StoreFixture()
        var t = TarBuilder()
        t.directory("etc/")
        t.file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        t.file("etc/group", "root:x:0:\napp:x:1000:\n")
        s.f.builder.tag(
            try s.f.builder.image(
                layers: [try s.f.builder.layer(t.bytes(), compression: .gzip)],
                execution: ImageConfig.Execution(user: "app", cmd: ["/bin/sh"])), "latest")
        try s.f.builder.write()
        let bundle = try s.unpack("described", mount: .describeOnly)
        #expect(!isMountPoint(bundle + "/rootfs"))
        let spec = try JSONDecoder().decode(
            StoreMountSpec.self, from: Data(contentsOf: URL(fileURLWithPath: bundle + "/rootfs.mount.json")))
        #expect(spec.type == "overlay" && spec.target == bundle + "/rootfs")
        #expect(spec.upperDirectory == bundle + "/upper" && spec.lowerDirectories.count == 1)
        #expect(spec.options.contains("upperdir=" + bundle + "/upper"))
        // The image's user was looked up through the layers.
        let config = try JSONValue(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: bundle + "/config.json"))))
        #expect(config["process"]?["user"]?["uid"] == .int(1000), "\(config)")
        // Mounting what it says gives the image's tree.
        let mounted = try Command.run(
            "mount", ["-t", spec.type, spec.source, "-o", spec.options.joined(separator: ","), spec.target])
        try #require(mounted.status == 0, "\(mounted.stderr)")
        #expect(FileManager.default.fileExists(atPath: bundle + "/rootfs/etc/passwd"))
    }
}
