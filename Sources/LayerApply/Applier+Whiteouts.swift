import Glibc
import LayerStream
import OCIImage
import UnpackSystem

// Whiteouts and opaque markers: only what lower layers made is hidden.
extension Applier {
    func applyWhiteout(_ path: EntryPath, entry: TarEntry, layer: inout LayerState) throws(UnpackError) {
        try step(entry) { () throws(SystemError) in try applyWhiteoutEntry(path, entry: entry, layer: &layer) }
    }

    /// `applyWhiteout` below the entry's error mapping: everything here is a system call but the
    /// refusal of `.wh.`, `.wh..` and `.wh...`, which is checked first (`invalidWhiteoutName`).
    func applyWhiteoutEntry(_ path: EntryPath, entry: TarEntry, layer: inout LayerState) throws(SystemError) {
        // Removals below other directories may take the cached parent with them.
        layer.cachedParent = nil
        let name = path.name
        if name.elementsEqual(Self.opaqueMarker) {
            // Hide every child of the directory that came from lower layers, wherever the marker
            // stands among this layer's entries.
            let written = path.parent
            if !written.isRoot {
                // The marker describes the directory itself: when a lower layer left a symlink
                // (or a file) there, there is no lower directory to hide, and a symlink's target
                // is not touched. The same as a plain whiteout under a file: nothing to do.
                guard
                    let holder = try creatingDirectories(
                        &layer,
                        { () throws(SystemError) in
                            try root.resolveOrCreateDirectory(written.parent)
                        })
                else { return }
                var st = stat()
                let exists = written.name.withCString { fstatat(holder.fd.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) } == 0
                if exists && (st.st_mode & S_IFMT) != S_IFDIR { return }
            }
            // A marker in a directory no layer made creates it (and perhaps its parents).
            let (dir, directory) = try creatingDirectories(&layer) { () throws(SystemError) in
                try root.resolveDirectory(written, create: true)
            }
            guard layer.cleaned.insert(PathKey(directory.key)).inserted else { return }
            layer.willModify(directory, fd: dir.rawValue)
            layer.record(directory, isDirectory: true)
            statistics.directoryListings += 1
            for child in try Tree.children(of: dir.rawValue, Array(".".utf8)) {
                try removeLower(in: dir, directory.appending(child), layer: &layer)
            }
            return
        }
        if name.starts(with: Self.aufsMetaPrefix) {
            options.warn("ignoring aufs metadata entry \(entry.displayPath)")
            return
        }
        let hidden = Array(name.dropFirst(Self.whiteoutPrefix.count))
        guard let (parent, canonicalParent) = try root.resolveExistingDirectory(path.parent) else {
            return  // Nothing below a missing directory (or a file) to hide.
        }
        let target = canonicalParent.appending(hidden)
        if layer.spares(target.key) { return }
        layer.willModify(canonicalParent, fd: parent.rawValue)
        try removeLower(in: parent, target, layer: &layer)
    }

    /// Removes `name` unless this layer made it; a directory holding this layer's entries loses
    /// only its lower-layer children.
    func removeLower(in parent: OwnedFD, _ path: EntryPath, layer: inout LayerState) throws(SystemError) {
        let key = path.key
        if layer.spares(key) { return }
        if layer.holdsLayerContent(key) {
            let fd = path.name.withCString {
                openat(parent.rawValue, $0, O_PATH_VALUE | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if fd >= 0 {
                let dir = OwnedFD(fd)
                guard layer.cleaned.insert(PathKey(key)).inserted else { return }
                layer.willModify(path, fd: dir.rawValue)
                statistics.directoryListings += 1
                for child in try Tree.children(of: dir.rawValue, Array(".".utf8)) {
                    try removeLower(in: dir, path.appending(child), layer: &layer)
                }
                return
            }
        }
        try Tree.remove(in: parent.rawValue, path.name)
        removed(path)
    }
}
