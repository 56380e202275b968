import Glibc
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import UnpackSystem

/// A directory of the root being written: its fd and canonical path.
package struct DiskDirectory {
    let fd: OwnedFD
    let path: EntryPath
}

extension Applier.LayerState: LayerRecord {}

// The root directory as the tree `LayerRules` removes lower-layer paths from.
extension Applier: LayerTree {
    package func slot(_ name: [UInt8], in parent: DiskDirectory) -> PathKey { PathKey(parent.path.appending(name).key) }

    package func directoryKey(_ name: [UInt8], in parent: DiskDirectory) -> PathKey? {
        PathKey(parent.path.appending(name).key)
    }

    package func openDirectory(_ name: [UInt8], in parent: DiskDirectory) throws(SystemError) -> DiskDirectory? {
        guard
            let fd = try? parent.fd.openChild(
                bytes: name, flags: O_PATH_VALUE | O_DIRECTORY, display: parent.path.appending(name).description)
        else { return nil }
        return DiskDirectory(fd: fd, path: parent.path.appending(name))
    }

    package func children(of directory: DiskDirectory) throws(SystemError) -> [[UInt8]] {
        statistics.directoryListings += 1
        return try Tree.children(of: directory.fd.rawValue, Array(".".utf8))
    }

    package func remove(_ name: [UInt8], in parent: DiskDirectory, layer: inout LayerState) throws(SystemError) {
        layer.willModify(parent.path, fd: parent.fd.rawValue)
        try Tree.remove(in: parent.fd.rawValue, name[...])
        removed(parent.path.appending(name))
    }

    package func willChange(_ directory: DiskDirectory, layer: inout LayerState) {
        layer.willModify(directory.path, fd: directory.fd.rawValue)
    }
}

// Whiteouts and opaque markers, as the whiteout policy says: applied (only what lower layers
// made is hidden) or written in overlay form.
extension Applier {
    func applyWhiteout(_ path: EntryPath, _ action: LayerRules.Action, entry: TarEntry, layer: inout LayerState)
        throws(UnpackError)
    {
        try step(entry) { () throws(SystemError) in
            // Removals below other directories may take the cached parent with them.
            layer.cachedParent = nil
            switch (action, options.whiteouts) {
            case (.opaque, .apply): try applyOpaque(path, layer: &layer)
            case (.whiteout(let hidden), .apply): try applyWhiteout(path, hidden: hidden, layer: &layer)
            case (.opaque, .overlay(let xattrs)): try writeOpaque(path, xattrs, layer: &layer)
            case (.whiteout(let hidden), .overlay): try writeWhiteout(path, hidden: hidden, entry: entry, layer: &layer)
            default: return
            }
        }
    }

    /// The directory an opaque marker describes, created (with its parents) when no layer made
    /// it; nil when a symlink or a file stands there: then there is no lower directory to hide,
    /// and a symlink's target is not touched (the same as a plain whiteout under a file).
    private func markedDirectory(_ path: EntryPath, layer: inout LayerState) throws(SystemError) -> DiskDirectory? {
        let written = path.parent
        if !written.isRoot {
            guard
                let holder = try creatingDirectories(
                    &layer,
                    { () throws(SystemError) in
                        try root.resolveOrCreateDirectory(written.parent)
                    })
            else { return nil }
            var st = stat()
            let exists = written.name.withCString { fstatat(holder.fd.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) } == 0
            if exists && (st.st_mode & S_IFMT) != S_IFDIR { return nil }
        }
        let (fd, canonical) = try creatingDirectories(&layer) { () throws(SystemError) in
            try root.resolveDirectory(written, create: true)
        }
        layer.record(canonical, isDirectory: true)
        return DiskDirectory(fd: fd, path: canonical)
    }

    /// Hides every child of the marked directory that came from lower layers, wherever the marker
    /// stands among this layer's entries.
    private func applyOpaque(_ path: EntryPath, layer: inout LayerState) throws(SystemError) {
        guard let directory = try markedDirectory(path, layer: &layer) else { return }
        try LayerRules.hideLowerChildren(of: directory, key: PathKey(directory.path.key), tree: self, layer: &layer)
    }

    private func applyWhiteout(_ path: EntryPath, hidden: [UInt8], layer: inout LayerState) throws(SystemError) {
        guard let (fd, canonical) = try root.resolveExistingDirectory(path.parent) else {
            return  // Nothing below a missing directory (or a file) to hide.
        }
        try LayerRules.removeLower(in: DiskDirectory(fd: fd, path: canonical), hidden, tree: self, layer: &layer)
    }

    /// Overlay form: the marked directory gets `overlay.opaque=y`, which hides the lower layers'
    /// directory of the same path.
    private func writeOpaque(_ path: EntryPath, _ xattrs: WhiteoutPolicy.OverlayXattrs, layer: inout LayerState)
        throws(SystemError)
    {
        guard let directory = try markedDirectory(path, layer: &layer) else { return }
        try makeOpaque(directory, xattrs)
    }

    /// Sets `overlay.opaque=y` on `directory` (which changes its ctime only).
    private func makeOpaque(_ directory: DiskDirectory, _ xattrs: WhiteoutPolicy.OverlayXattrs) throws(SystemError) {
        let opened = try OwnedFD(
            retryingSyscall("openat") { openat(directory.fd.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) })
        let value: [UInt8] = [UInt8(ascii: "y")]
        let rc = value.withUnsafeBytes { CSys.fsetxattr(opened.rawValue, xattrs.opaqueName, $0) }
        if rc != 0 { throw SystemError(call: "fsetxattr", errno: errno, path: "\(directory.path)") }
    }

    /// Overlay form: the hidden name becomes a 0:0 character device (creating one needs no
    /// privilege since Linux 5.8), unless this layer made that path. A directory this layer made
    /// there keeps its content and hides the lower one's: it becomes opaque.
    private func writeWhiteout(_ path: EntryPath, hidden: [UInt8], entry: TarEntry, layer: inout LayerState)
        throws(SystemError)
    {
        guard case .overlay(let xattrs) = options.whiteouts else { return }
        let (parent, _, canonicalParent) = try parentDirectory(of: path, layer: &layer)
        let target = canonicalParent.appending(hidden)
        if layer.spares(target.key) { return }
        if layer.marks.holdsContent(PathKey(target.key)),
            let directory = try openDirectory(hidden, in: DiskDirectory(fd: parent, path: canonicalParent))
        {
            try makeOpaque(directory, xattrs)
            return
        }
        layer.willModify(canonicalParent, fd: parent.rawValue)
        let rc = hidden.withCString { mknodat(parent.rawValue, $0, S_IFCHR, CSys.makedev(0, 0)) }
        if rc != 0 && errno != EEXIST { throw SystemError(call: "mknodat", errno: errno, path: "\(target)") }
        layer.record(target, isDirectory: false)
        layer.whiteoutDevices.insert(PathKey(target.key))
    }

    /// Overlay form: a directory this layer made where it wrote a whiteout is opaque (the lower
    /// directory stays hidden, as the whiteout in the root would have removed it).
    func directoryReplacedWhiteout(_ path: EntryPath, layer: inout LayerState) throws(SystemError) {
        guard case .overlay(let xattrs) = options.whiteouts, !layer.whiteoutDevices.isEmpty,
            layer.whiteoutDevices.remove(PathKey(path.key)) != nil,
            let (fd, canonical) = try root.resolveExistingDirectory(path)
        else { return }
        try makeOpaque(DiskDirectory(fd: fd, path: canonical), xattrs)
    }
}
