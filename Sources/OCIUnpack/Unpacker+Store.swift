import FoundationEssentials
import Glibc
import LayerApply
import LayerEngine
import LayerStore
import OCIImage
import Resolution
import RuntimeBundle
import UnpackSystem

/// How a bundle from a layer store gets its root filesystem.
public enum StoreMount: Sendable, Equatable {
    /// `BUNDLE/rootfs` is mounted: an overlay of the image's layers with the bundle's own upper and
    /// work directories.
    case mount
    /// Nothing is mounted: `BUNDLE/rootfs.mount.json` says what to mount, for a caller that mounts
    /// itself (a shim, a rootless wrapper inside its own user namespace).
    case describeOnly
}

/// What a bundle from a layer store mounts as its root filesystem (`rootfs.mount.json`, and
/// `mount` in `unpack --json`).
public struct StoreMountSpec: Sendable, Equatable, Codable {
    /// `overlay`.
    public var type: String
    /// `overlay`.
    public var source: String
    /// The mount options, `lowerdir=…,upperdir=…,workdir=…[,userxattr]`.
    public var options: [String]
    /// Where it goes: `BUNDLE/rootfs`.
    public var target: String
    /// The layers' directories in the store, uppermost first.
    public var lowerDirectories: [String]
    /// The bundle's own writable directory, and overlayfs's work directory beside it.
    public var upperDirectory: String
    /// overlayfs's work directory.
    public var workDirectory: String
}

extension Unpacker {
    /// Unpacks `image` with its layers from (and into) the layer store at `store`: each layer the
    /// store lacks is unpacked once into it; `bundle/rootfs` is an overlay of the image's layers
    /// with an upper and a work directory of the bundle's own, so that a second bundle of an
    /// image costs a mount and config.json. On any error the bundle is not there, and no partial
    /// layer is in the store.
    public func unpack(
        _ image: ResolvedImage, into bundle: String, store path: String, mount: StoreMount = .mount,
        options: UnpackOptions = .init()
    ) throws(UnpackError) -> UnpackResult {
        try BundleStaging.checkTarget(bundle, force: options.force)
        try Self.checkPrivileges(for: options.ownership)
        try checkUnpackable(image, options: options)
        let store = try LayerStore(path: path)
        // Layers written a while ago in this boot are synced and marked durable (cheap by now).
        store.makeDurable()
        let checkpoint: () throws(UnpackError) -> Void
        if let cancellation = options.cancellation {
            checkpoint = { () throws(UnpackError) in try cancellation.check() }
        } else {
            checkpoint = {}
        }
        // Held, shared, until the bundle is recorded: a prune cannot take these layers meanwhile.
        let (locks, entries) = try ensureLayers(image, in: store, options: options, checkpoint: checkpoint)
        defer { withExtendedLifetime(locks) {} }
        let (staging, template) = try BundleOutput.stage(bundle, options: options)
        let id = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        var mounted = false
        let chains = LayerStore.chainIDs(image.layers.map(\.diffID))
        do throws(UnpackError) {
            // An image without layers has an empty root: overlayfs needs one lower directory.
            let lowers =
                chains.isEmpty ? [try store.emptyDirectory()] : chains.reversed().map { store.diffDirectory($0) }
            let (overlay, spec) = try StoreBundle.prepare(
                staging: staging, bundle: LayerStore.absolute(bundle), lowers: lowers,
                userXattr: !IDMapping.fullyPrivileged)
            try staging.write("rootfs.mount.json", StoreBundle.encode(spec))
            try staging.write(LayerStore.bundleMarker, StoreBundle.encode(LayerStore.Marker(store: store.path, id: id)))
            let writeConfig = { () throws(UnpackError) in
                let root = try RootDirectory(path: staging.rootfs)
                try BundleOutput.writeConfig(image, root: root, template: template, staging: staging, options: options)
            }
            if mount == .mount {
                do throws(SystemError) {
                    try overlay.mount(on: staging.rootfs)
                } catch {
                    throw error.unpackError(
                        IDMapping.fullyPrivileged
                            ? "the bundle's root filesystem cannot be mounted"
                            : "the bundle's root filesystem cannot be mounted without root in the initial user namespace: give --no-mount and mount rootfs.mount.json's overlay where you can (inside your user namespace)",
                        context: .init(path: staging.rootfs))
                }
                mounted = true
                try writeConfig()
            } else {
                // Users are looked up through the bundle's overlay, mounted for a moment in a
                // mount namespace of a thread's own (nothing is written through it).
                try StoreBundle.withPrivateMount(overlay, at: staging.rootfs, writeConfig)
            }
            try checkpoint()
            try staging.publish()
        } catch {
            if mounted { try? unmount(staging.rootfs, detach: true) }
            staging.discard()
            throw error
        }
        // Recorded once the bundle (and its marker) is in place, while this run still holds every
        // layer's lock: a prune before this cannot take the layers (they are locked), and a prune
        // after it sees a live bundle. (Recorded before the rename, a prune in between would take
        // the record for a bundle deleted by hand, and forget it.)
        do throws(UnpackError) {
            try store.register(LayerStore.BundleRecord(id: id, bundle: LayerStore.absolute(bundle), layers: chains))
        } catch {
            try? removeBundle(staging.target)
            throw error
        }
        logOrigins(image)
        return UnpackResult(image: image, bundle: staging.target, entries: entries)
    }

    /// `unpack(_:into:store:mount:options:)` for a reference.
    public func unpack(
        _ reference: String, into bundle: String, store: String, mount: StoreMount = .mount,
        request: ResolutionRequest, options: UnpackOptions = .init()
    ) throws(UnpackError) -> UnpackResult {
        try BundleStaging.checkTarget(bundle, force: options.force)
        try Self.checkPrivileges(for: options.ownership)
        return try unpack(
            try resolve(reference, request: request), into: bundle, store: store, mount: mount, options: options)
    }

    /// Every layer of `image` in the store, bottom first: each taken exclusively, populated when
    /// missing, then shared. Returns the locks (shared) and each layer's entry count (0 for a layer
    /// the store had).
    private func ensureLayers(
        _ image: ResolvedImage, in store: LayerStore, options: UnpackOptions,
        checkpoint: @escaping () throws(UnpackError) -> Void
    ) throws(UnpackError) -> ([FileLock], [Int]) {
        let chains = LayerStore.chainIDs(image.layers.map(\.diffID))
        let xattrs = IDMapping.fullyPrivileged ? "trusted" : "user"
        var locks: [FileLock] = []
        var entries: [Int] = []
        for (position, layer) in image.layers.enumerated() {
            let chain = chains[position]
            let record = LayerStore.LayerRecord(
                chainID: chain, diffID: layer.diffID, parent: position > 0 ? chains[position - 1] : nil,
                ownership: Self.storeKey(options.ownership), overlayXattrs: xattrs, tool: "oci-unpack \(Self.version)")
            let lock = try store.lock(chain)
            if try store.present(chain, expected: record) {
                entries.append(0)
            } else {
                try checkpoint()
                let lowers = chains[..<position].reversed().map { store.diffDirectory($0) }
                let staging = try store.stage(chain)
                do throws(UnpackError) {
                    let count = try populate(
                        layer, of: image, into: staging, lowers: lowers, userXattr: xattrs == "user",
                        options: options, checkpoint: checkpoint)
                    try store.commit(staging, record, chain: chain)
                    entries.append(count)
                } catch {
                    try? removeDirectoryTree(staging)
                    throw error.adding(
                        layerIndex: layer.index, digest: layer.descriptor.digest,
                        mediaType: layer.descriptor.mediaType)
                }
            }
            do throws(SystemError) {
                try lock.share()
            } catch {
                throw error.unpackError("the store's lock for layer \(chain) cannot be shared")
            }
            locks.append(lock)
        }
        return (locks, entries)
    }

    /// One layer into `staging/diff`: through an overlay of the layers below it (the kernel writes
    /// whiteouts, opaque directories and copied-up parents in overlay form, and in-root resolution
    /// sees the lower layers' symlinks), applied by the same applier and rules as a plain unpack.
    /// The mount lives in a mount namespace of the applying thread's own, so that it is gone with
    /// the thread, even when the process is killed.
    private func populate(
        _ layer: ResolvedImage.Layer, of image: ResolvedImage, into staging: String, lowers: [String], userXattr: Bool,
        options: UnpackOptions, checkpoint: @escaping () throws(UnpackError) -> Void
    ) throws(UnpackError) -> Int {
        let diff = staging + "/diff"
        if let below = lowers.first { StoreBundle.copyRootMetadata(from: below, to: diff) }
        let logger = self.logger
        // The checkpoint reads a Cancellation (Sendable); the closure type is not marked so.
        nonisolated(unsafe) let checkpoint = checkpoint
        let work: @Sendable () -> Result<Int, UnpackError> = {
            Result { () throws(UnpackError) -> Int in
                var root = diff
                if !lowers.isEmpty {
                    do throws(SystemError) {
                        try unshareMountNamespace()
                        try OverlayMount(lowers: lowers, upper: diff, work: staging + "/work", userXattr: userXattr)
                            .mount(on: staging + "/merged")
                    } catch {
                        throw error.unpackError("the layers below layer \(layer.index) cannot be mounted to apply it")
                    }
                    root = staging + "/merged"
                }
                let applier = try Applier(rootPath: root, options: options.apply, checkpoint: checkpoint)
                let driver = LayerDriver(
                    source: image.source, layers: [layer],
                    settings: LayerDriver.Settings(
                        limits: options.limits, gzip: options.gzipDecoder.implementation, prefetch: options.prefetch,
                        warn: { logger.warning("\($0)") }, checkpoint: checkpoint))
                return try driver.run(into: applier).reduce(0, +)
            }
        }
        let outcome = ResultBox<Int>()
        do throws(SystemError) {
            let thread = try startThread(name: "oci-store-layer") { outcome.set(work()) }
            thread.join()
        } catch {
            throw error.unpackError("cannot start a thread to apply layer \(layer.index)")
        }
        return try outcome.get()
    }

    /// How owners were written, as a store records it.
    static func storeKey(_ ownership: Ownership) -> String {
        switch ownership {
        case .preserve: "preserve"
        case .rootless: "rootless:\(geteuid()):\(getegid())"
        case .mapped(let uids, let gids, let unmapped): "mapped:\(uids):\(gids):\(unmapped)"
        case .namespaced(let uids, let gids): "namespaced:\(uids):\(gids)"
        }
    }
}

/// The result of work done on another thread.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var value: Result<T, UnpackError>?

    func set(_ result: Result<T, UnpackError>) {
        lock.lock()
        value = result
        lock.unlock()
    }

    func get() throws(UnpackError) -> T {
        lock.lock()
        defer { lock.unlock() }
        guard let value else { throw UnpackError(.internal, "a thread ended without a result") }
        return try value.get()
    }
}
