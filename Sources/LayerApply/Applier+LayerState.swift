import Glibc
import LayerEngine
import LayerStream
import OCIImage
import UnpackSystem

extension Applier {
    /// Every path in the layer state is canonical (see `RootDirectory.resolveDirectory`): the
    /// directory an entry resolves to, not its path as written, so `l/.wh.f` with `l -> real`
    /// spares this layer's `real/f`, and a directory's saved times belong to the directory.
    package struct LayerState {
        /// The paths and directories this layer made, and those it cleaned (`LayerRules`).
        package var marks = LayerMarks<PathKey, PathKey>()
        /// Directory times, set after all entries (children change a directory's mtime).
        var directoryTimes: [(EntryPath, timespec, timespec)] = []
        /// The times of directories this layer changed without listing them, as they were before:
        /// restored at the end so that the result does not depend on when it was unpacked.
        var savedTimes: [PathKey: (EntryPath, timespec, timespec)] = [:]
        var warnedUnmapped = false
        /// Overlay form: the whiteout devices this layer wrote. A directory entry that replaces one
        /// hides the lower directory as the whiteout did: it is made opaque.
        var whiteoutDevices: Set<PathKey> = []
        /// The parent of the last recorded path (its ancestors are in `directories`).
        var lastRecordedParent: [UInt8] = []
        /// The last entry's parent directory (see `parentDirectory(of:layer:)`) and its canonical
        /// path.
        var cachedParent: (key: [UInt8], fd: OwnedFD, childGID: gid_t, canonical: EntryPath, asWritten: Bool)?
        /// The modes the metadata shortcut was confirmed for in the cached parent (`nil`: a symlink,
        /// owner only): each requested mode is checked once per directory, since a filesystem may
        /// mask some bits and not others.
        var confirmed: [mode_t?] = []

        mutating func record(_ path: EntryPath, isDirectory: Bool) {
            if isDirectory {
                marks.directories.insert(PathKey(path.key))
            } else {
                marks.slots.insert(PathKey(path.key))
            }
            // Consecutive entries usually share a parent, already recorded with its ancestors.
            guard !path.parentKey.elementsEqual(lastRecordedParent) else { return }
            // Nearest first: once an ancestor is known, so are all of its own ancestors.
            path.forEachAncestorKey { marks.directories.insert(PathKey(Array($0))).inserted }
            lastRecordedParent = Array(path.parentKey)
        }

        /// Remembers the times of `directory` (open as `fd`) before its first change in this layer.
        mutating func willModify(_ directory: EntryPath, fd: Int32) {
            guard savedTimes[PathKey(directory.key)] == nil else { return }
            var st = stat()
            if fstat(fd, &st) == 0 { willModify(directory, status: st) }
        }

        /// The same with the directory's status at hand.
        mutating func willModify(_ directory: EntryPath, status st: stat) {
            let key = PathKey(directory.key)
            guard savedTimes[key] == nil else { return }
            savedTimes[key] = (directory, st.st_atim, st.st_mtim)
        }

        func spares(_ key: [UInt8]) -> Bool { marks.spares(PathKey(key)) }
    }
}
