import Glibc
import LayerEngine
import LayerStream
import OCIImage
import TarArchive
import UnpackSystem

// Creating entries: files, directories, symlinks, hardlinks, devices; collisions replace.
extension Applier {
    func apply(_ entry: TarEntry, reader: TarReader, layer: inout LayerState) throws(UnpackError) {
        let path = EntryPath(cleaning: entry.path)
        let name = path.name
        let action = try LayerRules.action(entry, at: path)
        switch action {
        case .create, .socket: break
        case .whiteout, .opaque:
            try applyWhiteout(path, action, entry: entry, layer: &layer)
            return
        case .aufsMetadata:
            if let warning = LayerRules.skipWarning(action, entry) { options.warn(warning) }
            return
        case .describeRoot:
            let rootFD = root.fd.rawValue
            let dir = try step(entry) { () throws(SystemError) in
                try OwnedFD(retryingSyscall("openat") { openat(rootFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) })
            }
            try setMetadata(fd: dir.rawValue, entry: entry, path: path, layer: &layer)
            layer.directoryTimes.append((path, entry.atime ?? entry.mtime, entry.mtime))
            // The root's new mode (setgid or not) decides the group of what is created in it.
            layer.cachedParent = nil
            return
        }
        let (parent, childGID, canonicalParent) = try step(entry) { () throws(SystemError) in
            try parentDirectory(of: path, layer: &layer)
        }
        // Usually no symlink is on the way and the path as written is canonical: no new key.
        let canonical = layer.cachedParent?.asWritten == true ? path : canonicalParent.appending(name)
        let fresh = shortcutHolds ? Fresh(uid: creatorUID, gid: childGID) : nil
        replaced = false
        switch entry.kind {
        case .directory:
            try makeDirectory(parent, name, entry: entry, path: canonical, layer: &layer)
            try step(entry) { () throws(SystemError) in try directoryReplacedWhiteout(canonical, layer: &layer) }
            layer.directoryTimes.append((canonical, entry.atime ?? entry.mtime, entry.mtime))
        case .regular:
            try writeFile(parent, name, entry: entry, reader: reader, layer: &layer, fresh: fresh)
        case .symlink:
            try step(entry) { () throws(SystemError) in
                try createReplacing(parent, name, call: "symlinkat", entry: entry) { name in
                    entry.linkTarget.withCString { target in symlinkat(target, parent.rawValue, name) }
                }
            }
            let checked = confirm(fresh, layer: &layer) { st in
                name.withCString { fstatat(parent.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) }
            }
            try setMetadata(parent: parent, name, entry: entry, layer: &layer, fresh: checked)
        case .hardlink:
            try makeHardlink(parent, name, entry: entry, path: canonical)
        case .characterDevice, .blockDevice, .fifo:
            guard try step(entry, { () throws(SystemError) in try makeNode(parent, name, entry: entry) }) else {
                if replaced { removed(canonical) }  // a skipped device may still have replaced a path
                return
            }
            try setMetadata(parent: parent, name, entry: entry, layer: &layer)
        case .socket:
            // Its parents were made, as for any entry; the socket itself is left out.
            if let warning = LayerRules.skipWarning(.socket, entry) { options.warn(warning) }
            return
        }
        // What a file, link or node replaced is gone, with any restricted directory in it (a
        // directory entry replaces only what is not a directory, where none can be).
        if replaced && entry.kind != .directory { removed(canonical) }
        layer.record(canonical, isDirectory: entry.kind == .directory)
        if entry.kind == .directory || entry.kind == .symlink || replaced {
            // A new directory or symlink, or a replaced path, can change where a path through a
            // symlink resolves: look the next parent up afresh.
            layer.cachedParent = nil
        }
    }

    /// `resolve`, a resolution that may create missing directories, with the times of every
    /// existing directory it made one in saved for the layer's end (as an entry's parent's are),
    /// whether it succeeds or not: the one place the root's record of them is taken.
    func creatingDirectories<T>(_ layer: inout LayerState, _ resolve: () throws(SystemError) -> T)
        throws(SystemError) -> T
    {
        defer {
            for (directory, before) in root.takeExtendedDirectories() { layer.willModify(directory, status: before) }
        }
        return try resolve()
    }

    /// The entry's parent directory, from the one-entry cache when consecutive entries share it
    /// (the common case: a tar lists a directory's files together). The cached fd stays right
    /// because any entry that could replace that directory or an ancestor has another parent and
    /// so replaces the cache first; whiteouts, which remove elsewhere, clear it.
    ///
    /// Also returns the group that entries created in it get: the directory's own when it is
    /// setgid, else the creator's.
    func parentDirectory(of path: EntryPath, layer: inout LayerState) throws(SystemError) -> (
        OwnedFD, gid_t, EntryPath
    ) {
        if let cached = layer.cachedParent, cached.key.elementsEqual(path.parentKey) {
            return (cached.fd, cached.childGID, cached.canonical)
        }
        let parentPath = path.parent
        let (fd, canonical) = try creatingDirectories(&layer) { () throws(SystemError) in
            try root.resolveDirectory(parentPath, create: true)
        }
        let st = try fd.status()
        layer.willModify(canonical, status: st)
        let childGID = (st.st_mode & S_ISGID) != 0 ? st.st_gid : creatorGID
        layer.cachedParent = (parentPath.key, fd, childGID, canonical, canonical.key == parentPath.key)
        layer.confirmed.removeAll(keepingCapacity: true)
        return (fd, childGID, canonical)
    }

    /// Checks the metadata shortcut's prediction against what the kernel gave the first entry of
    /// its mode created in a directory: the prediction back when it holds (and that mode is marked
    /// confirmed there), else nil, and the shortcut is off from here on.
    func confirm(_ fresh: Fresh?, layer: inout LayerState, status: (inout stat) -> Int32) -> Fresh? {
        guard let predicted = fresh, !layer.confirmed.contains(predicted.mode) else { return fresh }
        var st = stat()
        guard status(&st) == 0 else { return nil }
        let modeHolds = predicted.mode.map { $0 == st.st_mode & 0o7777 } ?? true
        guard st.st_uid == predicted.uid, st.st_gid == predicted.gid, modeHolds else {
            shortcutHolds = false
            return nil
        }
        layer.confirmed.append(predicted.mode)
        return predicted
    }

    /// Runs `create` (an *at call that fails with EEXIST when the name is taken); when the name is
    /// taken, removes what is there (the link itself, or a whole tree) and tries once more. Trying
    /// first saves a stat per entry on the common path, where nothing is in the way.
    func createReplacing(
        _ parent: OwnedFD, _ name: ArraySlice<UInt8>, call: String, entry: TarEntry,
        _ create: (UnsafePointer<CChar>) -> Int32
    ) throws(SystemError) {
        if name.withCString(create) == 0 { return }
        guard errno == EEXIST else { throw SystemError(call: call, errno: errno, path: entry.displayPath) }
        try Tree.remove(in: parent.rawValue, name)
        replaced = true
        if name.withCString(create) != 0 { throw SystemError(call: call, errno: errno, path: entry.displayPath) }
    }

    /// A device node or FIFO; `false` when skipped (devices need root).
    func makeNode(_ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry) throws(SystemError) -> Bool {
        let type: mode_t = entry.kind == .fifo ? S_IFIFO : entry.kind == .blockDevice ? S_IFBLK : S_IFCHR
        let device = entry.kind == .fifo ? 0 : CSys.makedev(entry.deviceMajor, entry.deviceMinor)
        do {
            try createReplacing(parent, name, call: "mknodat", entry: entry) { name in
                mknodat(parent.rawValue, name, type | mode_t(entry.mode & 0o777), device)
            }
            return true
        } catch {
            guard error.errno == EPERM && !fullyPrivileged else { throw error }
            unpack.skippedDevices.add(entry.displayPath)  // one warning at the end of the unpack
            return false
        }
    }

    func makeDirectory(
        _ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry, path: EntryPath, layer: inout LayerState
    ) throws(UnpackError) {
        let dir = try step(entry) { () throws(SystemError) in try makeDirectory(parent, name, entry: entry) }
        try setMetadata(fd: dir.rawValue, entry: entry, path: path, layer: &layer)
    }

    /// The directory `name` in `parent`, made (0700 until its metadata is set) unless one is there,
    /// and opened.
    func makeDirectory(_ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry) throws(SystemError)
        -> OwnedFD
    {
        let mkdirat = options.systemCalls.mkdirat
        if name.withCString({ mkdirat(parent.rawValue, $0, 0o700) }) != 0 {
            guard errno == EEXIST else { throw SystemError(call: "mkdirat", errno: errno, path: entry.displayPath) }
            // An existing directory keeps its children; anything else in the way is replaced.
            var st = stat()
            let isDirectory =
                name.withCString { fstatat(parent.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) } == 0
                && (st.st_mode & S_IFMT) == S_IFDIR
            if !isDirectory {
                try createReplacing(parent, name, call: "mkdirat", entry: entry) { mkdirat(parent.rawValue, $0, 0o700) }
            }
        }
        return try parent.openChild(bytes: name, flags: O_RDONLY | O_DIRECTORY, display: entry.displayPath)
    }

    func writeFile(
        _ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry, reader: TarReader, layer: inout LayerState,
        fresh: Fresh?
    ) throws(UnpackError) {
        // Created with its final mode when the umask alone decides the result (no default ACL, no
        // setuid/setgid/sticky bit, which a later chown would clear): then, usually, no chmod.
        var fresh = fresh
        var createMode: mode_t = 0o600
        // Rootless, a file that gets xattrs keeps owner write until they are set.
        let keepsWrite =
            !rootless || entry.mode & 0o200 != 0 || (entry.xattrs.isEmpty && entry.uid == 0 && entry.gid == 0)
        if fresh != nil, let umask, !defaultACL, entry.mode & 0o7000 == 0, keepsWrite {
            createMode = mode_t(entry.mode)
            fresh?.mode = createMode & ~umask
        }
        var fd: Int32 = -1
        let calls = options.systemCalls
        try step(entry) { () throws(SystemError) in
            try createReplacing(parent, name, call: "openat", entry: entry) { name in
                fd = calls.openat(
                    parent.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, createMode)
                return fd >= 0 ? 0 : -1
            }
        }
        let file = OwnedFD(fd)
        fresh = confirm(fresh, layer: &layer) { fstat(fd, &$0) }
        let metadata = try metadata(of: entry, layer: &layer, fresh: fresh, times: true)
        if let finisher, entry.size <= FileFinisher.maxFileBytes {
            // Copy the data out of the tar stream; the finisher thread does the rest.
            var data: [UInt8] = []
            data.reserveCapacity(Int(max(entry.size, 0)))
            var blocks: [(offset: Int64, range: Range<Int>)] = []
            try reader.readData { (block, offset) throws(UnpackError) in
                try checkpoint()
                try Self.checkBlock(offset: offset, count: block.count, delivered: data.count, of: entry)
                let start = data.count
                data.append(contentsOf: block)
                // Only a sparse file needs its block list.
                if offset != Int64(start) || !blocks.isEmpty {
                    if blocks.isEmpty && start > 0 { blocks.append((0, 0..<start)) }
                    blocks.append((offset, start..<data.count))
                }
            }
            try finisher.submit(.init(file: file, data: data, blocks: blocks, size: entry.size, metadata: metadata))
            return
        }
        var end: Int64 = 0
        var delivered = 0
        try reader.readData { (block, offset) throws(UnpackError) in
            // A single file can be gigabytes: let a signal stop it between blocks.
            try checkpoint()
            try Self.checkBlock(offset: offset, count: block.count, delivered: delivered, of: entry)
            delivered += block.count
            do throws(SystemError) {
                try writeAll(file.rawValue, block, at: offset, path: entry.displayPath, calls: calls)
            } catch {
                throw error.unpackError("writing \(entry.displayPath) failed", context: .init(path: entry.displayPath))
            }
            end = max(end, offset + Int64(block.count))
        }
        let size = entry.size
        let warn = options.warn
        try step(entry) { () throws(SystemError) in
            // A sparse file ending in a hole.
            if end < size && ftruncate(file.rawValue, off_t(size)) != 0 {
                throw SystemError(call: "ftruncate", errno: errno, path: entry.displayPath)
            }
            try metadata.apply(to: file.rawValue, warn: warn)
        }
    }

    /// A data block must lie within the entry's size, and all blocks together must fit in it: a
    /// crafted sparse map must not make a small entry write (or, buffered, hold) more.
    static func checkBlock(offset: Int64, count: Int, delivered: Int, of entry: TarEntry)
        throws(UnpackError)
    {
        let (end, overflow) = offset.addingReportingOverflow(Int64(count))
        guard offset >= 0, !overflow, end <= entry.size, Int64(delivered) + Int64(count) <= entry.size else {
            throw UnpackError(
                .corruptLayer,
                "tar entry \(entry.displayPath) has data beyond its size of \(entry.size) bytes (a corrupt sparse map?)",
                context: .init(path: entry.displayPath))
        }
    }

    func makeHardlink(_ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry, path: EntryPath)
        throws(UnpackError)
    {
        let targetPath = EntryPath(cleaning: entry.linkTarget)
        let targetDisplay = DisplayText.escaping(entry.linkTarget)
        guard !targetPath.isRoot else {
            throw UnpackError(
                .unsafePath, "hardlink \(entry.displayPath) points at the root directory",
                context: .init(path: entry.displayPath))
        }
        let root = self.root
        guard
            let targetParent = try step(
                entry,
                { () throws(SystemError) in
                    try root.resolveExistingDirectory(targetPath.parent)
                })
        else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at \(targetDisplay), which does not exist",
                context: .init(path: entry.displayPath))
        }
        var target = stat()
        guard
            targetPath.name.withCString({ fstatat(targetParent.fd.rawValue, $0, &target, AT_SYMLINK_NOFOLLOW) }) == 0
        else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at \(targetDisplay), which does not exist",
                context: .init(path: entry.displayPath))
        }
        guard (target.st_mode & S_IFMT) != S_IFDIR else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at directory \(targetDisplay)",
                context: .init(path: entry.displayPath))
        }
        var existing = stat()
        if name.withCString({ fstatat(parent.rawValue, $0, &existing, AT_SYMLINK_NOFOLLOW) }) == 0 {
            if existing.st_ino == target.st_ino && existing.st_dev == target.st_dev { return }
            // A target inside the directory the link replaces would go with it (as the in-memory
            // tree sees it too): refused, rather than failing halfway with ENOENT.
            if (existing.st_mode & S_IFMT) == S_IFDIR,
                LayerRules.hardlinkTargetIsInside(targetParent.canonical, replacedDirectory: path)
            {
                throw UnpackError(
                    .corruptLayer,
                    "hardlink \(entry.displayPath) points at \(targetDisplay), inside the directory it would replace",
                    context: .init(path: entry.displayPath))
            }
            try step(entry) { () throws(SystemError) in try Tree.remove(in: parent.rawValue, name) }
            replaced = true
        }
        // Flags 0: a hardlink to a symlink links the symlink itself.
        let rc = targetPath.name.withCString { t in
            name.withCString { linkat(targetParent.fd.rawValue, t, parent.rawValue, $0, 0) }
        }
        if rc != 0 {
            throw systemFailure(SystemError(call: "linkat", errno: errno, path: entry.displayPath), entry: entry)
        }
    }
}
