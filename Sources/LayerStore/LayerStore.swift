import FoundationEssentials
import Glibc
import OCIImage
import UnpackSystem

/// A store of unpacked layers shared by many bundles (`--store DIR`): each layer unpacked once,
/// ever, in overlayfs form, and mounted as a lower directory of every bundle that uses it.
///
/// ```
/// DIR/store.json                 what this directory is (format version)
/// DIR/layers/CHAIN/diff/         the layer's diff, as an overlay upper directory holds it
/// DIR/layers/CHAIN/layer.json    what produced it (LayerRecord)
/// DIR/locks/CHAIN                the layer's lock: exclusive to populate, shared while in use
/// DIR/staging/CHAIN.PID.N/       a layer being populated (diff/, work/, merged/), renamed to
///                                layers/CHAIN when complete
/// DIR/bundles/ID.json            a bundle that uses layers (BundleRecord)
/// ```
///
/// CHAIN is a layer's chain ID (image-spec config.md) as `ALGORITHM-HEX`: the layer and every
/// layer below it, by diff_id, so an image's gzip and zstd variants share every directory.
package final class LayerStore: Sendable {
    package let path: String

    /// The format of `store.json`'s directory: a store of another format is refused.
    static let format = 1

    /// Opens the store at `path`, creating it (and its directories) on first use.
    package init(path: String) throws(UnpackError) {
        self.path = Self.absolute(path)
        do throws(SystemError) {
            try Self.makeDirectory(self.path, mode: 0o711)
            for name in ["layers", "locks", "staging", "bundles"] {
                try Self.makeDirectory(self.path + "/" + name, mode: 0o700)
            }
        } catch {
            throw error.unpackError("the layer store \(path) cannot be created", context: .init(path: path))
        }
        let marker = self.path + "/store.json"
        if let bytes = try? OwnedFD.openForReading(marker, flags: O_NOFOLLOW).readAll(limit: 1 << 16) {
            guard case .object(let fields)? = try? JSONValue(parsing: bytes),
                fields["format"] == .int(Int64(Self.format))
            else {
                throw UnpackError(
                    .invalidArgument,
                    "\(path) is not a layer store of this oci-unpack (its store.json has another format)",
                    context: .init(path: path))
            }
        } else {
            let text = Array(#"{"format":\#(Self.format),"tool":"oci-unpack"}"#.utf8) + [0x0a]
            do throws(SystemError) {
                // Renamed into place: a process opening the store meanwhile reads all of it or none.
                let temporary = marker + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
                try Self.writeFile(temporary, text)
                if rename(temporary, marker) != 0 { throw SystemError(call: "rename", errno: errno, path: marker) }
            } catch {
                throw error.unpackError("the layer store \(path) cannot be created", context: .init(path: path))
            }
        }
    }

    // MARK: - Names

    /// The chain IDs of layers with these diff_ids, bottom first: ChainID(L0) = DiffID(L0),
    /// ChainID(Ln) = SHA-256 of "ChainID(Ln-1) DiffID(Ln)".
    package static func chainIDs(_ diffIDs: [Digest]) -> [Digest] {
        var out: [Digest] = []
        for diffID in diffIDs {
            if let below = out.last {
                out.append(Digest.of(Array("\(below) \(diffID)".utf8)))
            } else {
                out.append(diffID)
            }
        }
        return out
    }

    package static func name(_ chain: Digest) -> String { "\(chain.algorithm)-\(chain.encoded)" }

    package func layerDirectory(_ chain: Digest) -> String { path + "/layers/" + Self.name(chain) }

    /// An empty directory, the one lower directory of an image without layers.
    package func emptyDirectory() throws(UnpackError) -> String {
        let empty = path + "/empty"
        do throws(SystemError) {
            try Self.makeDirectory(empty, mode: 0o755)
        } catch {
            throw error.unpackError("the layer store's empty directory cannot be created", context: .init(path: empty))
        }
        return empty
    }
    package func diffDirectory(_ chain: Digest) -> String { layerDirectory(chain) + "/diff" }

    // MARK: - Layers

    /// What produced a layer directory; a layer is reused only by an unpack that would have
    /// produced the same.
    package struct LayerRecord: Codable, Equatable, Sendable {
        package var chainID: String
        package var diffID: String
        /// The chain ID of the layer below, if any.
        package var parent: String?
        /// How owners were written (`Ownership`'s description).
        package var ownership: String
        /// `trusted` or `user`: the namespace of the overlay xattrs in the diff.
        package var overlayXattrs: String
        package var tool: String
        /// The boot the layer was written in (`/proc/sys/kernel/random/boot_id`).
        package var bootID: String?
        /// Whether the layer's data is known to be on disk (synced after it was written): a layer
        /// that is not, found after a reboot, may have lost data in a crash and is unpacked again.
        package var durable: Bool?
        /// When it was written (seconds since the epoch).
        package var committedAt: Double?

        package init(
            chainID: Digest, diffID: Digest, parent: Digest?, ownership: String, overlayXattrs: String, tool: String
        ) {
            self.chainID = chainID.description
            self.diffID = diffID.description
            self.parent = parent?.description
            self.ownership = ownership
            self.overlayXattrs = overlayXattrs
            self.tool = tool
        }

        /// The fields that say what the layer is (not when or how durably it was written).
        func sameLayer(as other: LayerRecord) -> Bool {
            chainID == other.chainID && diffID == other.diffID && parent == other.parent
        }
    }

    /// This boot's id: a layer written in another boot and never synced is not trusted.
    package static let bootID: String = {
        guard let bytes = try? OwnedFD.openForReading("/proc/sys/kernel/random/boot_id").readAll(limit: 256) else {
            return "unknown"
        }
        return String(decoding: bytes.filter { $0 > 0x20 }, as: UTF8.self)
    }()

    /// How old a layer must be before `makeDurable` syncs it: by then the kernel has normally
    /// written its data back (dirty data expires after 30 s), and the sync costs little.
    package static let durableAfter: Double = 60

    /// The record of the layer `chain`, if the store holds it complete.
    package func record(_ chain: Digest) -> LayerRecord? {
        guard
            let bytes = try? OwnedFD.openForReading(layerDirectory(chain) + "/layer.json", flags: O_NOFOLLOW)
                .readAll(limit: 1 << 16)
        else { return nil }
        return try? JSONDecoder().decode(LayerRecord.self, from: Data(bytes))
    }

    /// The layer `chain`, locked exclusively: a caller that gets it either finds the layer there
    /// (`present`) or populates it. Leftovers of a killed populate of this layer are removed here,
    /// under the lock, so nobody else is using them.
    package func lock(_ chain: Digest) throws(UnpackError) -> FileLock {
        let lockPath = path + "/locks/" + Self.name(chain)
        let lock: FileLock
        do throws(SystemError) {
            guard let taken = try FileLock.lock(lockPath, exclusive: true, wait: true) else {
                throw SystemError(call: "flock", errno: EWOULDBLOCK, path: lockPath)
            }
            lock = taken
        } catch {
            throw error.unpackError(
                "the store's lock for layer \(chain) cannot be taken", context: .init(path: lockPath))
        }
        removeStaging(of: chain)
        return lock
    }

    /// Whether the layer is complete, and was produced as `expected` says; a layer produced
    /// another way (another ownership mode) is refused, never reused.
    package func present(_ chain: Digest, expected: LayerRecord) throws(UnpackError) -> Bool {
        var st = stat()
        guard lstat(layerDirectory(chain), &st) == 0 else { return false }
        guard let found = record(chain) else {
            // A directory without its record was never published by a complete populate (the
            // record is written before the rename): it is not a layer.
            throw UnpackError(
                .invalidImage,
                "the store's layer directory \(layerDirectory(chain)) has no layer.json: remove it, or run oci-unpack store prune",
                context: .init(path: layerDirectory(chain)))
        }
        if found.durable == false && found.bootID != Self.bootID {
            // Written in another boot and never synced: a crash may have lost some of its data.
            // Unpacked again (the caller holds the layer's lock).
            let doomed = path + "/staging/" + Self.name(chain) + ".unsynced.\(getpid())"
            if rename(layerDirectory(chain), doomed) == 0 { try? removeDirectoryTree(doomed) }
            return false
        }
        guard found.sameLayer(as: expected) else {
            throw UnpackError(
                .invalidImage,
                "the store's layer \(chain) records diff_id \(found.diffID), not \(expected.diffID): the store is corrupt",
                context: .init(path: layerDirectory(chain)))
        }
        guard found.ownership == expected.ownership, found.overlayXattrs == expected.overlayXattrs else {
            throw UnpackError(
                .invalidArgument,
                "the store \(path) holds layer \(chain) unpacked with ownership \(found.ownership) and \(found.overlayXattrs).overlay xattrs; this unpack needs \(expected.ownership) and \(expected.overlayXattrs): use a store of its own for each",
                context: .init(path: layerDirectory(chain)))
        }
        return true
    }

    /// A fresh staging directory for populating `chain`: `diff/`, `work/`, `merged/`.
    package func stage(_ chain: Digest) throws(UnpackError) -> String {
        let staging = path + "/staging/" + Self.name(chain) + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do throws(SystemError) {
            try Self.makeDirectory(staging, mode: 0o700, mustBeNew: true)
            for name in ["diff", "work", "merged"] { try Self.makeDirectory(staging + "/" + name, mode: 0o755) }
        } catch {
            throw error.unpackError("the store's staging directory \(staging) cannot be created")
        }
        return staging
    }

    /// Publishes a populated layer: its record written and the directory renamed into place, so
    /// that no process sees a partial layer. Its data is not synced here (that would make every
    /// first unpack wait for the disk): the record says which boot wrote it and that it is not yet
    /// durable, `makeDurable` syncs it later, and a layer found after a reboot still not durable
    /// (a crash may have lost some of it) is unpacked again.
    package func commit(_ staging: String, _ record: LayerRecord, chain: Digest) throws(UnpackError) {
        do throws(SystemError) {
            try? removeDirectoryTree(staging + "/work")
            try? removeDirectoryTree(staging + "/merged")
            var record = record
            record.bootID = Self.bootID
            record.durable = false
            record.committedAt = Double(time(nil))
            try Self.writeFile(staging + "/layer.json", Self.json(record))
            let target = layerDirectory(chain)
            if rename(staging, target) != 0 { throw SystemError(call: "rename", errno: errno, path: target) }
            let layers = try OwnedFD.openForReading(path + "/layers", flags: O_DIRECTORY)
            _ = fsync(layers.rawValue)
        } catch {
            throw error.unpackError("the layer \(chain) cannot be published in the store \(path)")
        }
    }

    /// Syncs the store's filesystem once and marks durable every layer written in this boot at
    /// least `durableAfter` seconds ago that is not yet; returns how many. Run by every store
    /// unpack and prune.
    @discardableResult
    package func makeDurable() -> Int {
        let now = Double(time(nil))
        let pending = layers().compactMap { chain -> (Digest, LayerRecord)? in
            guard let record = record(chain), record.durable == false, record.bootID == Self.bootID,
                now - (record.committedAt ?? 0) >= Self.durableAfter
            else { return nil }
            return (chain, record)
        }
        guard !pending.isEmpty, let fd = try? OwnedFD.openForReading(path + "/layers", flags: O_DIRECTORY),
            (try? syncFilesystem(fd.rawValue, path: path)) != nil
        else { return 0 }
        for (chain, var record) in pending {
            record.durable = true
            let file = layerDirectory(chain) + "/layer.json"
            let temporary = file + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
            guard (try? Self.writeFile(temporary, Self.json(record))) != nil else { continue }
            if rename(temporary, file) != 0 { _ = unlink(temporary) }
        }
        return pending.count
    }

    /// Removes what a populate of `chain` left in `staging/` (a killed process). The caller holds
    /// the layer's lock.
    func removeStaging(of chain: Digest) {
        let prefix = Self.name(chain) + "."
        for name in (try? Self.names(in: path + "/staging")) ?? [] where name.hasPrefix(prefix) {
            let leftover = path + "/staging/" + name
            try? unmount(leftover + "/merged", detach: true)
            try? removeDirectoryTree(leftover)
        }
    }

    /// Every layer directory's chain ID.
    package func layers() -> [Digest] {
        ((try? Self.names(in: path + "/layers")) ?? []).compactMap { name in
            guard let dash = name.firstIndex(of: "-") else { return nil }
            return try? Digest(parsing: name[..<dash] + ":" + name[name.index(after: dash)...])
        }.sorted { $0.description < $1.description }
    }

    // MARK: - Bundles

    /// A bundle made from the store: which layers it mounts.
    package struct BundleRecord: Codable, Equatable, Sendable {
        package var id: String
        package var bundle: String
        package var layers: [String]

        package init(id: String, bundle: String, layers: [Digest]) {
            self.id = id
            self.bundle = bundle
            self.layers = layers.map(\.description)
        }
    }

    /// The file in a bundle that names the store and the bundle's record (so that `remove` can
    /// drop the record, and `prune` can tell a live bundle from a path reused by another).
    package static let bundleMarker = "oci-unpack-store.json"

    /// Records that `bundle` uses `layers`. The caller holds each layer's lock (shared at least),
    /// so a prune cannot remove them before this record exists.
    package func register(_ record: BundleRecord) throws(UnpackError) {
        let target = path + "/bundles/" + record.id + ".json"
        do throws(SystemError) {
            try Self.writeFile(target + ".tmp", Self.json(record))
            if rename(target + ".tmp", target) != 0 { throw SystemError(call: "rename", errno: errno, path: target) }
        } catch {
            throw error.unpackError("the store \(path) cannot record bundle \(record.bundle)")
        }
    }

    /// Drops the record `id` (a bundle removed, or one that failed before it was published).
    package func unregister(_ id: String) {
        _ = unlink(path + "/bundles/" + id + ".json")
    }

    /// Every bundle record, and whether its bundle is still there (its marker names this record).
    package func bundles() -> [(record: BundleRecord, live: Bool)] {
        let names = ((try? Self.names(in: path + "/bundles")) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return names.compactMap { name in
            guard
                let bytes = try? OwnedFD.openForReading(path + "/bundles/" + name, flags: O_NOFOLLOW).readAll(
                    limit: 1 << 20),
                let record = try? JSONDecoder().decode(BundleRecord.self, from: Data(bytes))
            else { return nil }
            return (record, Self.marker(of: record.bundle)?.id == record.id)
        }
    }

    /// What a bundle's marker says: the store and the record's id.
    package struct Marker: Codable, Equatable, Sendable {
        package var store: String
        package var id: String

        package init(store: String, id: String) {
            self.store = store
            self.id = id
        }
    }

    package static func marker(of bundle: String) -> Marker? {
        guard
            let bytes = try? OwnedFD.openForReading(bundle + "/" + bundleMarker, flags: O_NOFOLLOW).readAll(
                limit: 1 << 16)
        else { return nil }
        return try? JSONDecoder().decode(Marker.self, from: Data(bytes))
    }

    // MARK: - Prune

    /// What `prune` did.
    package struct PruneResult: Sendable, Equatable {
        package var removedLayers: [Digest] = []
        package var forgottenBundles: [String] = []
        /// Layers no live bundle uses but another process holds (populating or mounting them).
        package var busyLayers: [Digest] = []
    }

    /// Removes the records of bundles that are gone, then every layer no live bundle uses, unless
    /// another process holds its lock (populating it, or making a bundle of it right now), and the
    /// leftovers of killed populates.
    package func prune() -> PruneResult {
        makeDurable()
        var result = PruneResult()
        for (record, live) in bundles() where !live {
            unregister(record.id)
            result.forgottenBundles.append(record.bundle)
        }
        for chain in layers() {
            let lockPath = path + "/locks/" + Self.name(chain)
            guard let lock = try? FileLock.lock(lockPath, exclusive: true, wait: false) else {
                result.busyLayers.append(chain)
                continue
            }
            // Read after the lock: a bundle registered before its maker let the lock go is seen.
            let used = Set(bundles().filter(\.live).flatMap(\.record.layers))
            if used.contains(chain.description) {
                withExtendedLifetime(lock) {}
                continue
            }
            let directory = layerDirectory(chain)
            let doomed = path + "/staging/removing." + Self.name(chain) + ".\(getpid())"
            // Renamed out of layers/ first: a reader never sees a half-removed layer.
            if rename(directory, doomed) == 0 {
                try? removeDirectoryTree(doomed)
                result.removedLayers.append(chain)
            }
            withExtendedLifetime(lock) {}
        }
        // Staging left by killed populates whose lock nobody holds.
        for name in (try? Self.names(in: path + "/staging")) ?? [] {
            let base = name.split(separator: ".").first.map(String.init) ?? name
            let lockPath = path + "/locks/" + base
            if name.hasPrefix("removing.") || (try? FileLock.lock(lockPath, exclusive: true, wait: false)) != nil {
                try? unmount(path + "/staging/" + name + "/merged", detach: true)
                try? removeDirectoryTree(path + "/staging/" + name)
            }
        }
        return result
    }

    /// Bytes a directory tree takes on disk (blocks allocated), not following symlinks.
    package static func diskUsage(_ directory: String) -> Int64 {
        var total: Int64 = 0
        var pending = [directory]
        while let next = pending.popLast() {
            var st = stat()
            guard lstat(next, &st) == 0 else { continue }
            total += Int64(st.st_blocks) * 512
            if (st.st_mode & S_IFMT) == S_IFDIR {
                for name in (try? names(in: next)) ?? [] { pending.append(next + "/" + name) }
            }
        }
        return total
    }

    // MARK: - Files

    /// `value` as one line of JSON with sorted keys.
    static func json(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else { return [] }
        return [UInt8](data) + [UInt8(0x0a)]
    }

    /// `path` made absolute against the working directory (not resolved: symlinks stay).
    package static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (cwd == "/" ? "" : cwd) + "/" + path
    }

    static func makeDirectory(_ path: String, mode: mode_t, mustBeNew: Bool = false) throws(SystemError) {
        if mkdir(path, mode) == 0 { return }
        let code = errno
        guard code == EEXIST, !mustBeNew else { throw SystemError(call: "mkdir", errno: code, path: path) }
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw SystemError(call: "mkdir", errno: ENOTDIR, path: path)
        }
    }

    static func writeFile(_ path: String, _ bytes: [UInt8]) throws(SystemError) {
        let raw = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard raw >= 0 else { throw SystemError(call: "open", errno: errno, path: path) }
        let fd = OwnedFD(raw)
        try writeAll(fd.rawValue, bytes, path: path)
    }

    static func names(in directory: String) throws(SystemError) -> [String] {
        let fd = try OwnedFD.openForReading(directory, flags: O_DIRECTORY)
        return try Tree.children(of: fd.rawValue, Array(".".utf8)).map { String(decoding: $0, as: UTF8.self) }
    }
}
