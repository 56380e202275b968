import FoundationEssentials
import Glibc
import LayerStore
import OCIImage
import UnpackSystem

/// A layer in a layer store, as `oci-unpack store list` shows it.
public struct StoreLayer: Sendable, Equatable, Encodable {
    /// The layer's chain ID (its directory's key).
    public var chainID: String
    /// The layer's diff_id.
    public var diffID: String?
    /// Bytes its directory takes on disk.
    public var size: Int64
    /// The bundles (live ones) that mount it.
    public var bundles: [String]
}

/// What `oci-unpack store prune` did.
public struct StorePruneResult: Sendable, Equatable, Encodable {
    /// The chain IDs of the layers removed.
    public var removedLayers: [String]
    /// Bundles recorded as users that are gone (deleted by hand): their records were dropped.
    public var forgottenBundles: [String]
    /// Layers no bundle uses that another process held (populating or mounting them): kept.
    public var busyLayers: [String]
}

extension Unpacker {
    /// Every layer of the store at `path`, with its size and the live bundles that use it.
    public func storeLayers(at path: String) throws(UnpackError) -> [StoreLayer] {
        let store = try LayerStore(path: path)
        let bundles = store.bundles().filter(\.live).map(\.record)
        return store.layers().map { chain in
            StoreLayer(
                chainID: chain.description, diffID: store.record(chain)?.diffID,
                size: LayerStore.diskUsage(store.layerDirectory(chain)),
                bundles: bundles.filter { $0.layers.contains(chain.description) }.map(\.bundle).sorted())
        }
    }

    /// Removes the layers of the store at `path` that no live bundle uses (never one another
    /// process is populating or mounting), the records of bundles deleted by hand, and what killed
    /// runs left in its staging directory.
    public func pruneStore(at path: String) throws(UnpackError) -> StorePruneResult {
        let result = try LayerStore(path: path).prune()
        return StorePruneResult(
            removedLayers: result.removedLayers.map(\.description), forgottenBundles: result.forgottenBundles,
            busyLayers: result.busyLayers.map(\.description))
    }

    /// Removes a bundle: a store bundle's root filesystem is unmounted first and its record in the
    /// store dropped; a plain bundle is removed as it is. Never crosses into another mount (a bind
    /// mount left inside stops the removal, naming it); refuses a directory that is not a bundle.
    public func removeBundle(_ path: String) throws(UnpackError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw UnpackError(.notFound, "there is no bundle at \(path)", context: .init(path: path))
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw UnpackError(.invalidArgument, "\(path) is not a bundle directory", context: .init(path: path))
        }
        let marker = LayerStore.marker(of: path)
        var config = stat()
        guard lstat(path + "/config.json", &config) == 0 || marker != nil else {
            throw UnpackError(
                .invalidArgument, "\(path) is not a bundle (it has no config.json): not removed",
                context: .init(path: path))
        }
        let rootfs = LayerStore.absolute(path) + "/rootfs"
        if marker != nil, isMountPoint(rootfs) {
            do throws(SystemError) {
                try unmount(rootfs)
            } catch {
                throw error.unpackError(
                    error.errno == EBUSY
                        ? "the bundle's root filesystem is in use (a container still runs from it): not removed"
                        : "the bundle's root filesystem cannot be unmounted", context: .init(path: rootfs))
            }
        }
        do throws(SystemError) {
            try removeDirectoryTree(LayerStore.absolute(path))
        } catch {
            throw error.unpackError("the bundle \(path) cannot be removed", context: .init(path: path))
        }
        if let marker, let store = try? LayerStore(path: marker.store) { store.unregister(marker.id) }
    }
}
