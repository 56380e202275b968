import Crypto
import Glibc
import LayerApply
import LayerStream
import OCIImage

/// A root filesystem built in memory from tar headers and content digests: layers are applied as
/// the applier applies them onto a directory (whiteouts hide only lower layers' paths, an opaque
/// marker hides a directory's lower children wherever it stands, symlinks on the way of a path are
/// followed inside the root, a hardlink shares its target's inode), but nothing is written. Memory
/// grows with the number of entries, not with their bytes.
package final class VirtualTree {
    /// One inode: directories hold their children; hardlinks share the node.
    package final class Node {
        /// Distinct for every node ever made: identities in the per-layer sets never collide with
        /// those of removed nodes.
        let serial: Int
        var kind: TarEntry.Kind
        var mode: UInt32
        var uid: Int64
        var gid: Int64
        var size: Int64 = 0
        /// SHA-256 of a regular file's content (holes of sparse files read as zeros).
        var content: [UInt8] = []
        var linkTarget: [UInt8] = []
        var deviceMajor: UInt32 = 0
        var deviceMinor: UInt32 = 0
        var xattrs: [String: [UInt8]] = [:]
        /// nil for a directory no entry described (created because a path went through it).
        var mtime: timespec?
        var children: [[UInt8]: Node] = [:]

        init(serial: Int, kind: TarEntry.Kind, mode: UInt32, uid: Int64, gid: Int64) {
            self.serial = serial
            self.kind = kind
            self.mode = mode
            self.uid = uid
            self.gid = gid
        }
    }

    /// What one layer made, by identity: its whiteouts spare these.
    private struct LayerMarks {
        /// Non-directory slots (parent directory serial and name) this layer created.
        var slots: Set<Slot> = []
        /// Directories this layer listed, and the directories on the way to each of its paths.
        var directories: Set<Int> = []
        /// Directories whose lower children are already gone.
        var cleaned: Set<Int> = []
        var symlinkBytes = 0
    }

    private struct Slot: Hashable {
        let parent: Int
        let name: [UInt8]
    }

    package let root: Node
    private var nextSerial = 1
    private var layer = LayerMarks()
    private let limits: UnpackLimits
    private let onWarning: (String) -> Void

    package init(limits: UnpackLimits = .init(), onWarning: @escaping (String) -> Void = { _ in }) {
        self.limits = limits
        self.onWarning = onWarning
        root = Node(serial: 0, kind: .directory, mode: 0o755, uid: 0, gid: 0)
    }

    /// Starts a layer: what the previous layers made is now lower.
    package func beginLayer() {
        layer = LayerMarks()
    }

    /// Applies one tar entry; `content` is the SHA-256 of a regular file's data.
    package func apply(_ entry: TarEntry, content: [UInt8]) throws(UnpackError) {
        let path = EntryPath(cleaning: entry.path)
        let name = path.name
        if try Applier.isWhiteout(name, entry) {
            try whiteout(path, entry: entry)
            return
        }
        if path.isRoot {
            try Applier.checkRootEntry(entry)
            describe(root, entry: entry, keepingXattrs: true)
            return
        }
        guard let chain = try resolve(path.parent, create: true, entry: entry) else {
            throw UnpackError(
                .corruptLayer, "tar entry \(entry.displayPath): a parent is not a directory",
                context: .init(path: entry.displayPath))
        }
        let parent = chain[chain.count - 1]
        let key = Array(name)
        if entry.kind == .socket {
            onWarning("skipping socket \(entry.displayPath): sockets cannot be unpacked")
            return
        }
        markOnTheWay(chain)
        switch entry.kind {
        case .directory:
            let node: Node
            if let existing = parent.children[key], existing.kind == .directory {
                node = existing
                describe(node, entry: entry, keepingXattrs: true)
            } else {
                node = makeNode(entry)
                parent.children[key] = node
            }
            layer.directories.insert(node.serial)
            return
        case .hardlink:
            // Linking a name to the inode it already has changes nothing.
            let target = try hardlinkTarget(entry)
            if let existing = parent.children[key], existing.kind == .directory, Self.holds(existing, target) {
                throw UnpackError(
                    .corruptLayer,
                    "hardlink \(entry.displayPath) points at \(DisplayText.escaping(entry.linkTarget)), inside the directory it would replace",
                    context: .init(path: entry.displayPath))
            }
            if parent.children[key] !== target { parent.children[key] = target }
        case .regular:
            let node = makeNode(entry)
            node.content = content
            parent.children[key] = node
        case .symlink, .characterDevice, .blockDevice, .fifo, .socket:
            parent.children[key] = makeNode(entry)
        }
        layer.slots.insert(Slot(parent: parent.serial, name: key))
    }

    // MARK: - Entries

    private func makeNode(_ entry: TarEntry) -> Node {
        let node = Node(serial: nextSerial, kind: entry.kind, mode: 0, uid: 0, gid: 0)
        nextSerial += 1
        describe(node, entry: entry, keepingXattrs: false)
        return node
    }

    /// The entry's metadata on `node`. An existing directory keeps the xattrs it had (setting one
    /// does not remove the others).
    private func describe(_ node: Node, entry: TarEntry, keepingXattrs: Bool) {
        node.mode = entry.kind == .symlink ? 0o777 : entry.mode & 0o7777
        node.uid = entry.uid
        node.gid = entry.gid
        node.mtime = entry.mtime
        if !keepingXattrs { node.xattrs = [:] }
        for (name, value) in entry.xattrs { node.xattrs[name] = value }
        switch entry.kind {
        case .regular: node.size = entry.size
        case .symlink: node.linkTarget = entry.linkTarget
        case .characterDevice, .blockDevice:
            node.deviceMajor = entry.deviceMajor
            node.deviceMinor = entry.deviceMinor
        default: break
        }
    }

    /// Whether `node` is among the descendants of `directory` (which the caller is about to
    /// replace, so the walk is paid for by the removal).
    private static func holds(_ directory: Node, _ node: Node) -> Bool {
        var pending = [directory]
        while let next = pending.popLast() {
            for child in next.children.values {
                if child === node { return true }
                if child.kind == .directory { pending.append(child) }
            }
        }
        return false
    }

    private func hardlinkTarget(_ entry: TarEntry) throws(UnpackError) -> Node {
        let targetPath = EntryPath(cleaning: entry.linkTarget)
        let display = DisplayText.escaping(entry.linkTarget)
        guard !targetPath.isRoot else {
            throw UnpackError(
                .unsafePath, "hardlink \(entry.displayPath) points at the root directory",
                context: .init(path: entry.displayPath))
        }
        guard let chain = try resolve(targetPath.parent, create: false, entry: entry),
            let target = chain[chain.count - 1].children[Array(targetPath.name)]
        else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at \(display), which does not exist",
                context: .init(path: entry.displayPath))
        }
        guard target.kind != .directory else {
            throw UnpackError(
                .corruptLayer, "hardlink \(entry.displayPath) points at directory \(display)",
                context: .init(path: entry.displayPath))
        }
        return target
    }

    // MARK: - Whiteouts

    private func whiteout(_ path: EntryPath, entry: TarEntry) throws(UnpackError) {
        let name = path.name
        if name.elementsEqual(Applier.opaqueMarker) {
            let written = path.parent
            let directory: Node
            if written.isRoot {
                directory = root
            } else {
                // A marker under a symlink or a file has no lower directory to hide.
                guard let chain = try resolve(written.parent, create: true, entry: entry) else { return }
                let holder = chain[chain.count - 1]
                markOnTheWay(chain)
                if let existing = holder.children[Array(written.name)] {
                    guard existing.kind == .directory else { return }
                    directory = existing
                } else {
                    directory = makeImplicitDirectory()
                    holder.children[Array(written.name)] = directory
                }
            }
            layer.directories.insert(directory.serial)
            guard layer.cleaned.insert(directory.serial).inserted else { return }
            for child in Array(directory.children.keys) { removeLower(in: directory, child) }
            return
        }
        if name.starts(with: Applier.aufsMetaPrefix) {
            onWarning("ignoring aufs metadata entry \(entry.displayPath)")
            return
        }
        let hidden = Array(name.dropFirst(Applier.whiteoutPrefix.count))
        guard let chain = try resolve(path.parent, create: false, entry: entry) else { return }
        removeLower(in: chain[chain.count - 1], hidden)
    }

    /// Removes `name` from `parent` unless this layer made it; a directory holding this layer's
    /// entries loses only its lower children.
    private func removeLower(in parent: Node, _ name: [UInt8]) {
        if layer.slots.contains(Slot(parent: parent.serial, name: name)) { return }
        guard let child = parent.children[name] else { return }
        if child.kind == .directory && layer.directories.contains(child.serial) {
            guard layer.cleaned.insert(child.serial).inserted else { return }
            for grandchild in Array(child.children.keys) { removeLower(in: child, grandchild) }
            return
        }
        parent.children[name] = nil
    }

    // MARK: - Resolution

    private func makeImplicitDirectory() -> Node {
        let node = Node(serial: nextSerial, kind: .directory, mode: 0o755, uid: 0, gid: 0)
        nextSerial += 1
        return node
    }

    /// The directories on the way hold this layer's content: its whiteouts descend into them.
    private func markOnTheWay(_ chain: [Node]) {
        for node in chain.dropFirst() { layer.directories.insert(node.serial) }
    }

    /// The directories from the root to `path`, following symlinks inside the root (`..` stops at
    /// the root), creating missing ones as 0755 when `create`; nil when a non-directory stands on
    /// the way (or, without `create`, something is missing).
    private func resolve(_ path: EntryPath, create: Bool, entry: TarEntry) throws(UnpackError) -> [Node]? {
        var stack: [Node] = [root]
        var pending: [ArraySlice<UInt8>] = path.components.reversed()
        var followed = 0
        while let component = pending.popLast() {
            if component.isEmpty || component.elementsEqual(".".utf8) { continue }
            if component.elementsEqual("..".utf8) {
                if stack.count > 1 { stack.removeLast() }
                continue
            }
            let current = stack[stack.count - 1]
            let key = Array(component)
            guard let next = current.children[key] else {
                guard create else { return nil }
                let made = makeImplicitDirectory()
                current.children[key] = made
                stack.append(made)
                continue
            }
            switch next.kind {
            case .directory:
                stack.append(next)
            case .symlink:
                followed += 1
                guard followed <= 40 else {
                    throw UnpackError(
                        .unsafePath, "resolving tar entry \(entry.displayPath) met too many symlinks",
                        context: .init(path: entry.displayPath))
                }
                layer.symlinkBytes += max(next.linkTarget.count, 1)
                guard layer.symlinkBytes <= limits.maxSymlinkBytesPerLayer else {
                    throw UnpackError(
                        .limitExceeded,
                        "resolving tar entry \(entry.displayPath) followed more than \(limits.maxSymlinkBytesPerLayer) bytes of symlink targets in this layer (limit symlink-bytes-per-layer)",
                        context: .init(path: entry.displayPath))
                }
                if next.linkTarget.first == UInt8(ascii: "/") { stack.removeSubrange(1...) }
                pending += next.linkTarget.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
                    .reversed()
            default:
                return nil
            }
        }
        return stack
    }
}

extension VirtualTree {
    /// Applies every entry of one layer, hashing regular files' data as it streams by; returns the
    /// number of entries. Limits per entry are those of an unpack.
    @discardableResult
    package func apply(
        _ reader: TarReader, skipping metadata: Set<[UInt8]> = [], checkpoint: () throws(UnpackError) -> Void = {}
    ) throws(UnpackError) -> Int {
        beginLayer()
        var count = 0
        while let entry = try reader.next() {
            try checkpoint()
            count += 1
            try Applier.check(entry, count: count, limits: limits)
            if Applier.isFormatMetadata(entry, metadata) { continue }
            let content = entry.kind == .regular ? try Self.hashData(reader, size: entry.size) : []
            try apply(entry, content: content)
        }
        return count
    }

    /// SHA-256 of the current entry's data; the holes of a sparse file count as zeros up to `size`.
    static func hashData(_ reader: TarReader, size: Int64) throws(UnpackError) -> [UInt8] {
        var hasher = SHA256()
        var position: Int64 = 0
        let zeros = [UInt8](repeating: 0, count: 65536)
        func zeroFill(to end: Int64) {
            while position < end {
                let n = Int(min(Int64(zeros.count), end - position))
                zeros.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                position += Int64(n)
            }
        }
        try reader.readData { (block, offset) throws(UnpackError) in
            zeroFill(to: offset)
            hasher.update(bufferPointer: block)
            position = offset + Int64(block.count)
        }
        zeroFill(to: size)
        return Array(hasher.finalize())
    }
}
