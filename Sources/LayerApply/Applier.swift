import Glibc
import LayerStream
import OCIImage
import UnpackSystem

/// How entries are applied.
package struct ApplyOptions: Sendable {
    /// Restore uid/gid (lchown). Default: when running as root. Without it, ownership is skipped
    /// with one warning per layer.
    package var preserveOwnership: Bool
    /// Use the userspace in-root resolver even where openat2 exists (tests).
    package var forceUserspaceResolver: Bool
    /// Finish small files (data, owner, mode, xattrs, times) on a second thread; off, everything
    /// happens on the applier's thread (tests cover both).
    package var finishFilesInParallel: Bool
    /// Receives warnings (skipped devices, unsupported xattrs, libarchive warnings).
    package var warn: @Sendable (String) -> Void
    /// Entry count, path and xattr limits (the others are enforced by the pipeline).
    package var limits: UnpackLimits
    /// Tests only: a umask to assume instead of the process's (a wrong one must be caught by the
    /// per-directory check of the metadata shortcut).
    var assumedUmask: mode_t?

    package init(
        preserveOwnership: Bool = geteuid() == 0, forceUserspaceResolver: Bool = false,
        finishFilesInParallel: Bool = true,
        warn: @escaping @Sendable (String) -> Void = { _ in }, limits: UnpackLimits = .init()
    ) {
        self.limits = limits
        self.preserveOwnership = preserveOwnership
        self.forceUserspaceResolver = forceUserspaceResolver
        self.finishFilesInParallel = finishFilesInParallel
        self.warn = warn
    }
}

/// Applies tar layers, in order, onto a root filesystem directory with the layer.md semantics:
/// whiteouts and opaque markers hide only what lower layers made, an existing directory keeps its
/// children when a directory entry lands on it, and any other collision replaces the old path.
///
/// Every path is resolved inside the root (see `RootDirectory`); the last component is never
/// followed, and every metadata call works on an fd or with AT_SYMLINK_NOFOLLOW.
package final class Applier {
    package let root: RootDirectory
    private let options: ApplyOptions
    /// Called between entries; throws to stop (interrupts).
    private let checkpoint: () throws(UnpackError) -> Void

    /// Work counters, for tests that prove crafted layers cannot make the work superlinear.
    package struct Statistics: Sendable, Equatable {
        /// Directories listed to apply whiteouts and opaque markers.
        package var directoryListings = 0
        /// Entries applied.
        package var entries = 0
    }

    package private(set) var statistics = Statistics()
    /// Whether the current entry removed something in its way (then the parent cache is dropped).
    private var replaced = false
    /// Finishes small files on a second thread during `apply`.
    private var finisher: FileFinisher?
    /// The owner of what this process creates (a setgid parent directory overrides the group).
    private let creatorUID = geteuid()
    private let creatorGID = getegid()
    /// The process umask, when it could be read: a file created with its final mode under it then
    /// needs no chmod. Read once; changing the umask during an unpack is not supported.
    private let umask: mode_t?
    /// Whether the metadata shortcut still holds: the first entry of each mode created in each
    /// directory is checked with fstat against the prediction, and one miss (a filesystem that decides owners
    /// or modes itself: `grpid` mounts, NFS squashing, NFSv4 ACLs, `fmask`) turns it off for the
    /// rest of the unpack.
    private var shortcutHolds = true
    /// Whether a default ACL may apply to new files (the root has one, or a layer set one): it
    /// replaces the umask, so every mode is then set explicitly.
    private var defaultACL: Bool
    /// The ids this process can give files (all of them outside a user namespace).
    private let idMapping = IDMapping.current

    package init(
        rootPath: String, options: ApplyOptions = .init(),
        checkpoint: @escaping () throws(UnpackError) -> Void = {}
    ) throws(UnpackError) {
        root = try RootDirectory(path: rootPath, forceUserspaceResolver: options.forceUserspaceResolver)
        self.options = options
        self.checkpoint = checkpoint
        umask = options.assumedUmask ?? Self.readUmask()
        // ENODATA (no ACL) or ENOTSUP (no ACLs here) both mean none; anything else, assume one.
        // `/.` names the directory itself even when rootPath is a symlink to it.
        let probe = CSys.lgetxattrSize(rootPath + "/.", Self.defaultACLName)
        defaultACL = probe >= 0 || (errno != ENODATA && errno != ENOTSUP && errno != EOPNOTSUPP)
    }

    private static let defaultACLName = "system.posix_acl_default"

    /// The `Umask:` line of /proc/self/status (Linux 4.7 and later), or nil.
    static func readUmask() -> mode_t? {
        guard let status = try? OwnedFD.openForReading("/proc/self/status").readAll(limit: 1 << 16) else {
            return nil
        }
        // The line "Umask:\t0022", read as bytes (String splitting costs more at start-up than the
        // whole rest of the applier's set-up).
        var lineStart = status.startIndex
        while lineStart < status.endIndex {
            let lineEnd = status[lineStart...].firstIndex(of: 0x0a) ?? status.endIndex
            let line = status[lineStart..<lineEnd]
            lineStart = lineEnd + 1
            guard line.starts(with: "Umask:".utf8) else { continue }
            let digits = line.dropFirst(6).drop(while: { $0 == 0x09 || $0 == 0x20 })
            guard !digits.isEmpty, digits.count <= 6 else { return nil }
            var value: mode_t = 0
            for digit in digits {
                guard (0x30...0x37).contains(digit) else { return nil }
                value = value << 3 | mode_t(digit - 0x30)
            }
            return value
        }
        return nil
    }

    /// What an entry just created by this applier already has, so that setting it again can be
    /// skipped: owner (the creator, or a setgid parent's group) and, when known, mode.
    struct Fresh {
        var uid: uid_t
        var gid: gid_t
        var mode: mode_t?

        func owned(as entry: TarEntry) -> Bool { Int64(uid) == entry.uid && Int64(gid) == entry.gid }
    }

    /// Applies every entry of `reader`; returns the number of entries. `onEntry` runs after each.
    @discardableResult
    package func apply(_ reader: TarReader, onEntry: (() -> Void)? = nil) throws(UnpackError) -> Int {
        var layer = LayerState()
        var count = 0
        root.resetSymlinkBudget(options.limits.maxSymlinkBytesPerLayer)
        // Without a second thread (a process limit), files are finished here.
        finisher = options.finishFilesInParallel ? try? FileFinisher(warn: options.warn) : nil
        defer {
            finisher?.stop()
            finisher = nil
        }
        while let entry = try reader.next() {
            try checkpoint()
            onEntry?()
            count += 1
            statistics.entries += 1
            try check(entry, count: count)
            do {
                try apply(entry, reader: reader, layer: &layer)
            } catch let error as SystemError {
                throw systemFailure(error, entry: entry)
            } catch let error as UnpackError {
                // An error carrying a digest came from the layer stream (the reader thread), not
                // from this entry: naming the entry would point at the wrong culprit.
                throw error.context.digest == nil ? error.adding(path: entry.displayPath) : error
            } catch {
                throw UnpackError(.internal, "\(error)", context: .init(path: entry.displayPath))
            }
        }
        try finisher?.drain()
        do {
            try finish(&layer)
        } catch {
            throw error.unpackError("restoring directory times failed")
        }
        return count
    }

    // MARK: - Per-layer state

    /// Every path in the layer state is canonical (see `RootDirectory.resolveDirectory`): the
    /// directory an entry resolves to, not its path as written, so `l/.wh.f` with `l -> real`
    /// spares this layer's `real/f`, and a directory's saved times belong to the directory.
    private struct LayerState {
        /// Non-directory paths this layer created: whiteouts of this layer never touch them.
        var paths: Set<PathKey> = []
        /// Directories this layer listed, and every ancestor of its paths: whiteouts descend into
        /// them and remove only what lower layers put there.
        var directories: Set<PathKey> = []
        /// Directory times, set after all entries (children change a directory's mtime).
        var directoryTimes: [(EntryPath, timespec, timespec)] = []
        /// The times of directories this layer changed without listing them, as they were before:
        /// restored at the end so that the result does not depend on when it was unpacked.
        var savedTimes: [PathKey: (EntryPath, timespec, timespec)] = [:]
        var warnedOwnership = false
        var warnedUnmapped = false
        /// Directories of this layer whose lower-layer children are already gone (an opaque marker
        /// or a whiteout processed them): further markers for them have nothing to do, which keeps
        /// crafted layers (thousands of markers for one directory) linear.
        var cleaned: Set<PathKey> = []
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
                directories.insert(PathKey(path.key))
            } else {
                paths.insert(PathKey(path.key))
            }
            // Consecutive entries usually share a parent, already recorded with its ancestors.
            guard !path.parentKey.elementsEqual(lastRecordedParent) else { return }
            // Nearest first: once an ancestor is known, so are all of its own ancestors.
            path.forEachAncestorKey { directories.insert(PathKey(Array($0))).inserted }
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

        func spares(_ key: [UInt8]) -> Bool { paths.contains(PathKey(key)) }
        func holdsLayerContent(_ key: [UInt8]) -> Bool { directories.contains(PathKey(key)) }
    }

    // MARK: - Entries

    private func check(_ entry: TarEntry, count: Int) throws(UnpackError) {
        let limits = options.limits
        // Built only when a limit is exceeded: this runs for every entry.
        var context: UnpackError.Context { UnpackError.Context(path: String(entry.displayPath.prefix(200))) }
        guard count <= limits.maxEntriesPerLayer else {
            throw UnpackError(
                .limitExceeded,
                "the layer has more than \(limits.maxEntriesPerLayer) entries (limit entries-per-layer)",
                context: context)
        }
        guard entry.path.count <= limits.maxPathBytes, entry.linkTarget.count <= limits.maxPathBytes else {
            throw UnpackError(
                .limitExceeded,
                "tar entry \(context.path ?? "") has a path or link target longer than \(limits.maxPathBytes) bytes (limit path-bytes)",
                context: context)
        }
        guard Self.depth(of: entry.path) < limits.maxPathDepth else {
            throw UnpackError(
                .limitExceeded,
                "tar entry \(context.path ?? "") is nested deeper than \(limits.maxPathDepth) directories (limit path-depth)",
                context: context)
        }
        let xattrBytes = entry.xattrs.reduce(0) { $0 + $1.name.utf8.count + $1.value.count }
        guard xattrBytes <= limits.maxXattrBytesPerEntry else {
            throw UnpackError(
                .limitExceeded,
                "tar entry \(context.path ?? "") carries \(xattrBytes) bytes of xattrs, over the \(limits.maxXattrBytesPerEntry)-byte limit (limit xattr-bytes-per-entry)",
                context: context)
        }
    }

    /// Directories above an entry: its components, not counting empty ones (`a////b`) or `.`,
    /// less one. `..` is counted as written (an upper bound on the cleaned depth).
    static func depth(of path: [UInt8]) -> Int {
        var components = 0
        var length = 0
        var dotOnly = true
        for byte in path {
            if byte == UInt8(ascii: "/") {
                if length > 0 && !(dotOnly && length == 1) { components += 1 }
                length = 0
                dotOnly = true
            } else {
                length += 1
                if byte != UInt8(ascii: ".") { dotOnly = false }
            }
        }
        if length > 0 && !(dotOnly && length == 1) { components += 1 }
        return max(components - 1, 0)
    }

    private static let whiteoutPrefix = Array(".wh.".utf8)
    private static let opaqueMarker = Array(".wh..wh..opq".utf8)
    private static let aufsMetaPrefix = Array(".wh..wh.".utf8)

    private func apply(_ entry: TarEntry, reader: TarReader, layer: inout LayerState) throws {
        let path = EntryPath(cleaning: entry.path)
        let name = path.name
        if name.starts(with: Self.whiteoutPrefix) {
            try applyWhiteout(path, entry: entry, layer: &layer)
            return
        }
        if path.isRoot {
            guard entry.kind == .directory else {
                throw UnpackError(
                    .unsafePath, "tar entry \(entry.displayPath) would replace the root directory",
                    context: .init(path: entry.displayPath))
            }
            let dir = try OwnedFD(
                retryingSyscall("openat") { openat(root.fd.rawValue, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) })
            try setMetadata(fd: dir.rawValue, entry: entry, layer: &layer)
            layer.directoryTimes.append((path, entry.atime ?? entry.mtime, entry.mtime))
            // The root's new mode (setgid or not) decides the group of what is created in it.
            layer.cachedParent = nil
            return
        }
        let (parent, childGID, canonicalParent) = try parentDirectory(of: path, layer: &layer)
        // Usually no symlink is on the way and the path as written is canonical: no new key.
        let canonical = layer.cachedParent?.asWritten == true ? path : canonicalParent.appending(name)
        let fresh = shortcutHolds ? Fresh(uid: creatorUID, gid: childGID) : nil
        replaced = false
        switch entry.kind {
        case .directory:
            try makeDirectory(parent, name, entry: entry, layer: &layer)
            layer.directoryTimes.append((canonical, entry.atime ?? entry.mtime, entry.mtime))
        case .regular:
            try writeFile(parent, name, entry: entry, reader: reader, layer: &layer, fresh: fresh)
        case .symlink:
            try createReplacing(parent, name, call: "symlinkat", entry: entry) { name in
                entry.linkTarget.withCString { target in symlinkat(target, parent.rawValue, name) }
            }
            let checked = confirm(fresh, layer: &layer) { st in
                name.withCString { fstatat(parent.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) }
            }
            try setMetadata(parent: parent, name, entry: entry, layer: &layer, fresh: checked)
        case .hardlink:
            try makeHardlink(parent, name, entry: entry)
        case .characterDevice, .blockDevice, .fifo:
            guard try makeNode(parent, name, entry: entry) else { return }
            try setMetadata(parent: parent, name, entry: entry, layer: &layer)
        case .socket:
            options.warn("skipping socket \(entry.displayPath): sockets cannot be unpacked")
            return
        }
        layer.record(canonical, isDirectory: entry.kind == .directory)
        if entry.kind == .directory || entry.kind == .symlink || replaced {
            // A new directory or symlink, or a replaced path, can change where a path through a
            // symlink resolves: look the next parent up afresh.
            layer.cachedParent = nil
        }
    }

    /// The entry's parent directory, from the one-entry cache when consecutive entries share it
    /// (the common case: a tar lists a directory's files together). The cached fd stays right
    /// because any entry that could replace that directory or an ancestor has another parent and
    /// so replaces the cache first; whiteouts, which remove elsewhere, clear it.
    ///
    /// Also returns the group that entries created in it get: the directory's own when it is
    /// setgid, else the creator's.
    private func parentDirectory(of path: EntryPath, layer: inout LayerState) throws(SystemError) -> (
        OwnedFD, gid_t, EntryPath
    ) {
        if let cached = layer.cachedParent, cached.key.elementsEqual(path.parentKey) {
            return (cached.fd, cached.childGID, cached.canonical)
        }
        let parentPath = path.parent
        let (fd, canonical) = try root.resolveDirectory(parentPath, create: true)
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
    private func confirm(_ fresh: Fresh?, layer: inout LayerState, status: (inout stat) -> Int32) -> Fresh? {
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
    private func createReplacing(
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
    private func makeNode(_ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry) throws(SystemError) -> Bool {
        let type: mode_t = entry.kind == .fifo ? S_IFIFO : entry.kind == .blockDevice ? S_IFBLK : S_IFCHR
        let device = entry.kind == .fifo ? 0 : CSys.makedev(entry.deviceMajor, entry.deviceMinor)
        do {
            try createReplacing(parent, name, call: "mknodat", entry: entry) { name in
                mknodat(parent.rawValue, name, type | mode_t(entry.mode & 0o777), device)
            }
            return true
        } catch {
            guard error.errno == EPERM && !IDMapping.fullyPrivileged else { throw error }
            options.warn(
                "skipping device \(entry.displayPath): creating devices needs root in the initial user namespace")
            return false
        }
    }

    private func makeDirectory(_ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry, layer: inout LayerState)
        throws
    {
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
        let fd = name.withCString { openat(parent.rawValue, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { throw SystemError(call: "openat", errno: errno, path: entry.displayPath) }
        let dir = OwnedFD(fd)
        try setMetadata(fd: dir.rawValue, entry: entry, layer: &layer)
    }

    private func writeFile(
        _ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry, reader: TarReader, layer: inout LayerState,
        fresh: Fresh?
    ) throws {
        // Created with its final mode when the umask alone decides the result (no default ACL, no
        // setuid/setgid/sticky bit, which a later chown would clear): then, usually, no chmod.
        var fresh = fresh
        var createMode: mode_t = 0o600
        if fresh != nil, let umask, !defaultACL, entry.mode & 0o7000 == 0 {
            createMode = mode_t(entry.mode)
            fresh?.mode = createMode & ~umask
        }
        var fd: Int32 = -1
        try createReplacing(parent, name, call: "openat", entry: entry) { name in
            fd = openat(parent.rawValue, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, createMode)
            return fd >= 0 ? 0 : -1
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
                try writeAll(file.rawValue, block, at: offset, path: entry.displayPath)
            } catch {
                throw error.unpackError("writing \(entry.displayPath) failed", context: .init(path: entry.displayPath))
            }
            end = max(end, offset + Int64(block.count))
        }
        if end < entry.size {
            // A sparse file ending in a hole.
            if ftruncate(file.rawValue, off_t(entry.size)) != 0 {
                throw SystemError(call: "ftruncate", errno: errno, path: entry.displayPath)
            }
        }
        try metadata.apply(to: file.rawValue, warn: options.warn)
    }

    /// A data block must lie within the entry's size, and all blocks together must fit in it: a
    /// crafted sparse map must not make a small entry write (or, buffered, hold) more.
    private static func checkBlock(offset: Int64, count: Int, delivered: Int, of entry: TarEntry)
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

    private func makeHardlink(_ parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry) throws {
        let targetPath = EntryPath(cleaning: entry.linkTarget)
        let targetDisplay = DisplayText.escaping(entry.linkTarget)
        guard !targetPath.isRoot else {
            throw UnpackError(
                .unsafePath, "hardlink \(entry.displayPath) points at the root directory",
                context: .init(path: entry.displayPath))
        }
        guard let targetParent = try root.openExistingDirectory(targetPath.parent) else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at \(targetDisplay), which does not exist",
                context: .init(path: entry.displayPath))
        }
        var target = stat()
        guard targetPath.name.withCString({ fstatat(targetParent.rawValue, $0, &target, AT_SYMLINK_NOFOLLOW) }) == 0
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
            try Tree.remove(in: parent.rawValue, name)
            replaced = true
        }
        // Flags 0: a hardlink to a symlink links the symlink itself.
        let rc = targetPath.name.withCString { t in
            name.withCString { linkat(targetParent.rawValue, t, parent.rawValue, $0, 0) }
        }
        if rc != 0 { throw SystemError(call: "linkat", errno: errno, path: entry.displayPath) }
    }

    // MARK: - Whiteouts

    private func applyWhiteout(_ path: EntryPath, entry: TarEntry, layer: inout LayerState) throws {
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
                guard let holder = try root.resolveOrCreateDirectory(written.parent) else { return }
                var st = stat()
                let exists = written.name.withCString { fstatat(holder.fd.rawValue, $0, &st, AT_SYMLINK_NOFOLLOW) } == 0
                if exists && (st.st_mode & S_IFMT) != S_IFDIR { return }
            }
            let (dir, directory) = try root.resolveDirectory(written, create: true)
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
        if hidden.isEmpty || hidden == Array(".".utf8) || hidden == Array("..".utf8) {
            throw UnpackError(
                .unsafePath, "invalid whiteout \(entry.displayPath)", context: .init(path: entry.displayPath))
        }
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
    private func removeLower(in parent: OwnedFD, _ path: EntryPath, layer: inout LayerState) throws {
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
    }

    // MARK: - Metadata

    /// What to set on `entry` once created: its owner and mode unless a `fresh` entry already has
    /// them, its xattrs, and its times when `times` (directories get theirs at the layer's end).
    private func metadata(of entry: TarEntry, layer: inout LayerState, fresh: Fresh?, times: Bool) throws
        -> EntryMetadata
    {
        var metadata = EntryMetadata(
            path: entry.path, kind: entry.kind, owner: nil, mode: mode_t(entry.mode), xattrs: entry.xattrs,
            times: times ? (entry.atime ?? entry.mtime, entry.mtime) : nil)
        if try ownershipAllowed(entry, layer: &layer), fresh?.owned(as: entry) != true {
            metadata.owner = (uid_t(entry.uid), gid_t(entry.gid))
        }
        if fresh?.mode == mode_t(entry.mode) { metadata.mode = nil }
        // A default ACL replaces the umask for what is created below: set every mode from now on.
        if entry.xattrs.contains(where: { $0.name == Self.defaultACLName }) { defaultACL = true }
        return metadata
    }

    /// Owner, mode and xattrs of a directory, on its fd.
    private func setMetadata(fd: Int32, entry: TarEntry, layer: inout LayerState) throws {
        try metadata(of: entry, layer: &layer, fresh: nil, times: false).apply(to: fd, warn: options.warn)
    }

    /// The same for entries that cannot be opened (symlinks, devices, FIFOs): every call names the
    /// entry relative to its parent and does not follow it.
    private func setMetadata(
        parent: OwnedFD, _ name: ArraySlice<UInt8>, entry: TarEntry, layer: inout LayerState, fresh: Fresh? = nil
    ) throws {
        let metadata = try metadata(of: entry, layer: &layer, fresh: fresh, times: true)
        if let owner = metadata.owner {
            let rc = name.withCString { fchownat(parent.rawValue, $0, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) }
            if rc != 0 { throw SystemError(call: "lchown", errno: errno, path: entry.displayPath) }
        }
        if let mode = metadata.mode, entry.kind != .symlink {
            let rc = name.withCString { fchmodat(parent.rawValue, $0, mode, AT_SYMLINK_NOFOLLOW) }
            if rc != 0 { throw SystemError(call: "fchmodat", errno: errno, path: entry.displayPath) }
        }
        if !entry.xattrs.isEmpty {
            // lsetxattr has no *at form: name the entry through the parent's /proc fd link, which
            // is a real directory, and lsetxattr does not follow the last component.
            let procPath = Array("/proc/self/fd/\(parent.rawValue)/".utf8) + name
            for (xattr, value) in entry.xattrs {
                let rc = procPath.withCString { p in value.withUnsafeBytes { CSys.lsetxattr(p, xattr, $0) } }
                if rc != 0 { try metadata.xattrFailed(xattr, warn: options.warn) }
            }
        }
        let rc = withTimes(entry.atime ?? entry.mtime, entry.mtime) { times in
            name.withCString { utimensat(parent.rawValue, $0, times, AT_SYMLINK_NOFOLLOW) }
        }
        if rc != 0 { throw SystemError(call: "utimensat", errno: errno, path: entry.displayPath) }
    }

    private func ownershipAllowed(_ entry: TarEntry, layer: inout LayerState) throws -> Bool {
        guard entry.uid >= 0, entry.uid < Int64(UInt32.max), entry.gid >= 0, entry.gid < Int64(UInt32.max) else {
            throw UnpackError(
                .corruptLayer, "tar entry \(entry.displayPath) has invalid owner \(entry.uid):\(entry.gid)",
                context: .init(path: entry.displayPath))
        }
        guard options.preserveOwnership else {
            if !layer.warnedOwnership {
                layer.warnedOwnership = true
                options.warn("not running as root: file ownership from the image is not restored")
            }
            return false
        }
        if idMapping.maps(uid: entry.uid, gid: entry.gid) { return true }
        // Root in a user namespace that does not map this owner: chown would fail with EINVAL.
        if !layer.warnedUnmapped {
            layer.warnedUnmapped = true
            options.warn(
                "owner \(entry.uid):\(entry.gid) of \(entry.displayPath) is not mapped in this user namespace: ownership of such entries is not restored (first of this layer)"
            )
        }
        return false
    }

    private func finish(_ layer: inout LayerState) throws(SystemError) {
        let listed = Set(layer.directoryTimes.map { PathKey($0.0.key) })
        let restored = layer.savedTimes.values.filter { !listed.contains(PathKey($0.0.key)) }
        for (path, atime, mtime) in restored.sorted(by: { $0.0.components.count > $1.0.components.count })
            + layer.directoryTimes.reversed()
        {
            try setTimes(path, atime: atime, mtime: mtime)
        }
        layer.directoryTimes.removeAll()
        layer.savedTimes.removeAll()
    }

    /// utimensat on a directory by its canonical path in the root, following nothing: one that a
    /// later entry removed or replaced (by a symlink, a file, or a symlink on the way) is skipped.
    private func setTimes(_ path: EntryPath, atime: timespec, mtime: timespec) throws(SystemError) {
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

    private func systemFailure(_ error: SystemError, entry: TarEntry) -> UnpackError {
        let context = UnpackError.Context(path: entry.displayPath)
        if error.call == RootDirectory.budgetExhausted {
            return UnpackError(
                .limitExceeded,
                "resolving tar entry \(entry.displayPath) followed more than \(options.limits.maxSymlinkBytesPerLayer) bytes of symlink targets in this layer (limit symlink-bytes-per-layer)",
                context: context, underlying: error)
        }
        switch error.errno {
        case ELOOP:
            return UnpackError(
                .unsafePath, "resolving tar entry \(entry.displayPath) met too many symlinks", context: context,
                underlying: error)
        case ENOTDIR:
            return UnpackError(
                .corruptLayer, "tar entry \(entry.displayPath): a parent is not a directory (\(error))",
                context: context, underlying: error)
        case EXDEV:
            return UnpackError(
                .unsafePath, "tar entry \(entry.displayPath) resolves outside the root filesystem", context: context,
                underlying: error)
        default:
            return error.unpackError("applying tar entry \(entry.displayPath) failed (\(error.call))", context: context)
        }
    }
}
