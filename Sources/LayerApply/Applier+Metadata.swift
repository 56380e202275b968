import Glibc
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import UnpackSystem

// Owner, mode, xattrs and times, never through a symlink; directory times at the layer's end.
extension Applier {
    /// What to set on `entry` once created: its owner and mode unless a `fresh` entry already has
    /// them, its xattrs, and its times when `times` (directories get theirs at the layer's end).
    func metadata(of entry: TarEntry, layer: inout LayerState, fresh: Fresh?, times: Bool)
        throws(UnpackError) -> EntryMetadata
    {
        var metadata = EntryMetadata(
            path: entry.path, kind: entry.kind, owner: nil, mode: mode_t(entry.mode),
            xattrs: options.ownership == .preserve ? entry.xattrs : ownershipXattrs(of: entry),
            times: times ? (entry.atime ?? entry.mtime, entry.mtime) : nil)
        if let owner = try hostOwner(of: entry, layer: &layer), fresh?.owned(by: owner) != true {
            metadata.owner = owner
        }
        // Rootless, the owner record goes on before a mode that may take the user's write
        // permission away (setting a `user.*` xattr needs it).
        metadata.xattrsBeforeMode = rootless
        if fresh?.mode == mode_t(entry.mode) { metadata.mode = nil }
        // A default ACL replaces the umask for what is created below: set every mode from now on.
        if entry.xattrs.contains(where: { $0.name == Self.defaultACLName }) { defaultACL = true }
        return metadata
    }

    /// Owner, mode and xattrs of directory `path` (canonical), on its fd.
    func setMetadata(fd: Int32, entry: TarEntry, path: EntryPath, layer: inout LayerState) throws(UnpackError) {
        var metadata = try metadata(of: entry, layer: &layer, fresh: nil, times: false)
        metadata.mode = directoryMode(path, final: mode_t(entry.mode))
        let warn = options.warn
        try step(entry) { () throws(SystemError) in try metadata.apply(to: fd, warn: warn) }
    }

    /// The same for entries that cannot be opened (symlinks, devices, FIFOs): every call names the
    /// entry relative to its parent and does not follow it.
    func setMetadata(
        parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry, layer: inout LayerState, fresh: Fresh? = nil
    ) throws(UnpackError) {
        let metadata = try metadata(of: entry, layer: &layer, fresh: fresh, times: true)
        let warn = options.warn
        try step(entry) { () throws(SystemError) in
            try Self.setMetadata(metadata, parent: parent, name, entry: entry, warn: warn)
        }
    }

    /// The system calls of `setMetadata(parent:…)`.
    static func setMetadata(
        _ metadata: EntryMetadata, parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry,
        warn: (String) -> Void
    ) throws(SystemError) {
        if let owner = metadata.owner {
            let rc = name.withCString { fchownat(parent.rawValue, $0, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) }
            if rc != 0 { throw SystemError(call: "lchown", errno: errno, path: entry.displayPath) }
        }
        if let mode = metadata.mode, entry.kind != .symlink {
            let rc = name.withCString { fchmodat(parent.rawValue, $0, mode, AT_SYMLINK_NOFOLLOW) }
            if rc != 0 { throw SystemError(call: "fchmodat", errno: errno, path: entry.displayPath) }
        }
        if !metadata.xattrs.isEmpty {
            // lsetxattr has no *at form: name the entry through the parent's /proc fd link, which
            // is a real directory, and lsetxattr does not follow the last component.
            let procPath = Array("/proc/self/fd/\(parent.rawValue)/".utf8) + name
            for (xattr, value) in metadata.xattrs {
                let rc = procPath.withCString { p in value.withUnsafeBytes { CSys.lsetxattr(p, xattr, $0) } }
                if rc != 0 { try metadata.xattrFailed(xattr, warn: warn) }
            }
        }
        let rc = withTimes(entry.atime ?? entry.mtime, entry.mtime) { times in
            name.withCString { utimensat(parent.rawValue, $0, times, AT_SYMLINK_NOFOLLOW) }
        }
        if rc != 0 { throw SystemError(call: "utimensat", errno: errno, path: entry.displayPath) }
    }

    func finish(_ layer: inout LayerState) throws(SystemError) {
        let listed = Set(layer.directoryTimes.map { PathKey($0.0.key) })
        let restored = layer.savedTimes.values.filter { !listed.contains(PathKey($0.0.key)) }
        // Listed directories last to first (children before their parents); a directory the
        // layer describes twice takes its last entry's times, as it takes its last entry's other
        // attributes (layer.md: an existing directory's attributes are replaced), and as the
        // in-memory tree does.
        var applied: Set<PathKey> = []
        let listedLastFirst = layer.directoryTimes.reversed().filter { applied.insert(PathKey($0.0.key)).inserted }
        for (path, atime, mtime) in restored.sorted(by: { $0.0.components.count > $1.0.components.count })
            + listedLastFirst
        {
            try setTimes(path, atime: atime, mtime: mtime)
        }
        layer.directoryTimes.removeAll()
        layer.savedTimes.removeAll()
    }

    /// utimensat on a directory by its canonical path in the root, following nothing: one that a
    /// later entry removed or replaced (by a symlink, a file, or a symlink on the way) is skipped.
    func setTimes(_ path: EntryPath, atime: timespec, mtime: timespec) throws(SystemError) {
        if path.isRoot {
            if withTimes(atime, mtime, { utimensat(root.fd.rawValue, ".", $0, 0) }) != 0 {
                throw SystemError(call: "utimensat", errno: errno, path: "/")
            }
            return
        }
        guard let parent = try root.openCanonicalDirectory(path.parent) else { return }
        var st = stat()
        guard path.name.withCString({ fstatat(parent.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0,
            (st.st_mode & S_IFMT) == S_IFDIR
        else { return }
        let rc = withTimes(atime, mtime) { times in
            path.name.withCString { utimensat(parent.rawValue, $0, times, AT_SYMLINK_NOFOLLOW) }
        }
        if rc != 0 && errno != ENOENT { throw SystemError(call: "utimensat", errno: errno, path: path.description) }
    }
}
