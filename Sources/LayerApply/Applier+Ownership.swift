import Glibc
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import UnpackSystem

// Owners under each `Ownership`, the xattrs that record or need them, rootless directory modes,
// and the end of an unpack.
extension Applier {
    /// What the applier keeps across layers for one unpack.
    struct UnpackState {
        /// Rootless: directories whose mode would shut the user out (no owner read, write or
        /// search), by canonical path, with that mode. They stay 0700 and more for the user while
        /// layers are applied, so that the result does not depend on entry or layer order, and
        /// get their modes in `finishUnpack`.
        var restricted: [PathKey: (path: EntryPath, mode: mode_t)] = [:]
        /// How many restricted directories lie below each path: a removal looks for the ones it
        /// took with it only when there are some.
        var restrictedBelow: [PathKey: Int] = [:]
        /// Devices the kernel would not let this process make, and xattrs it would not let it set.
        var skippedDevices = Skipped()
        var skippedXattrs = Skipped()
    }

    /// A count and the first few paths, for one summary warning.
    struct Skipped {
        var count = 0
        var first: [String] = []

        mutating func add(_ path: String) {
            count += 1
            if first.count < 3 { first.append(path) }
        }

        var list: String { first.joined(separator: ", ") + (count > first.count ? ", …" : "") }
    }

    /// The host owner to give `entry`, or nil to leave what it was created with.
    func hostOwner(of entry: TarEntry, layer: inout LayerState) throws(UnpackError) -> (uid: uid_t, gid: gid_t)? {
        guard entry.uid >= 0, entry.uid < Int64(UInt32.max), entry.gid >= 0, entry.gid < Int64(UInt32.max) else {
            throw UnpackError(
                .corruptLayer, "tar entry \(entry.displayPath) has invalid owner \(entry.uid):\(entry.gid)",
                context: .init(path: entry.displayPath))
        }
        switch options.ownership {
        case .rootless:
            return nil
        case .preserve, .namespaced:
            if mapsAllIDs || idMapping.maps(uid: entry.uid, gid: entry.gid) {
                return (uid_t(entry.uid), gid_t(entry.gid))
            }
            // Root in a user namespace that does not map this owner: chown would fail with EINVAL.
            if !layer.warnedUnmapped {
                layer.warnedUnmapped = true
                options.warn(
                    "owner \(entry.uid):\(entry.gid) of \(entry.displayPath) is not mapped in this user namespace: ownership of such entries is not restored (first of this layer)"
                )
            }
            return nil
        case .mapped(let uids, let gids, let unmapped):
            let uid = uids.hostID(for: UInt32(entry.uid))
            let gid = gids.hostID(for: UInt32(entry.gid))
            if let uid, let gid { return (uid, gid) }
            if unmapped == .overflow { return (uid ?? Self.overflowID, gid ?? Self.overflowID) }
            let what = uid == nil ? "uid \(entry.uid), which --uid-map" : "gid \(entry.gid), which --gid-map"
            throw UnpackError(
                .invalidArgument,
                "tar entry \(entry.displayPath) is owned by \(what) does not map (--map-unmapped=overflow gives such ids to nobody)",
                context: .init(path: entry.displayPath))
        }
    }

    /// The kernel's default overflow id (`nobody`).
    static let overflowID: UInt32 = 65534

    /// The xattrs to set on `entry` when owners are not the image's own: rootless, the record of
    /// the owner (files and directories only: the kernel allows `user.*` on nothing else) in
    /// place of any the image carries, without what only privileged processes may set;
    /// id-mapped, file capabilities owned by the container's root.
    func ownershipXattrs(of entry: TarEntry) -> [(name: String, value: [UInt8])] {
        switch options.ownership {
        case .preserve, .namespaced:
            // In a namespace, the kernel stores file capabilities for its root by itself.
            return entry.xattrs
        case .rootless:
            var xattrs = entry.xattrs
            if !xattrs.isEmpty {
                xattrs.removeAll { $0.name == RootlessOwnerRecord.name }
                if !fullyPrivileged {
                    let before = xattrs.count
                    xattrs.removeAll { $0.name == FileCapability.name || $0.name.hasPrefix("trusted.") }
                    if xattrs.count < before { unpack.skippedXattrs.add(entry.displayPath) }
                }
            }
            if entry.kind == .regular || entry.kind == .directory,
                let record = RootlessOwnerRecord.value(uid: UInt32(entry.uid), gid: UInt32(entry.gid))
            {
                xattrs.append((RootlessOwnerRecord.name, record))
            }
            return xattrs
        case .mapped(let uids, _, _):
            return entry.xattrs.map { xattr in
                guard xattr.name == FileCapability.name,
                    let namespaced = FileCapability.namespaced(xattr.value, map: { uids.hostID(for: $0) })
                else { return xattr }
                return (xattr.name, namespaced)
            }
        }
    }

    /// Rootless: the mode to give directory `path` now, recording its final mode when that would
    /// shut the user out.
    func directoryMode(_ path: EntryPath, final mode: mode_t) -> mode_t {
        guard rootless else { return mode }
        let key = PathKey(path.key)
        if mode & 0o700 == 0o700 {
            if unpack.restricted[key] != nil { forgetRestricted(key, path) }
            return mode
        }
        if unpack.restricted.updateValue((path, mode), forKey: key) == nil {
            path.forEachAncestorKey { ancestor in
                unpack.restrictedBelow[PathKey(Array(ancestor)), default: 0] += 1
                return true
            }
        }
        return mode | 0o700
    }

    /// `path` was removed (with everything below it): its restricted directories are gone.
    func removed(_ path: EntryPath) {
        guard !unpack.restricted.isEmpty else { return }
        let key = PathKey(path.key)
        if unpack.restricted[key] != nil { forgetRestricted(key, path) }
        guard unpack.restrictedBelow[key, default: 0] > 0 else { return }
        let prefix = path.key + [UInt8(ascii: "/")]
        for (below, entry) in unpack.restricted where below.bytes.starts(with: prefix) {
            forgetRestricted(below, entry.path)
        }
    }

    private func forgetRestricted(_ key: PathKey, _ path: EntryPath) {
        unpack.restricted[key] = nil
        path.forEachAncestorKey { ancestor in
            let ancestorKey = PathKey(Array(ancestor))
            let left = unpack.restrictedBelow[ancestorKey, default: 1] - 1
            unpack.restrictedBelow[ancestorKey] = left > 0 ? left : nil
            return true
        }
    }

    /// Ends an unpack after its last layer: rootless directories get their final modes (deepest
    /// first, so that each is reached while its parent is still open to the user), and what the
    /// kernel did not allow is reported in one warning each.
    package func finishUnpack() throws(UnpackError) {
        let directories = unpack.restricted.values.sorted { $0.path.key.count > $1.path.key.count }
        unpack.restricted.removeAll()
        unpack.restrictedBelow.removeAll()
        for (path, mode) in directories {
            do throws(SystemError) {
                try setFinalMode(path, mode)
            } catch {
                throw error.unpackError(
                    "setting the mode of directory \(path) failed", context: .init(path: path.description))
            }
        }
        let devices = unpack.skippedDevices
        if devices.count > 0 {
            options.warn(
                "skipped \(devices.count) device node\(devices.count == 1 ? "" : "s") (creating devices needs root in the initial user namespace): \(devices.list)"
            )
        }
        let xattrs = unpack.skippedXattrs
        if xattrs.count > 0 {
            options.warn(
                "skipped trusted.* and security.capability xattrs of \(xattrs.count) entr\(xattrs.count == 1 ? "y" : "ies") (setting them needs root in the initial user namespace): \(xattrs.list)"
            )
        }
        unpack.skippedDevices = Skipped()
        unpack.skippedXattrs = Skipped()
    }

    /// chmod of the directory at canonical `path`, following nothing; one that is not there any
    /// more (or not a directory) is skipped.
    private func setFinalMode(_ path: EntryPath, _ mode: mode_t) throws(SystemError) {
        guard let parent = try root.openCanonicalDirectory(path.isRoot ? path : path.parent) else { return }
        let directory: OwnedFD
        do throws(SystemError) {
            // The root is the directory itself ("." is never a symlink).
            directory = try parent.openChild(
                bytes: path.isRoot ? Array(".".utf8)[...] : path.name, flags: O_RDONLY | O_DIRECTORY,
                display: path.description)
        } catch {
            if error.errno == ENOENT || error.errno == ENOTDIR || error.errno == ELOOP { return }
            throw error
        }
        if fchmod(directory.rawValue, mode) != 0 {
            throw SystemError(call: "fchmod", errno: errno, path: path.description)
        }
    }
}
